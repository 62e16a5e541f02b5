"""Read local CSV/TSV/JSON/JSONL files into Hugging Face `datasets`, with clear errors.

Nothing is fetched from a hub: every path is a local file. Problems a user can fix (missing or
empty file, binary or undecodable bytes, blank lines between rows, rows with the wrong number of
columns, broken JSON lines, missing columns, empty text) are reported as one line naming the file
and where: ``row N`` is the N-th data row after any header (in a JSONL file, row N is line N),
``line N`` a physical line as an editor counts it.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

import datasets

from tfbert.config import DataConfig
from tfbert.errors import DataError

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".txt": "tsv"}
# Python's csv module refuses fields over 128 KiB by default; pandas (which reads the data) has no
# such limit, so the shape check must not either (a 1 MB text is legitimate).
_FIELD_SIZE_LIMIT = 2**31 - 1


def detect_format(path: Path, declared: str) -> str:
    """The file format: `declared` unless it is ``auto``, else from the file suffix."""
    if declared != "auto":
        return declared
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        # Extension-less files such as SMSSpamCollection are tab-separated in practice.
        if path.suffix == "":
            return "tsv"
        raise DataError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            "set data.format to csv, tsv, json or jsonl"
        )
    return fmt


def check_utf8(path: Path) -> None:
    """Fail on a UTF-16 file, a NUL byte (a binary file) or the first line that is not UTF-8."""
    with open(path, "rb") as handle:
        head = handle.read(2)
        if head in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}: the file is UTF-16 (it starts with a UTF-16 byte order mark); "
                            "re-encode it as UTF-8")
        handle.seek(0)
        for line_no, raw in enumerate(handle, start=1):
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise DataError(f"{path}, line {line_no}: NUL byte at column {nul + 1}; this looks like a "
                                "binary file, not text")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}, line {line_no}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                    f"column {exc.start + 1}); re-encode the file as UTF-8"
                ) from None


def check_text_file(path: Path) -> None:
    """A readable UTF-8 text file with something in it (see `check_utf8`)."""
    check_utf8(path)
    with open(path, encoding="utf-8-sig") as handle:
        if not any(line.strip() for line in handle):
            raise DataError(f"{path}: the file is empty")


def _blank_line_error(path: Path, line_no: int) -> DataError:
    # Skipping it silently would shift every later row number in our messages, and a blank line
    # inside the data usually means a line break inside a text that split its row.
    return DataError(f"{path}, line {line_no}: blank line between rows; remove it (a line break inside "
                     "a text splits its row)")


def _csv_records(path: Path, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) of each record, read with the quoting `read_table` uses."""
    options = ({"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {"delimiter": ","})
    previous_limit = csv.field_size_limit(_FIELD_SIZE_LIMIT)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, **options)
            first_line = 1
            try:
                for fields in reader:
                    yield first_line, fields
                    first_line = reader.line_num + 1
            except csv.Error as exc:
                raise DataError(f"{path}, line {reader.line_num}: cannot read as {fmt} ({exc})") from None
    finally:
        csv.field_size_limit(previous_limit)


def check_table_shape(path: Path, fmt: str, config: DataConfig) -> None:
    """Every CSV/TSV row has the columns of the header (or ``data.column_names``); no blank lines
    between rows; at least one data row. pandas would otherwise skip blank lines (shifting row
    numbers), pad short rows and turn an extra column into a silent index."""
    names: list[str] | None = None if config.has_header else list(config.column_names or [])
    blank_at = 0
    rows = 0
    for line_no, fields in _csv_records(path, fmt):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            blank_at = blank_at or line_no
            continue
        if blank_at:
            raise _blank_line_error(path, blank_at)
        if names is None:
            names = fields
            continue
        rows += 1
        if len(fields) != len(names):
            hint = "; a tab inside a text splits it (TSV has no quoting)" if fmt == "tsv" and len(fields) > len(names) else ""
            raise DataError(f"{path}, row {rows}: {len(fields)} column{'s' if len(fields) != 1 else ''}, expected {len(names)} "
                            f"({', '.join(names)}){hint}")
    if rows == 0:
        raise DataError(f"{path}: no data rows" + (" after the header" if config.has_header else ""))


def parse_json_line(line: str, path: Path, line_no: int) -> object:
    """One JSON Lines record; a syntax error names the file, line and column."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {line_no}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def _json_kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), "a number")


def check_json_rows(path: Path, fmt: str) -> None:
    """A JSON list of objects, or JSON lines of one object each (no blank lines between them).

    A ``.json`` file holding JSON lines is accepted, as `datasets` reads it too.
    """
    with open(path, encoding="utf-8-sig") as handle:
        text = handle.read()
    if fmt == "json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            first = text.lstrip().split("\n", 1)[0]
            if exc.msg != "Extra data" and not _is_json_object(first):
                raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg} at column "
                                f"{exc.colno})") from None
        else:
            if isinstance(value, dict):
                return  # column-oriented {"text": [...], "label": [...]}: datasets checks the lengths
            if not isinstance(value, list):
                raise DataError(f"{path}: expected a list of objects (one per row), got {_json_kind(value)}")
            for row, record in enumerate(value, start=1):
                if not isinstance(record, dict):
                    raise DataError(f"{path}, row {row}: expected a JSON object, got {_json_kind(record)}")
            if not value:
                raise DataError(f"{path}: no rows")
            return
    blank_at = 0
    rows = 0
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            blank_at = blank_at or line_no
            continue
        if blank_at:
            raise _blank_line_error(path, blank_at)
        record = parse_json_line(line, path, line_no)
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {line_no}: expected a JSON object, got {_json_kind(record)}")
        rows += 1
    if rows == 0:
        raise DataError(f"{path}: no rows")


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def read_table(path: str | Path, config: DataConfig) -> datasets.Dataset:
    """Load one local data file as a `datasets.Dataset` (cached as Arrow by `datasets`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    fmt = detect_format(path, config.format)
    if fmt not in ("csv", "tsv", "json", "jsonl"):
        raise DataError(f"{path}: sequence classification reads csv, tsv, json or jsonl files, not {fmt}")
    check_text_file(path)
    kwargs: dict = {"data_files": str(path), "split": "train", "cache_dir": config.cache_dir}
    if fmt in ("csv", "tsv"):
        check_table_shape(path, fmt, config)
        builder = "csv"
        kwargs.update(
            sep="\t" if fmt == "tsv" else ",",
            # TSV text is raw (SMS and SST-2 contain unbalanced quotes); CSV keeps quoting.
            quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
            # Keep "NA", "null", "" as text, not NaN: they are real messages.
            keep_default_na=False,
            na_filter=False,
        )
        if not config.has_header:
            kwargs.update(column_names=list(config.column_names or []), header=None)
    else:
        check_json_rows(path, fmt)
        builder = "json"
    try:
        dataset = datasets.load_dataset(builder, **kwargs)
    except Exception as exc:  # pandas/pyarrow raise many types; the user needs the file and why
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt} ({message})") from None
    if config.has_header and config.column_names and fmt in ("csv", "tsv"):
        if len(config.column_names) != len(dataset.column_names):
            raise DataError(
                f"{path}: data.column_names has {len(config.column_names)} names but the file "
                f"has {len(dataset.column_names)} columns"
            )
        dataset = dataset.rename_columns(dict(zip(dataset.column_names, config.column_names)))
    if len(dataset) == 0:
        raise DataError(f"{path}: no rows")
    return dataset


def require_columns(dataset: datasets.Dataset, columns: list[str], path: str | Path) -> None:
    """Fail naming the file and the first missing column, listing the columns it has."""
    for column in columns:
        if column not in dataset.column_names:
            raise DataError(
                f"{path}: no column {column!r}; the file has columns {dataset.column_names}"
            )


def check_texts(dataset: datasets.Dataset, columns: list[str], path: str | Path) -> None:
    """Fail on the first row whose text is missing, not a string, or blank."""
    for column in columns:
        values = dataset[column]
        for row, value in enumerate(values, start=1):
            if value is None:
                # A JSON row without the key (other rows have it, so the column exists).
                raise DataError(f"{path}, row {row}: no text in column {column!r} (missing or null)")
            if not isinstance(value, str):
                raise DataError(
                    f"{path}, row {row}: column {column!r} holds {type(value).__name__} "
                    f"{value!r}, expected text"
                )
            if not value.strip():
                raise DataError(f"{path}, row {row}: empty text in column {column!r}")


def concatenate_tables(parts: list[datasets.Dataset], paths: list[str]) -> datasets.Dataset:
    """Several files of one split as one table, in order (``data.train_file`` as a list).

    Their columns were already narrowed to the ones used; a column that one file reads as numbers
    and another as text (labels ``0``/``1`` beside ``ham``/``spam``) is read as text in all of them,
    so that Arrow can join them.
    """
    if len(parts) == 1:
        return parts[0]
    for column in parts[0].column_names:
        if len({str(part.features[column]) for part in parts}) > 1:
            parts = [part.cast_column(column, datasets.Value("string"))
                     if isinstance(part.features[column], datasets.Value) else part for part in parts]
    try:
        return datasets.concatenate_datasets(parts)
    except ValueError:
        kinds = "; ".join(f"{path}: {dict(part.features)}" for part, path in zip(parts, paths))
        raise DataError(f"data.train_file: the files' columns cannot be joined ({kinds})") from None
