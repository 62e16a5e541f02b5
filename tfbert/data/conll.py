"""Read token-tagged sentences: CoNLL-style column files and JSON/JSONL token/tag lists.

Errors name the physical ``line`` of a CoNLL token or JSONL record, and the ``row`` (object) and
``word`` of a JSON list.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tfbert.data.readers import check_text_file, parse_json_line
from tfbert.errors import DataError

_TAG = re.compile(r"^(?:O|[BIES]-\S+)$")
logger = logging.getLogger(__name__)


@dataclass
class TaggedSentence:
    """Words and their tags; `line` is where the sentence starts in its file (for errors).

    `word_lines` holds each word's own line in a CoNLL file (None for JSON rows).
    """

    words: list[str]
    tags: list[str]
    line: int
    word_lines: Optional[list[int]] = None

    def where(self, offset: int) -> str:
        """Where word `offset` is, as an error message names it (after the file name)."""
        if self.word_lines is not None:
            return f"line {self.word_lines[offset]}"
        return f"row {self.line}, word {offset + 1}"


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """``token<TAB>tag`` or whitespace-separated columns (token first, tag last), blank line between
    sentences; ``-DOCSTART-`` lines are skipped. Every token line has the same number of columns:
    a line with one more or fewer would silently read another column as its tag."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    check_text_file(path)
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    start = 1
    width: Optional[tuple[int, int]] = None  # (columns, line of the first token line)
    with open(path, encoding="utf-8-sig") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if words:
                    sentences.append(TaggedSentence(words, tags, start, lines))
                words, tags, lines = [], [], []
                start = line_no + 1
                continue
            if line.startswith("-DOCSTART-"):
                continue
            columns = line.split("\t") if "\t" in line else line.split()
            if len(columns) < 2 or not columns[0].strip() or not columns[-1].strip():
                raise DataError(f"{path}, line {line_no}: expected 'token<TAB>tag', got {line!r}")
            if width is None:
                width = (len(columns), line_no)
            elif len(columns) != width[0]:
                raise DataError(
                    f"{path}, line {line_no}: {len(columns)} columns, but the first token line (line "
                    f"{width[1]}) has {width[0]}; every token line needs the same columns, token first "
                    f"and tag last (got {line!r})"
                )
            if not words:
                start = line_no
            words.append(columns[0].strip())
            tags.append(columns[-1].strip())
            lines.append(line_no)
    if words:
        sentences.append(TaggedSentence(words, tags, start, lines))
    if not sentences:
        raise DataError(f"{path}: no sentences")
    return sentences


def _json_records(path: Path) -> list[tuple[int, object]]:
    """(line or row number, value) of each record: JSONL by line (blank lines skipped, numbers
    kept), a JSON list by position."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for line_no, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                rows.append((line_no, parse_json_line(line, path, line_no)))
        return rows
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON list of objects with token and tag lists (or a .jsonl file)")
    return list(enumerate(value, start=1))


def read_tagged_json(path: str | Path, tokens_column: str, tags_column: str) -> list[TaggedSentence]:
    """A JSON list or JSON-lines file of objects with token and tag lists of equal length."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    check_text_file(path)
    sentences = []
    for row, record in _json_records(path):
        where = f"{path}, row {row}"
        if not isinstance(record, dict) or tokens_column not in record or tags_column not in record:
            raise DataError(f"{where}: expected an object with {tokens_column!r} and {tags_column!r} lists")
        words, tags = record[tokens_column], record[tags_column]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise DataError(f"{where}: {tokens_column!r} and {tags_column!r} must be lists of equal length")
        if not words:
            raise DataError(f"{where}: empty sentence")
        for offset, (word, tag) in enumerate(zip(words, tags), start=1):
            # Numbers are fine as words ("2017"); null or nested values are a broken export.
            if isinstance(word, (list, dict, bool)) or word is None:
                raise DataError(f"{where}, word {offset}: {tokens_column!r} holds {word!r}, expected text")
            if not isinstance(tag, str):
                raise DataError(f"{where}, word {offset}: {tags_column!r} holds {tag!r}, expected a tag such as 'O'")
        sentences.append(TaggedSentence([str(w) for w in words], [t.strip() for t in tags], row))
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
                    f"{path}, {sentence.where(offset)} ({sentence.words[offset]!r}): "
                    f"tag {tag!r} is not valid in the {scheme.upper()} scheme (expected O or "
                    f"{'/'.join(prefixes)}-TYPE)"
                )


def repair_iob2_starts(sentences: list[TaggedSentence], path: str | Path) -> int:
    """Rewrite an ``I-X`` that starts an entity (after ``O``, another type or the sentence start)
    as ``B-X``, in place; returns how many were rewritten and logs one warning naming the first.

    IOB2 requires ``B-`` there, but seqeval's default (CoNLL) evaluation, tfbert's entity
    grouping and its serving graph all read such an ``I-X`` as the start of an entity already, so
    the rewrite changes no entity: it only keeps the model from learning two tags for one role.
    """
    repaired, first = 0, ""
    for sentence in sentences:
        previous = "O"
        for offset, tag in enumerate(sentence.tags):
            if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
                sentence.tags[offset] = "B-" + tag[2:]
                repaired += 1
                first = first or f"{sentence.where(offset)} ({sentence.words[offset]!r})"
            previous = sentence.tags[offset]
    if repaired:
        logger.warning("warning: %s: read %d 'I-' tag(s) that start an entity as 'B-' (IOB2 needs B- there; "
                       "first at %s); set data.tag_scheme: iob1 if the file is IOB1", path, repaired, first)
    return repaired
