"""Seeded validation/test sets held out of the training file: one meaning of the split keys for every task.

``data.validation_split`` and ``data.test_split`` are fractions of the *whole* training file
(0.1 + 0.2 leaves 70% to train), held out only for a split that has no file of its own; the same
seed gives the same split. How rows are drawn depends only on what a row is:

- rows with one class each (sequence classification): stratified, each label keeping its share;
- rows grouped so that a group must stay on one side (QA questions of one article): whole
  groups, never a question without the others of its context;
- anything else (multi-label rows, NER sentences): seeded random rows.

Every task's loader calls `hold_out`, so ``Task.has_validation`` (a file or a fraction) is true of
every task.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from tfbert.errors import DataError

#: the order splits are held out in: test first, then validation from the rest
HELD_OUT = ("test", "validation")


def split_fractions(config, present: Sequence[str] = ()) -> dict[str, float]:
    """``{split: fraction}`` of the splits to hold out of the training file.

    Args:
        config: the ``data`` section (its ``validation_split`` and ``test_split``).
        present: splits that already have data of their own (a file, records); none is held out.
            A split to hold out needs ``train`` among them: a `DataError` otherwise.
    """
    fractions = {"test": config.test_split, "validation": config.validation_split}
    fractions = {split: fraction for split, fraction in fractions.items() if fraction and split not in present}
    if fractions and "train" not in present:
        raise DataError(f"config key 'data.{next(iter(fractions))}_split': needs data.train_file to split from")
    return fractions


def _stratified(labels: np.ndarray, fraction: float, seed: int, what: str, source: str,
                label_names: Optional[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) positions into `labels`, each label keeping its share."""
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
    try:
        keep, held_rows = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as exc:
        raise DataError(f"{key}: cannot split off a stratified {what} set of {fraction:.0%} of {source}: {exc}") from None
    return np.sort(keep), np.sort(held_rows)


def _random(units: int, count: int, seed: int, what: str) -> np.ndarray:
    """`count` of `units` positions drawn with the seed (the same draw for the same seed and split)."""
    return np.sort(np.random.default_rng([seed, len(what)]).permutation(units)[:count])


def hold_out(num_rows: int, fractions: dict[str, float], seed: int, source: str, *,
             labels: Optional[np.ndarray] = None, label_names: Optional[list[str]] = None,
             groups: Optional[Sequence] = None, unit: str = "rows") -> dict[str, np.ndarray]:
    """Sorted row indices of ``train`` and of each split in `fractions`, each a fraction of all rows.

    Args:
        num_rows: rows of the training file (all its files together).
        fractions: split -> fraction of `num_rows` (`split_fractions`).
        seed: ``training.seed``.
        source: the training file, for errors.
        labels: one class id per row: a stratified split (`label_names` names them in errors).
        groups: one group key per row (e.g. a QA article): whole groups are held out, and the
            fraction counts groups.
        unit: what the fraction counts, for errors (``sentences``; ``articles`` for QA's groups).

    Returns:
        ``{"train": rows, "test": rows, "validation": rows}`` (only the splits asked for).

    Examples:
        >>> parts = hold_out(10, {"validation": 0.2}, seed=42, source="x.tsv")
        >>> len(parts["train"]), len(parts["validation"])
        (8, 2)
    """
    kept = np.arange(num_rows)
    if groups is not None:
        keys = np.asarray([str(g) for g in groups], dtype=object)
        num_groups = len(set(keys.tolist()))
    taken = 0.0
    out: dict[str, np.ndarray] = {}
    for split in HELD_OUT:
        fraction = fractions.get(split, 0.0)
        if not fraction:
            continue
        if labels is not None:
            keep, held = _stratified(labels[kept], fraction / (1.0 - taken), seed, split, source, label_names)
        else:
            key = f"config key 'data.{split}_split'"
            if groups is not None:
                names, position = np.unique(keys[kept], return_inverse=True)
                chosen = _random(len(names), int(round(fraction * num_groups)), seed, split)
                held_mask = np.isin(position, chosen)
                total = len(names)
            else:
                chosen = _random(len(kept), int(round(fraction * num_rows)), seed, split)
                held_mask = np.zeros(len(kept), bool)
                held_mask[chosen] = True
                total = len(kept)
            if len(chosen) == 0:
                raise DataError(f"{key}: {fraction} of the {unit} of {source} rounds to none; raise it or add {unit}")
            if len(chosen) == total:
                raise DataError(f"{key}: holding out {len(chosen)} of the {total} remaining {unit} of {source} as "
                                f"the {split} set leaves none to train on; lower data.validation_split/data.test_split")
            keep, held = np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
        out[split] = kept[held]
        kept = kept[keep]
        taken += fraction
    out["train"] = kept
    return out


__all__ = ["HELD_OUT", "hold_out", "split_fractions"]
