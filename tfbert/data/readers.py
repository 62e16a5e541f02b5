"""Read local CSV/TSV/JSON/JSONL files into Hugging Face `datasets`, with clear errors.

Nothing is fetched from a hub: every path is a local file. Problems a user can fix (missing
file, undecodable bytes, missing column, empty text) are reported as one line naming the file,
the row and the column.
"""
from __future__ import annotations

import csv
from pathlib import Path

import datasets

from tfbert.config import DataConfig
from tfbert.errors import DataError

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".txt": "tsv"}


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
    """Fail with the line number of the first byte sequence that is not UTF-8."""
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}, line {line_no}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                    f"column {exc.start + 1}); re-encode the file as UTF-8"
                ) from None


def read_table(path: str | Path, config: DataConfig) -> datasets.Dataset:
    """Load one local data file as a `datasets.Dataset` (cached as Arrow by `datasets`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    fmt = detect_format(path, config.format)
    check_utf8(path)
    kwargs: dict = {"data_files": str(path), "split": "train", "cache_dir": config.cache_dir}
    if fmt in ("csv", "tsv"):
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
            if not isinstance(value, str):
                raise DataError(
                    f"{path}, row {row}: column {column!r} holds {type(value).__name__} "
                    f"{value!r}, expected text"
                )
            if not value.strip():
                raise DataError(f"{path}, row {row}: empty text in column {column!r}")
