"""``data.padding: packed``: several examples per row of ``max_seq_length`` tokens, without cross-contamination.

The layout follows Krell et al. 2021, "Efficient Sequence Packing without Cross-contamination":

- which lengths share a row is decided once, from the histogram of example lengths, by
  shortest-pack-first histogram packing (SPFHP: lengths from longest to shortest, each put into the
  open pack with the most room left, at most ``max_examples_per_pack`` per pack). The result is a
  fixed table of *slots* (``[num_packs, max_examples_per_pack]`` lengths), so every epoch has the
  same number of packs and the learning-rate schedule can count packed batches before training;
- which example fills which slot changes every epoch: epoch ``e`` shuffles the examples with
  ``(seed, e)``, gives each slot of length L the next shuffled example of length L, and shuffles
  the packs. A pure function of ``(seed, epoch)``, so a resumed run rebuilds exactly the batches an
  uninterrupted one would have seen (`make_packed_train_stream`).

A packed batch is ``[packs, max_seq_length]`` for ``input_ids``, ``token_type_ids``,
``position_ids`` (restarting at 0 in each example) and ``example_ids`` (1, 2, ... per example of
the row, 0 on padding; the model builds the block-diagonal attention mask from it), plus
``example_starts [packs, max_examples_per_pack]`` (each example's [CLS] position). Labels:
classification ``[packs, K]`` (int32 class ids; float32 for regression scores) and QA start/end
``[packs, K]`` (positions in the row), token classification ``[packs, max_seq_length]``; empty slots
and padding carry IGNORE_INDEX.

Batch size: ``training.per_device_train_batch_size`` keeps counting *examples*. A packed
micro-batch holds ``round(per_device_train_batch_size / examples per pack)`` packs (at least one;
`PackingPlan.packs_for`), a static ``[packs, max_seq_length]`` shape chosen once from the pack
layout, so a recipe keeps about the same examples per update (and the same learning rate) when it
switches to packing; the exact number of examples varies a little from batch to batch. The loss
is the mean over a micro-batch's examples (labelled tokens for NER), as unpacked, and gradient
accumulation averages the micro-batch means, as unpacked.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from tfbert.data.encoding import IGNORE_INDEX, EncodedSplit, RaggedLabels

#: Default ``data.max_examples_per_pack``. SST-2 (median 10 tokens) in 128-token rows: 93% real
#: tokens with 16, 98% with 24, 99.5% with 32. A higher cap costs only the width of the
#: per-example tensors ([packs, K]), not attention or encoder compute.
DEFAULT_MAX_EXAMPLES_PER_PACK = 32

#: Strategies whose compiled programs need every batch to have the same shape.
STATIC_SHAPE_STRATEGIES = ("tpu", "ipu")

#: Inputs of a packed batch besides the tokenizer's own (``input_ids``, ``token_type_ids``).
PACKED_INPUTS = ("position_ids", "example_ids", "example_starts")


def spfhp(histogram: np.ndarray, max_seq_length: int, max_examples_per_pack: int) -> list[tuple[int, list[int]]]:
    """Shortest-pack-first histogram packing: ``[(count, [lengths of one pack]), ...]``.

    Args:
        histogram: ``histogram[L - 1]`` examples of length L, for L in 1..max_seq_length.
        max_seq_length: tokens per pack.
        max_examples_per_pack: most examples in one pack.
    """
    # Open packs grouped by the room they have left: room -> [(how many identical packs, lengths)].
    open_packs: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
    closed: list[tuple[int, list[int]]] = []

    def add(count: int, pack: list[int]) -> None:
        room = max_seq_length - sum(pack)
        if room == 0 or len(pack) == max_examples_per_pack:
            closed.append((count, pack))
        else:
            open_packs[room].append((count, pack))

    for length in range(max_seq_length, 0, -1):
        todo = int(histogram[length - 1])
        # Longest first, so the shortest pack (most room) is the one least likely to fit what comes later.
        room = max_seq_length
        while todo > 0:
            while room >= length and room not in open_packs:
                room -= 1
            if room < length:
                # New packs take as many of this length as fit: one each (as in the paper) leaves
                # short-text data such as SST-2 at ~80% real tokens, since only shorter lengths
                # would fill them later.
                per_pack = min(max_examples_per_pack, max_seq_length // length)
                full, rest = divmod(todo, per_pack)
                if full:
                    add(full, [length] * per_pack)
                if rest:
                    add(1, [length] * rest)
                break
            count, pack = open_packs[room].pop()
            if not open_packs[room]:
                del open_packs[room]
            used = min(count, todo)
            if count > used:
                open_packs[room].append((count - used, pack))
            todo -= used
            add(used, pack + [length])
    return closed + [group for groups in open_packs.values() for group in groups]


@dataclass(frozen=True)
class PackingPlan:
    """The epoch-invariant pack layout of one split.

    Attributes:
        slot_lengths: ``[num_packs, max_examples_per_pack]`` example lengths per slot (0: empty).
        max_seq_length: tokens per pack.
    """

    slot_lengths: np.ndarray
    max_seq_length: int

    @property
    def num_packs(self) -> int:
        return int(self.slot_lengths.shape[0])

    @property
    def max_examples_per_pack(self) -> int:
        return int(self.slot_lengths.shape[1])

    @property
    def num_examples(self) -> int:
        return int(np.count_nonzero(self.slot_lengths))

    @property
    def real_tokens(self) -> int:
        return int(self.slot_lengths.sum())

    @property
    def efficiency(self) -> float:
        """Real tokens / token slots over all packs."""
        return self.real_tokens / max(1, self.num_packs * self.max_seq_length)

    @property
    def examples_per_pack(self) -> float:
        return self.num_examples / max(1, self.num_packs)

    def packs_for(self, examples_per_batch: int) -> int:
        """Packs per batch holding about `examples_per_batch` examples on average (at least 1)."""
        return max(1, int(round(examples_per_batch / self.examples_per_pack)))

    def epoch_assignment(self, lengths: np.ndarray, seed: int, epoch: int) -> np.ndarray:
        """``[num_packs, K]`` example indices for epoch `epoch` (-1: empty slot), packs in shuffled order.

        Args:
            lengths: the split's example lengths (the ones the plan was made from).
            seed: the run's seed; with `epoch` it fixes the whole assignment.
            epoch: the epoch number.
        """
        rng = np.random.default_rng([int(seed), int(epoch)])
        shuffled = rng.permutation(len(lengths))
        # Examples grouped by length, shuffled within each length; slots grouped the same way
        # (in their fixed order): both hold every length the same number of times.
        examples = shuffled[np.argsort(lengths[shuffled], kind="stable")]
        flat = self.slot_lengths.reshape(-1)
        slots = np.argsort(flat, kind="stable")[np.count_nonzero(flat == 0):]
        assignment = np.full(flat.shape, -1, dtype=np.int64)
        assignment[slots] = examples
        return assignment.reshape(self.slot_lengths.shape)[rng.permutation(self.num_packs)]

    def summary(self) -> str:
        return (f"{self.num_examples} examples in {self.num_packs} packs of {self.max_seq_length} tokens "
                f"({self.efficiency:.1%} real tokens, {self.examples_per_pack:.2f} examples/pack, "
                f"at most {self.max_examples_per_pack})")


def plan_packing(lengths: np.ndarray, max_seq_length: int,
                 max_examples_per_pack: int = DEFAULT_MAX_EXAMPLES_PER_PACK) -> PackingPlan:
    """The pack layout (SPFHP) of examples with these token lengths.

    Args:
        lengths: tokens per example, each in 1..max_seq_length.
        max_seq_length: tokens per pack.
        max_examples_per_pack: most examples in one pack (the width of the per-example tensors).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and (lengths.min() < 1 or lengths.max() > max_seq_length):
        raise ValueError(f"example lengths must lie in 1..{max_seq_length}, got {lengths.min()}..{lengths.max()}")
    histogram = np.bincount(lengths, minlength=max_seq_length + 1)[1:]
    groups = spfhp(histogram, max_seq_length, max_examples_per_pack)
    table = np.zeros((len(groups), max_examples_per_pack), dtype=np.int64)
    for row, (_, pack) in enumerate(groups):
        table[row, :len(pack)] = sorted(pack, reverse=True)
    counts = np.array([count for count, _ in groups], dtype=np.int64)
    return PackingPlan(slot_lengths=np.repeat(table, counts, axis=0), max_seq_length=int(max_seq_length))


def _ragged(values: np.ndarray, row_splits: np.ndarray) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)


class _Assembler:
    """Turns a batch of pack assignments ``[B, K]`` into the packed features and labels (graph ops)."""

    def __init__(self, split: EncodedSplit, max_seq_length: int, max_examples_per_pack: int, pad_token_id: int):
        self.features = {name: _ragged(v, s) for name, (v, s) in split.features.items()}
        self.lengths = tf.constant(split.lengths, tf.int32)
        labels = split.labels
        self.labels = (_ragged(labels.values.astype(np.int32), labels.row_splits) if isinstance(labels, RaggedLabels)
                       else None if labels is None
                       else {k: tf.constant(v) for k, v in labels.items()} if isinstance(labels, dict)
                       else tf.constant(labels))
        self.seq, self.k, self.pad_token_id = int(max_seq_length), int(max_examples_per_pack), int(pad_token_id)

    def __call__(self, assignment: tf.Tensor):
        batch = tf.shape(assignment)[0]
        valid = assignment >= 0
        index = tf.boolean_mask(assignment, valid)                # examples, pack by pack
        per_pack = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        lengths = tf.gather(self.lengths, index)
        slot = tf.ragged.range(per_pack).flat_values              # slot of each example in its pack
        starts = tf.math.cumsum(lengths, exclusive=True) - tf.gather(
            tf.math.cumsum(tf.math.segment_sum(lengths, tf.repeat(tf.range(batch), per_pack)), exclusive=True),
            tf.repeat(tf.range(batch), per_pack))

        def tokens(flat_values, default):
            # Per-token values of the chosen examples -> [B, seq], each pack's examples back to back.
            nested = tf.RaggedTensor.from_nested_row_lengths(flat_values, [per_pack, lengths], validate=False)
            return nested.merge_dims(1, 2).to_tensor(default, shape=[batch, self.seq])

        def per_example(values, default):
            return tf.RaggedTensor.from_row_lengths(values, per_pack, validate=False).to_tensor(
                default, shape=[batch, self.k])

        x = {name: tokens(tf.gather(column, index).flat_values,
                          self.pad_token_id if name == "input_ids" else 0)
             for name, column in self.features.items()}
        x["position_ids"] = tokens(tf.ragged.range(lengths).flat_values, 0)
        x["example_ids"] = tokens(tf.repeat(slot + 1, lengths), 0)
        x["example_starts"] = per_example(starts, 0)
        if self.labels is None:
            return x
        if isinstance(self.labels, tf.RaggedTensor):
            y = tokens(tf.gather(self.labels, index).flat_values, IGNORE_INDEX)
        elif isinstance(self.labels, dict):
            # QA: a window's start/end token becomes a position in the row.
            y = {k: per_example(tf.gather(v, index) + tf.cast(starts, v.dtype), IGNORE_INDEX)
                 for k, v in self.labels.items()}
        else:
            labels = tf.gather(self.labels, index)
            # Class ids as int32; float labels (regression scores) keep their values.
            y = per_example(labels if labels.dtype.is_floating else tf.cast(labels, tf.int32), IGNORE_INDEX)
        return x, y


def _packed_batches(assignments: tf.data.Dataset, assembler: _Assembler, batch_size: int) -> tf.data.Dataset:
    return assignments.batch(batch_size, drop_remainder=True).map(
        assembler, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_packed_train_stream(split: EncodedSplit, plan: PackingPlan, batch_size: int, batches_per_epoch: int,
                             pad_token_id: int = 0, seed: int = 0, start_batch: int = 0) -> tf.data.Dataset:
    """Every epoch's packed batches back to back from `start_batch` (see `make_train_stream`).

    Args:
        split: the training split (`plan` was made from its lengths).
        plan: the pack layout.
        batch_size: packs per dataset batch (remainder packs are left out; different ones each epoch).
        batches_per_epoch: batches taken from each epoch.
        pad_token_id: ``input_ids`` padding.
        seed: with the epoch number, fixes each epoch's packs and their order.
        start_batch: batches to skip (a resumed run).
    """
    lengths = split.lengths.astype(np.int64)
    assembler = _Assembler(split, plan.max_seq_length, plan.max_examples_per_pack, pad_token_id)
    k = plan.max_examples_per_pack

    def epoch_assignment(e):
        return plan.epoch_assignment(lengths, seed, int(e))

    def epoch(e):
        assignment = tf.numpy_function(epoch_assignment, [e], tf.int64, stateful=False)
        assignment = tf.ensure_shape(assignment, [plan.num_packs, k])
        packs = tf.data.Dataset.from_tensor_slices(assignment)
        return _packed_batches(packs, assembler, batch_size).take(batches_per_epoch)

    return epoch_stream(epoch, start_batch, batches_per_epoch)


def epoch_stream(epoch: Callable[[tf.Tensor], tf.data.Dataset], start_batch: int,
                 batches_per_epoch: int) -> tf.data.Dataset:
    """``epoch(0)``, ``epoch(1)``, ... back to back, endless, from batch `start_batch` on.

    Args:
        epoch: epoch number (int64 scalar tensor) -> that epoch's `batches_per_epoch` batches.
        start_batch: batches to skip (a resumed run): whole epochs are never built, the rest skipped.
        batches_per_epoch: batches each `epoch` gives.
    """
    first_epoch, offset = divmod(int(start_batch), int(batches_per_epoch))
    # The epoch functions are plain TensorFlow code: autograph converting them (and all they call)
    # costs every run time at start.
    stream = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(
        tf.autograph.experimental.do_not_convert(epoch))
    return stream.skip(offset) if offset else stream


def make_packed_dataset(split: EncodedSplit, plan: PackingPlan, batch_size: int, pad_token_id: int = 0,
                        shuffle: bool = False, seed: int = 0, drop_remainder: bool = True) -> tf.data.Dataset:
    """One pass of packed batches (epoch 0's layout, or a fresh random epoch per pass when `shuffle`).

    Args:
        split: the examples (`plan` was made from their lengths).
        plan: the pack layout.
        batch_size: packs per batch.
        pad_token_id: ``input_ids`` padding.
        shuffle: draw a new epoch number (so a new assignment and order) for every pass.
        seed: the seed of the assignment (and of the epoch draw).
        drop_remainder: drop the last partial batch (static shapes); False keeps every example.
    """
    lengths = split.lengths.astype(np.int64)
    assembler = _Assembler(split, plan.max_seq_length, plan.max_examples_per_pack, pad_token_id)
    if shuffle:
        epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    else:
        epochs = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))

    def epoch(e):
        # Dataset.random draws any int64; NumPy's seed sequence takes non-negative numbers only.
        assignment = tf.numpy_function(lambda v: plan.epoch_assignment(lengths, seed, int(v) % (1 << 62)), [e],
                                       tf.int64, stateful=False)
        packs = tf.data.Dataset.from_tensor_slices(tf.ensure_shape(assignment, [plan.num_packs,
                                                                                plan.max_examples_per_pack]))
        if drop_remainder:
            return _packed_batches(packs, assembler, batch_size)
        # The last partial batch is filled up with empty packs, so shapes stay static.
        return packs.batch(batch_size).map(
            lambda a: assembler(tf.concat([a, tf.fill([batch_size - tf.shape(a)[0], tf.shape(a)[1]],
                                                      tf.constant(-1, tf.int64))], 0)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return epochs.flat_map(tf.autograph.experimental.do_not_convert(epoch))  # as in `epoch_stream`


def packed_batches_per_epoch(plan: PackingPlan, batch_size: int) -> int:
    """Whole batches of `batch_size` packs per epoch (the remainder packs are left out)."""
    return plan.num_packs // batch_size


def resolve_padding(padding: str, strategy: str, can_pack: bool = True) -> str:
    """The padding a strategy runs: static-shape strategies (tpu, ipu) pack by default.

    Args:
        padding: ``data.padding`` as configured.
        strategy: the strategy kind (``default``, ``tpu``, ``ipu``, ...).
        can_pack: False where packing cannot run: an IPU pipeline (``distribution.pipeline_splits``)
            unrolls the unpacked model, and a task without a packed head (`Task.supports_packing`);
            there the static-shape default is ``max_length``.
    """
    if strategy in STATIC_SHAPE_STRATEGIES and padding == "bucket":
        return "packed" if can_pack else "max_length"
    return padding


__all__ = ["DEFAULT_MAX_EXAMPLES_PER_PACK", "PACKED_INPUTS", "PackingPlan", "epoch_stream", "make_packed_dataset",
           "make_packed_train_stream", "packed_batches_per_epoch", "plan_packing", "resolve_padding", "spfhp"]
