"""Label names <-> ids, saved with the model as ``label2id``."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from tfbert.errors import DataError


def label_text(value: object) -> str:
    """Labels are compared as text, so ``1`` in a CSV and ``"1"`` in JSON are the same label."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def check_labels(values: Iterable[object], path: str | Path, column: str) -> None:
    """Fail on the first row whose label is missing, empty or not a single value.

    An empty cell is not a class: inferring labels from the data would otherwise make ``""`` (or
    ``"None"`` for a JSON null) one, and train on it.
    """
    for row, value in enumerate(values, start=1):
        if value is None:
            raise DataError(f"{path}, row {row}: no label in column {column!r} (missing or null)")
        if isinstance(value, (list, dict)):
            raise DataError(f"{path}, row {row}: label {value!r} in column {column!r} is not a single value")
        if not label_text(value):
            raise DataError(f"{path}, row {row}: empty label in column {column!r}")


def infer_label_names(values: Iterable[object]) -> list[str]:
    """Sorted distinct labels; numbers sort numerically (``2`` before ``10``)."""
    names = sorted({label_text(v) for v in values})
    try:
        return sorted(names, key=float)
    except ValueError:
        return names


def encode_labels(values: Iterable[object], label2id: dict[str, int], path: str | Path, column: str) -> np.ndarray:
    """Map label values to ids, failing on the first unknown label with its row."""
    out = []
    for row, value in enumerate(values, start=1):
        key = label_text(value)
        if key not in label2id:
            raise DataError(
                f"{path}, row {row}: unknown label {key!r} in column {column!r}; "
                f"expected one of {sorted(label2id, key=label2id.get)}"
            )
        out.append(label2id[key])
    return np.asarray(out, dtype=np.int32)
