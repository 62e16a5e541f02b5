"""Tokenize a split once with the model's fast tokenizer (batched `datasets.map`, cached)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import datasets
import numpy as np
import pyarrow as pa


@dataclass
class EncodedSplit:
    """Token ids of one split as flat values + row splits (ragged), plus label ids."""

    features: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (flat values, row_splits)
    labels: Optional[np.ndarray]

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
    input_names = [n for n in tokenizer.model_input_names if n != "attention_mask"]

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


def select_rows(split: EncodedSplit, order: np.ndarray) -> EncodedSplit:
    """The rows of `split` in the given order."""
    features = {}
    for name, (values, row_splits) in split.features.items():
        starts, ends = row_splits[:-1][order], row_splits[1:][order]
        lengths = ends - starts
        new_splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(order) else np.zeros(0, np.int64)
        features[name] = (values[gather.astype(np.int64)], new_splits)
    labels = split.labels[order] if split.labels is not None else None
    return EncodedSplit(features=features, labels=labels)
