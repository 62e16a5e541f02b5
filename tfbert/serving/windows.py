"""Question/context pairs as overlapping windows of word pieces, for extractive QA: Hugging Face's
``truncation="only_second"`` with ``return_overflowing_tokens`` and ``stride=doc_stride``.

Windows follow the Rust ``Encoding::truncate`` with a stride. The stride must be smaller than the
room a window has for the context (``max_seq_length - max_query_length - 3``), checked when the
graph is built (:class:`~tfbert.errors.ConfigError`); Hugging Face checks (and panics) only when
a sequence actually overflows.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

import tensorflow as tf

from tfbert.errors import ConfigError


class _Windows(NamedTuple):
    """Windows over token sequences: the example each comes from (int32) and its token range
    ``[starts, stops)`` in that example's sequence (int64), all ``[windows]``."""

    examples: tf.Tensor
    starts: tf.Tensor
    stops: tf.Tensor


def _take_windows(
    sequence: Mapping[str, tf.RaggedTensor], windows: _Windows
) -> dict[str, tf.RaggedTensor]:
    """[batch, (tokens)] channels -> [windows, (tokens)]: each window's range of its example."""
    bases = tf.gather(sequence["input_ids"].row_starts(), windows.examples)
    index = tf.ragged.range(bases + windows.starts, bases + windows.stops)
    return {
        name: index.with_flat_values(tf.gather(value.values, index.flat_values))
        for name, value in sequence.items()
    }


def _check_stride(stride: int, room: int, room_text: str) -> None:
    # The Rust tokenizer panics on such a stride when a sequence overflows; fail early instead.
    if not 0 <= stride < room:
        raise ConfigError(
            f"stride {stride} must be at least 0 and smaller than {room_text}"
        )


def _longest_first(n1: tf.Tensor, n2: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-row lengths to keep, as the Rust ``truncate_encodings`` LongestFirst strategy.

    With the shorter length s and the longer l: l keeps max(s, budget - s) (or s when s alone is
    over budget); if that is still over budget the shorter keeps budget // 2 and the longer
    budget // 2 + budget % 2. Rows within budget come out with limits >= their lengths.
    """
    swap = n1 > n2
    short = tf.minimum(n1, n2)
    budget_t = tf.constant(budget, n1.dtype)
    long_keep = tf.where(short > budget_t, short, tf.maximum(short, budget_t - short))
    over = short + long_keep > budget_t
    short_keep = tf.where(over, budget_t // 2, short)
    long_keep = tf.where(over, budget_t // 2 + budget_t % 2, long_keep)
    return tf.where(swap, long_keep, short_keep), tf.where(swap, short_keep, long_keep)


class WindowsMixin:
    """`GraphBertTokenizer`'s windowed encodings."""

    def encode_qa_windows(
        self, questions: tf.Tensor, contexts: tf.Tensor, doc_stride: int,
        max_query_length: int = 64,
    ) -> dict[str, tf.Tensor]:
        """(question, context) ``[batch]`` strings -> extractive QA windows ``[windows, longest]``.

        Each question is cut to its first `max_query_length` word pieces; then, as Hugging Face's
        ``tokenizer(questions, contexts, truncation="only_second", max_length=max_seq_length,
        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
        padding=True)``, each window is ``[CLS] question [SEP] context chunk [SEP]`` with
        consecutive chunks of a context overlapping by `doc_stride` word pieces.

        Outputs (int32): ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the model
        has them), ``offsets_start``/``offsets_end`` (code point span in the context, -1 for
        question, special and padding tokens), all ``[windows, longest]``, and
        ``window_to_example`` ``[windows]`` (Hugging Face's ``overflow_to_sample_mapping``).
        """
        if max_query_length < 1:
            raise ConfigError(f"max_query_length must be at least 1, got {max_query_length}")
        room = self.max_seq_length - self._num_added_pair - max_query_length
        if room < 1:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} leaves no room for the context after a "
                f"question of max_query_length {max_query_length} and {self._num_added_pair} "
                "special tokens"
            )
        _check_stride(doc_stride, room, f"the {room} context tokens a window has room for "
                                        f"(max_seq_length {self.max_seq_length} - "
                                        f"max_query_length {max_query_length} - "
                                        f"{self._num_added_pair} special tokens)")
        with tf.name_scope("graph_bert_tokenizer"):
            questions = tf.convert_to_tensor(questions, dtype=tf.string)
            contexts = tf.convert_to_tensor(contexts, dtype=tf.string)
            with tf.control_dependencies([
                tf.debugging.assert_equal(
                    tf.size(questions), tf.size(contexts),
                    message="questions and contexts must have the same batch size",
                )
            ]):
                question_ids = self._tokenize(questions)[:, :max_query_length]
            context = self._tokenize_with_offsets(contexts)
            # The question is never cut further: the context gets what the question leaves.
            budgets = (self.max_seq_length - self._num_added_pair) - question_ids.row_lengths()
            windows = self._window_ranges(context.ids.row_lengths(), budgets, doc_stride)
            context_part = _take_windows(
                {"input_ids": context.ids, "offsets_start": context.starts,
                 "offsets_end": context.ends},
                windows,
            )
            question_part = tf.gather(question_ids, windows.examples)
            not_context = tf.ones_like(question_part) * -1
            question_part = {"input_ids": question_part, "offsets_start": not_context,
                             "offsets_end": not_context}
            outputs = self._pad(self._apply_template(
                self._settings["pair_template"], [question_part, context_part],
                tf.size(windows.examples),
            ))
            outputs["window_to_example"] = windows.examples
            return outputs

    def _window_ranges(self, lengths: tf.Tensor, budgets: tf.Tensor, stride: int) -> _Windows:
        """Token ranges of the windows of sequences with `lengths` tokens, as the Rust
        ``Encoding::truncate`` with a stride.

        A sequence within its budget is one window. A longer one is cut into windows of `budget`
        tokens whose starts are ``budget - stride`` apart, counted from its start (right
        truncation: the last window is shorter) or from its end (left truncation: windows come
        last chunk first, the final one is shorter).
        """
        steps = tf.maximum(budgets - stride, 1)
        over = tf.maximum(lengths - budgets, 0)
        counts = 1 + (over + steps - 1) // steps
        examples = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), counts)
        k = tf.ragged.range(counts).flat_values
        length, budget, step = (tf.gather(x, examples) for x in (lengths, budgets, steps))
        if self._settings["truncation_side"] == "right":
            starts = k * step
            stops = tf.minimum(starts + budget, length)
        else:
            stops = length - k * step
            starts = tf.maximum(stops - budget, 0)
        return _Windows(tf.cast(examples, tf.int32), starts, stops)
