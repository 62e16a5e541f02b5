"""Read SQuAD v1.1-format JSON into flat question records, with clear one-line errors.

The file layout is ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}``. Every problem a user can fix is raised as a
:class:`~tfbert.errors.DataError` naming the file and the article, paragraph or question id.
Splits are made by article (:func:`select_articles`) so that no context is shared between a
training and an evaluation split.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tfbert.data.readers import check_text_file
from tfbert.errors import DataError


@dataclass
class QAExample:
    """One question about one context; `answers` holds every reference answer, in file order."""

    id: str
    title: str
    article_index: int
    context: str
    question: str
    answers: list[dict[str, Any]] = field(default_factory=list)  # {"text": str, "answer_start": int}


def _short(text: str, limit: int = 40) -> str:
    """A quoted excerpt that keeps error messages on one readable line."""
    text = text.replace("\n", " ")
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: SQuAD file not found")
    check_text_file(path)  # names the line of a bad byte; an empty file is not "invalid JSON"
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte offset {exc.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def _require_list(container: dict, key: str, where: str) -> list:
    if not isinstance(container, dict) or key not in container:
        raise DataError(f"{where}: missing {key!r}")
    value = container[key]
    if not isinstance(value, list):
        raise DataError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _require_text(container: dict, key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        shown = "missing" if value is None else f"{type(value).__name__}, expected text"
        raise DataError(f"{where}: {key!r} is {shown}")
    if not value.strip():
        raise DataError(f"{where}: empty {key!r}")
    return value


def _read_answers(qa: dict, context: str, where: str) -> list[dict[str, Any]]:
    answers = []
    for number, answer in enumerate(_require_list(qa, "answers", where), start=1):
        at = f"{where}, answer {number}"
        if not isinstance(answer, dict):
            raise DataError(f"{at}: expected an object with 'text' and 'answer_start'")
        text = _require_text(answer, "text", at)
        start = answer.get("answer_start")
        # bool is an int subclass; `true` as an offset is a data bug, not position 1.
        if not isinstance(start, int) or isinstance(start, bool):
            raise DataError(f"{at}: 'answer_start' must be an integer, got {start!r}")
        found = context[start: start + len(text)] if start >= 0 else ""
        if found != text:
            raise DataError(
                f"{at}: answer_start {start} does not point at {_short(text)} in the context "
                f"(found {_short(found)})"
            )
        answers.append({"text": text, "answer_start": start})
    return answers


def read_squad(path: str | Path, require_answers: bool = True) -> list[QAExample]:
    """Read a SQuAD v1.1-format file into one :class:`QAExample` per question, in file order.

    `require_answers=False` accepts questions without answers (files to predict on); answers
    that are present are always checked against the context.
    """
    path = Path(path)
    data = _require_list(_load_json(path), "data", str(path))
    examples: list[QAExample] = []
    seen: set[str] = set()
    for article_index, article in enumerate(data):
        where_article = f"{path}, article {article_index}"
        if not isinstance(article, dict):
            raise DataError(f"{where_article}: expected an object with 'title' and 'paragraphs'")
        title = article.get("title", "")
        if not isinstance(title, str):
            raise DataError(f"{where_article}: 'title' must be text, got {type(title).__name__}")
        if title:
            where_article += f" ({title})"
        for paragraph_index, paragraph in enumerate(_require_list(article, "paragraphs", where_article)):
            where_paragraph = f"{where_article}, paragraph {paragraph_index}"
            if not isinstance(paragraph, dict):
                raise DataError(f"{where_paragraph}: expected an object with 'context' and 'qas'")
            context = _require_text(paragraph, "context", where_paragraph)
            for qa_index, qa in enumerate(_require_list(paragraph, "qas", where_paragraph)):
                if not isinstance(qa, dict):
                    raise DataError(f"{where_paragraph}, question {qa_index}: expected an object")
                qid = qa.get("id")
                if not isinstance(qid, str) or not qid:
                    raise DataError(f"{where_paragraph}, question {qa_index}: missing 'id'")
                where = f"{path}, question {qid}"
                if qid in seen:
                    raise DataError(f"{where}: duplicate question id")
                seen.add(qid)
                question = _require_text(qa, "question", where)
                if "answers" not in qa and not require_answers:
                    answers = []
                else:
                    answers = _read_answers(qa, context, where)
                if require_answers and not answers:
                    raise DataError(f"{where}: no answers (SQuAD v1.1 questions are all answerable)")
                examples.append(QAExample(
                    id=qid, title=title, article_index=article_index, context=context,
                    question=question, answers=answers,
                ))
    if not examples:
        raise DataError(f"{path}: no questions")
    return examples


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_article_spec(spec: str) -> list[tuple[int, int]]:
    """Inclusive article index ranges from a spec such as ``"0-29"``, ``"30-35"`` or ``"0-9,20"``."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"article selection {spec!r}: expected ranges such as '0-29' or '0-9,20-29'")
    ranges = []
    for part in spec.split(","):
        match = _RANGE.match(part)
        if not match:
            raise DataError(
                f"article selection {spec!r}: cannot read {part.strip()!r}; "
                "expected an index or an inclusive range such as '30-35'"
            )
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise DataError(f"article selection {spec!r}: range {low}-{high} ends before it starts")
        ranges.append((low, high))
    return ranges


def select_articles(examples: Sequence[QAExample], spec: str) -> list[QAExample]:
    """The questions of the articles in `spec` (inclusive, 0-based article indices), in order.

    Whole articles are kept or dropped, never single questions, so splits share no context.
    A range that reaches past the last article is an error rather than a silently short split.
    """
    ranges = parse_article_spec(spec)
    present = {example.article_index for example in examples}
    if not present:
        raise DataError(f"article selection {spec!r}: there are no questions to select from")
    last = max(present)
    for low, high in ranges:
        if high > last:
            raise DataError(
                f"article selection {spec!r}: asks for article {high} but the data has "
                f"articles 0-{last}"
            )
    selected = [e for e in examples if any(low <= e.article_index <= high for low, high in ranges)]
    if not selected:
        raise DataError(f"article selection {spec!r}: selects no questions")
    return selected


def reference_answers(examples: Sequence[QAExample]) -> dict[str, list[str]]:
    """Question id -> the texts of all its reference answers, the input of `squad_evaluate`."""
    return {example.id: [answer["text"] for answer in example.answers] for example in examples}
