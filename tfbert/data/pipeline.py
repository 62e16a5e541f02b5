"""Build `tf.data` pipelines from tokenized splits: where a batch is padded and assembled.

Three padding modes:
- ``bucket`` (default): examples are grouped by length and each batch is padded to its bucket's
  boundary. Few distinct shapes, so Keras' ``reduce_retracing`` train function never retraces
  per batch, and little compute is spent on padding (SST-2 averages 13 tokens).
- ``dynamic``: each batch is padded to its longest example.
- ``max_length``: every batch is padded to ``max_seq_length`` (static shapes for TPU/IPU),
  usually with ``drop_remainder``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from tfbert.data.encoding import IGNORE_INDEX, EncodedSplit, RaggedLabels

# Steps of ~12-25% from 8 tokens up: single sentences are short (SST-2: median 10 tokens, 35%
# under 8), and the old ladder starting at 16 spent 35% of the compute on padding there (82% real
# tokens with 8, 12, 16, ...; 91% with this one; docs/benchmarks.md). Extra shapes cost no
# tracing: every batch has the [None, None] spec of the padded dataset.
_DEFAULT_BOUNDARIES = (8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
                       160, 192, 224, 256, 320, 384, 448, 512)


def default_bucket_boundaries(max_seq_length: int) -> list[int]:
    """Padded lengths: a short geometric ladder up to `max_seq_length` (always included)."""
    return _boundaries(max_seq_length, None)


def _boundaries(max_seq_length: int, bucket_boundaries: Optional[list[int]]) -> list[int]:
    # The last bucket must take the longest examples (bucket_by_sequence_length pads to a boundary).
    return [b for b in (bucket_boundaries or _DEFAULT_BOUNDARIES) if b < max_seq_length] + [max_seq_length]


def bucket_sizes(lengths: np.ndarray, max_seq_length: int,
                 bucket_boundaries: Optional[list[int]] = None) -> tuple[int, ...]:
    """Examples per bucket of ``bucket`` padding: bucket i holds lengths in (boundary[i-1], boundary[i]]."""
    boundaries = _boundaries(max_seq_length, bucket_boundaries)
    counts = np.bincount(np.searchsorted(boundaries, lengths), minlength=len(boundaries) + 1)
    return tuple(int(c) for c in counts if c)


def _element_dataset(split: EncodedSplit) -> tf.data.Dataset:
    features = {
        name: tf.RaggedTensor.from_row_splits(values, splits, validate=False)
        for name, (values, splits) in split.features.items()
    }
    labels = split.labels
    if labels is None:
        return tf.data.Dataset.from_tensor_slices(features)
    if isinstance(labels, RaggedLabels):
        labels = tf.RaggedTensor.from_row_splits(labels.values.astype(np.int32), labels.row_splits, validate=False)
    return tf.data.Dataset.from_tensor_slices((features, labels))


def _label_padding(labels, max_seq_length: int):
    """(padding values, padded shapes) for the label structure of a split."""
    if isinstance(labels, RaggedLabels):
        return tf.constant(IGNORE_INDEX, tf.int32), [max_seq_length]
    if isinstance(labels, dict):
        return ({k: tf.constant(0, tf.as_dtype(v.dtype)) for k, v in labels.items()},
                {k: list(v.shape[1:]) for k, v in labels.items()})
    return tf.constant(0, tf.as_dtype(labels.dtype)), list(labels.shape[1:])


def _add_attention_mask(example, *label):
    features = dict(example)
    features["attention_mask"] = tf.ones_like(features["input_ids"])
    return (features, *label) if label else features


def make_dataset(
    split: EncodedSplit,
    batch_size: int,
    padding: str = "bucket",
    max_seq_length: int = 128,
    pad_token_id: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    bucket_boundaries: Optional[list[int]] = None,
) -> tf.data.Dataset:
    """A batched, padded, prefetched `tf.data.Dataset` of ``(features, labels)``."""
    dataset = _element_dataset(split)
    if shuffle:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(_add_attention_mask, num_parallel_calls=tf.data.AUTOTUNE)
    names = list(split.features) + ["attention_mask"]
    pad_values = {n: tf.constant(pad_token_id if n == "input_ids" else 0, tf.int32) for n in names}
    has_labels = split.labels is not None
    if has_labels:
        label_pad, label_shapes = _label_padding(split.labels, max_seq_length)
        padding_values = (pad_values, label_pad)
    else:
        padding_values = pad_values

    if padding == "bucket":
        boundaries = _boundaries(max_seq_length, bucket_boundaries)
        # bucket_by_sequence_length pads bucket i to boundaries[i] - 1, so shift by one.
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda x, *_: tf.shape(x["input_ids"])[0],
            bucket_boundaries=[b + 1 for b in boundaries],
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=padding_values,
            pad_to_bucket_boundary=True,
            drop_remainder=drop_remainder,
        )
    elif padding == "dynamic":
        dataset = dataset.padded_batch(batch_size, padding_values=padding_values, drop_remainder=drop_remainder)
    elif padding == "max_length":
        shapes = {n: [max_seq_length] for n in names}
        dataset = dataset.padded_batch(
            batch_size,
            padded_shapes=(shapes, label_shapes) if has_labels else shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    else:
        raise ValueError(f"unknown padding mode {padding!r}")

    options = tf.data.Options()
    options.deterministic = True
    # With autotune on, fit sometimes stalled 5-37 s in tf.data's iterator destructor after the
    # last batch on these machines (shared/STACK-NOTES.md); a fixed prefetch avoids it.
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(2)


def padding_stats(split: EncodedSplit, batch_size: int, padding: str, max_seq_length: int,
                  bucket_boundaries: Optional[list[int]] = None) -> dict[str, float]:
    """Real vs padded tokens for one pass (used by the benchmark and the model card)."""
    dataset = make_dataset(split, batch_size, padding, max_seq_length, bucket_boundaries=bucket_boundaries)
    real = padded = 0
    for batch in dataset:
        features = batch[0] if isinstance(batch, tuple) else batch
        mask = features["attention_mask"].numpy()
        real += int(mask.sum())
        padded += int(mask.size)
    return {"real_tokens": real, "padded_tokens": padded, "padding_efficiency": real / max(padded, 1)}
