"""Seeded, stratified train/validation/test splits for data sets that ship without one."""
from __future__ import annotations

import math
from typing import Optional

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

from tfbert.errors import DataError


def stratified_split(
    dataset: datasets.Dataset, labels: np.ndarray, fraction: float, seed: int, what: str,
    source: str = "the training file", label_names: Optional[list[str]] = None,
) -> tuple[datasets.Dataset, datasets.Dataset, np.ndarray, np.ndarray]:
    """Split off `fraction` of the rows, keeping each label's share; same seed, same split.

    `what` is ``validation`` or ``test`` (the config key ``data.{what}_split`` names it in errors)
    and `source` the file the rows come from. Splits that would leave a side without one row of
    each label fail here, before scikit-learn's less specific message.
    """
    key = f"config key 'data.{what}_split'"
    n = len(labels)
    ids, counts = np.unique(labels, return_counts=True)
    held = math.ceil(fraction * n)  # scikit-learn rounds the held-out share up
    kept = n - held
    if kept < len(ids):
        raise DataError(
            f"{key}: splitting {held} of the {n} remaining rows of {source} off as the {what} set leaves "
            f"{kept} training rows for {len(ids)} labels; lower data.validation_split/data.test_split "
            "or add rows"
        )
    if held < len(ids):
        raise DataError(
            f"{key}: the {what} set would hold {held} of the {n} rows of {source}, fewer than its "
            f"{len(ids)} labels (a stratified split needs one of each); raise the split or add rows"
        )
    if counts.min() < 2:
        rare = ids[counts.argmin()]
        name = label_names[rare] if label_names is not None else str(rare)
        raise DataError(
            f"{key}: label {name!r} has only 1 row in {source}; a stratified split needs at least 2 "
            "of each label"
        )
    index = np.arange(n)
    try:
        keep, held_rows = train_test_split(index, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"{key}: cannot split off a stratified {what} set of {fraction:.0%} of {source}: {exc}") from None
    keep, held_rows = np.sort(keep), np.sort(held_rows)
    return dataset.select(keep), dataset.select(held_rows), labels[keep], labels[held_rows]
