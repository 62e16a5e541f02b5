"""Read token-tagged sentences: CoNLL-style column files and JSON/JSONL token/tag lists."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tfbert.data.readers import check_utf8
from tfbert.errors import DataError

_TAG = re.compile(r"^(?:O|[BIES]-\S+)$")


@dataclass
class TaggedSentence:
    """Words and their tags; `line` is where the sentence starts in its file (for errors)."""

    words: list[str]
    tags: list[str]
    line: int


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """``token<TAB>tag`` or whitespace-separated columns (token first, tag last), blank line between
    sentences; ``-DOCSTART-`` lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    check_utf8(path)
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    start = 1
    with open(path, encoding="utf-8") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if words:
                    sentences.append(TaggedSentence(words, tags, start))
                words, tags = [], []
                start = line_no + 1
                continue
            if line.startswith("-DOCSTART-"):
                continue
            columns = line.split("\t") if "\t" in line else line.split()
            if len(columns) < 2 or not columns[0].strip() or not columns[-1].strip():
                raise DataError(f"{path}, line {line_no}: expected 'token<TAB>tag', got {line!r}")
            if not words:
                start = line_no
            words.append(columns[0].strip())
            tags.append(columns[-1].strip())
    if words:
        sentences.append(TaggedSentence(words, tags, start))
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def read_tagged_json(path: str | Path, tokens_column: str, tags_column: str) -> list[TaggedSentence]:
    """A JSON list or JSON-lines file of objects with token and tag lists of equal length."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    check_utf8(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [(i, json.loads(line)) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
        else:
            rows = list(enumerate(json.loads(text), start=1))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    sentences = []
    for row, record in rows:
        where = f"{path}, row {row}"
        if not isinstance(record, dict) or tokens_column not in record or tags_column not in record:
            raise DataError(f"{where}: expected an object with {tokens_column!r} and {tags_column!r} lists")
        words, tags = record[tokens_column], record[tags_column]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise DataError(f"{where}: {tokens_column!r} and {tags_column!r} must be lists of equal length")
        if not words:
            raise DataError(f"{where}: empty sentence")
        sentences.append(TaggedSentence([str(w) for w in words], [str(t) for t in tags], row))
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def read_tagged(path: str | Path, fmt: str, tokens_column: str = "tokens", tags_column: str = "tags") -> list[TaggedSentence]:
    """Dispatch on ``data.format`` (``auto``: .json/.jsonl by suffix, anything else CoNLL)."""
    suffix = Path(path).suffix.lower()
    if fmt in ("json", "jsonl") or (fmt == "auto" and suffix in (".json", ".jsonl")):
        return read_tagged_json(path, tokens_column, tags_column)
    if fmt not in ("auto", "conll"):
        raise DataError(f"{path}: token classification reads conll, json or jsonl files, not {fmt}")
    return read_conll(path)


def check_tags(sentences: list[TaggedSentence], path: str | Path, scheme: str) -> None:
    """Every tag is ``O`` or ``B-/I-/E-/S-TYPE`` allowed by `scheme` (iob1, iob2, bioes)."""
    prefixes = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}[scheme]
    for sentence in sentences:
        for offset, tag in enumerate(sentence.tags):
            if not _TAG.match(tag) or (tag != "O" and tag[0] not in prefixes):
                raise DataError(
                    f"{path}, sentence at line/row {sentence.line}, word {offset + 1} ({sentence.words[offset]!r}): "
                    f"tag {tag!r} is not valid in the {scheme.upper()} scheme (expected O or "
                    f"{'/'.join(prefixes)}-TYPE)"
                )
