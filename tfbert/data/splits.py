"""Seeded, stratified train/validation/test splits for data sets that ship without one."""
from __future__ import annotations

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

from tfbert.errors import DataError


def stratified_split(
    dataset: datasets.Dataset, labels: np.ndarray, fraction: float, seed: int, what: str
) -> tuple[datasets.Dataset, datasets.Dataset, np.ndarray, np.ndarray]:
    """Split off `fraction` of the rows, keeping each label's share; same seed, same split."""
    index = np.arange(len(dataset))
    try:
        keep, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"cannot split off a stratified {what} set of {fraction:.0%}: {exc}") from None
    keep, held = np.sort(keep), np.sort(held)
    return dataset.select(keep), dataset.select(held), labels[keep], labels[held]
