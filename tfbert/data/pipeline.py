"""Build `tf.data` pipelines from tokenized splits: where a batch is padded and assembled.

Three padding modes:
- ``bucket`` (default): examples are grouped by length and each batch is padded to its bucket's
  boundary. Few distinct shapes, so Keras' ``reduce_retracing`` train function never retraces
  per batch, and little compute is spent on padding (SST-2 averages 13 tokens).
- ``dynamic``: each batch is padded to its longest example.
- ``max_length``: every batch is padded to ``max_seq_length`` (static shapes for TPU/IPU),
  usually with ``drop_remainder``.
- ``packed``: several examples per row of ``max_seq_length`` tokens (`tfbert.data.packing`);
  there ``batch_size`` counts packs.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from tfbert.data.encoding import IGNORE_INDEX, EncodedSplit, RaggedLabels
from tfbert.data.packing import (DEFAULT_MAX_EXAMPLES_PER_PACK, epoch_stream, make_packed_dataset,
                                 make_packed_train_stream, plan_packing)

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


def _ragged_features(split: EncodedSplit) -> dict[str, tf.RaggedTensor]:
    return {
        name: tf.RaggedTensor.from_row_splits(values, splits, validate=False)
        for name, (values, splits) in split.features.items()
    }


def _ragged_labels(labels):
    if isinstance(labels, RaggedLabels):
        return tf.RaggedTensor.from_row_splits(labels.values.astype(np.int32), labels.row_splits, validate=False)
    return labels


def _element_dataset(split: EncodedSplit) -> tf.data.Dataset:
    features = _ragged_features(split)
    if split.labels is None:
        return tf.data.Dataset.from_tensor_slices(features)
    return tf.data.Dataset.from_tensor_slices((features, _ragged_labels(split.labels)))


def _elements_in_order(split: EncodedSplit, order: tf.data.Dataset) -> tf.data.Dataset:
    """The split's examples in the order of the example indices that `order` yields."""
    features = _ragged_features(split)
    labels = _ragged_labels(split.labels)

    def example(i):
        x = {name: column[i] for name, column in features.items()}
        if labels is None:
            return x
        y = tf.nest.map_structure(lambda column: tf.gather(column, i) if not isinstance(column, tf.RaggedTensor)
                                  else column[i], labels)
        return x, y

    return order.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


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


def _batched(dataset: tf.data.Dataset, split: EncodedSplit, batch_size: int, padding: str, max_seq_length: int,
             pad_token_id: int, drop_remainder: bool, bucket_boundaries: Optional[list[int]]) -> tf.data.Dataset:
    """Examples -> padded batches, as `padding` asks."""
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
        return dataset.bucket_by_sequence_length(
            element_length_func=lambda x, *_: tf.shape(x["input_ids"])[0],
            bucket_boundaries=[b + 1 for b in boundaries],
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=padding_values,
            pad_to_bucket_boundary=True,
            drop_remainder=drop_remainder,
        )
    if padding == "dynamic":
        return dataset.padded_batch(batch_size, padding_values=padding_values, drop_remainder=drop_remainder)
    if padding == "max_length":
        shapes = {n: [max_seq_length] for n in names}
        return dataset.padded_batch(
            batch_size,
            padded_shapes=(shapes, label_shapes) if has_labels else shapes,
            padding_values=padding_values,
            drop_remainder=drop_remainder,
        )
    raise ValueError(f"unknown padding mode {padding!r}")


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    # With autotune on, fit sometimes stalled 5-37 s in tf.data's iterator destructor after the
    # last batch on these machines (shared/STACK-NOTES.md); a fixed prefetch avoids it.
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(2)


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
    max_examples_per_pack: int = DEFAULT_MAX_EXAMPLES_PER_PACK,
) -> tf.data.Dataset:
    """A batched, padded, prefetched `tf.data.Dataset` of ``(features, labels)``: one pass, reshuffled per pass."""
    if padding == "packed":
        plan = plan_packing(split.lengths, max_seq_length, max_examples_per_pack)
        return _finish(make_packed_dataset(split, plan, batch_size, pad_token_id, shuffle, seed, drop_remainder))
    dataset = _element_dataset(split)
    if shuffle:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return _finish(_batched(dataset, split, batch_size, padding, max_seq_length, pad_token_id, drop_remainder,
                            bucket_boundaries))


def make_train_stream(
    split: EncodedSplit,
    batch_size: int,
    batches_per_epoch: int,
    padding: str = "bucket",
    max_seq_length: int = 128,
    pad_token_id: int = 0,
    seed: int = 0,
    drop_remainder: bool = False,
    bucket_boundaries: Optional[list[int]] = None,
    start_batch: int = 0,
    max_examples_per_pack: int = DEFAULT_MAX_EXAMPLES_PER_PACK,
) -> tf.data.Dataset:
    """Every training epoch back to back, as one endless dataset starting at batch `start_batch`.

    Epoch ``e`` visits the examples in the order ``stateless_shuffle(seed, e)``: a pure function
    of the seed and the epoch number, so a resumed run can rebuild any epoch and skip the batches
    it already trained on, seeing each example of the interrupted epoch exactly once. Each epoch
    is cut to `batches_per_epoch` (IPU: whole executions only). Pass ``steps_per_epoch`` to `fit`.
    With ``padding: packed`` each epoch's packs are the same function of ``(seed, e)``
    (`tfbert.data.packing`) and `batch_size` counts packs.
    """
    if padding == "packed":
        plan = plan_packing(split.lengths, max_seq_length, max_examples_per_pack)
        return _finish(make_packed_train_stream(split, plan, batch_size, batches_per_epoch, pad_token_id, seed,
                                                start_batch))
    n = len(split)
    seed = int(seed)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e]))
        elements = _elements_in_order(split, tf.data.Dataset.from_tensor_slices(order))
        batches = _batched(elements, split, batch_size, padding, max_seq_length, pad_token_id, drop_remainder,
                           bucket_boundaries)
        return batches.take(batches_per_epoch)

    return _finish(epoch_stream(epoch, start_batch, batches_per_epoch))


def padding_stats(split: EncodedSplit, batch_size: int, padding: str, max_seq_length: int,
                  bucket_boundaries: Optional[list[int]] = None,
                  max_examples_per_pack: int = DEFAULT_MAX_EXAMPLES_PER_PACK) -> dict[str, float]:
    """Real vs padded tokens for one pass (used by the benchmark and the model card)."""
    if padding == "packed":
        # The pack layout is the same every epoch: its token slots are what training computes on.
        plan = plan_packing(split.lengths, max_seq_length, max_examples_per_pack)
        slots = plan.num_packs * max_seq_length
        return {"real_tokens": plan.real_tokens, "padded_tokens": slots, "padding_efficiency": plan.efficiency}
    dataset = make_dataset(split, batch_size, padding, max_seq_length, bucket_boundaries=bucket_boundaries)
    real = padded = 0
    for batch in dataset:
        features = batch[0] if isinstance(batch, tuple) else batch
        mask = features["attention_mask"].numpy()
        real += int(mask.sum())
        padded += int(mask.size)
    return {"real_tokens": real, "padded_tokens": padded, "padding_efficiency": real / max(padded, 1)}
