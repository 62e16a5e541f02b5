"""Text regression's label column: one finite number per row, read as float32.

The shared classification loader (`tfbert.data.classification.load_classification_data`) reads
the files, the text (and pair) columns, held-out splits and tokenization; only the label column
differs, so this module is a `LabelColumn` and nothing else. A cell that is not a number (text,
empty, a JSON list) or is NaN or infinite stops the run with one line naming the file, the row
(1-based, header not counted, as every loader counts) and the column: a NaN target would turn the
mean squared error into NaN at the first batch that holds it, far from the cause.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tfbert.data.classification import LabelColumn
from tfbert.errors import DataError


def parse_score(value: Any) -> float:
    """A cell as a finite float; `ValueError` saying why not (the caller adds file, row and column)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            raise ValueError("empty score")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text[:60]!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


class ScoreColumn(LabelColumn):
    """A regression target per row; its one "label name" is the label column's name (``score``).

    The name becomes the saved transformers config's ``id2label`` (``{0: "score"}``), which is what
    `pipeline("text-classification")` prints next to each predicted score.
    """

    # Scores have no classes to stratify by: held-out rows are drawn at random.
    stratify = False

    def parse(self, values: Sequence[Any], path: str, column: str) -> list[float]:
        return self.parse_cells(values, parse_score, path, column)

    def infer_names(self, rows: list[float], source: str, column: str) -> list[str]:
        if len(set(rows)) < 2:
            raise DataError(f"{source}: column {column!r} holds one score ({rows[0] if rows else 'none'}) for every "
                            "row; a regression needs scores that vary")
        return [column]

    def encode(self, rows: list[float], names: list[str], path: str, column: str) -> np.ndarray:
        return np.asarray(rows, dtype=np.float32)


__all__ = ["ScoreColumn", "parse_score"]
