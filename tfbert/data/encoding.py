"""Tokenize a split once with the model's fast tokenizer (batched `datasets.map`, cached)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import datasets
import numpy as np
import pyarrow as pa

from tfbert.data.features import token_feature_names

IGNORE_INDEX = -100  # label of tokens the loss and metrics skip (special tokens, later subwords, padding)


@dataclass
class RaggedLabels:
    """One label per token (flat values + row splits, like the features); IGNORE_INDEX where unlabelled."""

    values: np.ndarray
    row_splits: np.ndarray


Labels = Union[np.ndarray, RaggedLabels, dict]


@dataclass
class EncodedSplit:
    """Token ids of one split as flat values + row splits (ragged), plus labels.

    Labels are one id per example (classification), a `RaggedLabels` (one id per token) or a
    dict of per-example arrays (e.g. QA start/end positions), or None for unlabelled data.
    """

    features: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (flat values, row_splits)
    labels: Optional[Labels]

    def __len__(self) -> int:
        values, splits = next(iter(self.features.values()))
        return len(splits) - 1

    @property
    def lengths(self) -> np.ndarray:
        _, splits = self.features["input_ids"]
        return np.diff(splits)


def _ragged_column(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy(zero_copy_only=False).astype(np.int32)
    # A sliced Arrow array keeps its parent's offsets; rebase them to start at 0.
    return values[offsets[0]: offsets[-1]], offsets - offsets[0]


def tokenize_split(
    dataset: datasets.Dataset,
    tokenizer,
    text_column: str,
    text_pair_column: Optional[str],
    max_seq_length: int,
    labels: Optional[np.ndarray] = None,
) -> EncodedSplit:
    """Tokenize without padding (batches are padded later, per bucket) and truncate to max length."""
    input_names = token_feature_names(tokenizer)

    def encode(batch: dict) -> dict:
        pairs = batch[text_pair_column] if text_pair_column else None
        out = tokenizer(
            batch[text_column], pairs, truncation=True, max_length=max_seq_length,
            return_attention_mask=False,
        )
        return {name: out[name] for name in input_names}

    encoded = dataset.map(
        encode, batched=True, batch_size=1000, remove_columns=dataset.column_names,
        desc="Tokenizing",
    )
    table = encoded.with_format("arrow")[:]
    features = {name: _ragged_column(table.column(name)) for name in input_names}
    return EncodedSplit(features=features, labels=labels)


def _select_ragged(values: np.ndarray, row_splits: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = row_splits[:-1][order], row_splits[1:][order]
    lengths = ends - starts
    new_splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # Flat positions of the chosen rows: each row's start repeated over its length, plus 0..len-1.
    gather = np.repeat(starts - new_splits[:-1], lengths) + np.arange(new_splits[-1])
    return values[gather.astype(np.int64)], new_splits


def select_rows(split: EncodedSplit, order: np.ndarray) -> EncodedSplit:
    """The rows of `split` in the given order."""
    order = np.asarray(order, dtype=np.int64)
    features = {name: _select_ragged(values, row_splits, order) for name, (values, row_splits) in split.features.items()}
    labels = split.labels
    if isinstance(labels, RaggedLabels):
        labels = RaggedLabels(*_select_ragged(labels.values, labels.row_splits, order))
    elif isinstance(labels, dict):
        labels = {k: v[order] for k, v in labels.items()}
    elif labels is not None:
        labels = labels[order]
    return EncodedSplit(features=features, labels=labels)
