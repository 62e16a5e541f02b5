"""Turn (question, context) pairs into overlapping token windows with answer span labels.

This is the Hugging Face `run_qa` recipe: the fast tokenizer truncates only the context
(``truncation="only_second"``) and returns every overflowing window, consecutive windows
sharing `doc_stride` context tokens (HF's `stride` is the *overlap*; the original BERT
`run_squad.py` used `doc_stride` as the step between window starts instead). Offset mappings
tie every context token back to characters of the context, which gives the training labels
here and the answer text in :mod:`tfbert.evaluation.qa_decoding`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from tfbert.data.features import token_feature_names
from tfbert.data.squad import QAExample
from tfbert.errors import ConfigError, DataError

NOT_CONTEXT = (-1, -1)
_BATCH = 1000


@dataclass
class QAFeatures:
    """Token windows of a set of questions, ragged (unpadded) like `EncodedSplit.features`.

    `features` maps an input name to (flat int32 values, int64 row_splits); window ``i`` is
    ``values[row_splits[i]:row_splits[i + 1]]``. `offsets` is (total_tokens, 2) int32 and shares
    the row splits of ``input_ids``: each token's (char_start, char_end) in its example's
    context, end exclusive, or (-1, -1) for question, special and padding tokens.
    `start_positions`/`end_positions` (training only) are token indices in the window, 0 ([CLS])
    where the window does not hold the whole first reference answer.
    """

    features: dict[str, tuple[np.ndarray, np.ndarray]]
    example_index: np.ndarray
    offsets: np.ndarray
    start_positions: Optional[np.ndarray] = None
    end_positions: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.example_index)

    @property
    def row_splits(self) -> np.ndarray:
        return self.features["input_ids"][1]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits)

    def window(self, index: int, name: str = "input_ids") -> np.ndarray:
        """The values of feature `name` in window `index`."""
        values, splits = self.features[name]
        return values[splits[index]: splits[index + 1]]

    def window_offsets(self, index: int) -> np.ndarray:
        """(length, 2) character offsets of window `index`; (-1, -1) outside the context."""
        splits = self.row_splits
        return self.offsets[splits[index]: splits[index + 1]]


def _check_budget(tokenizer, max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
    # The tokenizer panics (a Rust PanicException, not a Python error) when the stride is not
    # smaller than the context room of a window, so check against the tightest case: the
    # longest question allowed.
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_seq_length - max_query_length - specials
    if max_query_length < 1 or room < 1:
        raise ConfigError(
            f"max_seq_length {max_seq_length} leaves no room for the context after a question of "
            f"max_query_length {max_query_length} and {specials} special tokens"
        )
    if not 0 <= doc_stride < room:
        raise ConfigError(
            f"doc_stride {doc_stride} must be at least 0 and smaller than the {room} context tokens "
            f"a window has room for (max_seq_length {max_seq_length} - max_query_length "
            f"{max_query_length} - {specials} special tokens)"
        )


def _truncate_questions(questions: list[str], tokenizer, max_query_length: int) -> list[str]:
    """Cut each question after its `max_query_length`-th token, as BERT's run_squad does.

    Cutting the text at a token's end re-tokenizes to the same leading tokens with WordPiece
    (greedy longest match), so the question keeps exactly `max_query_length` tokens.
    """
    encoded = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    cut = []
    for question, offsets in zip(questions, encoded["offset_mapping"]):
        cut.append(question[: offsets[max_query_length - 1][1]] if len(offsets) > max_query_length else question)
    return cut


def _answer_tokens(offsets: np.ndarray, is_context: np.ndarray, start_char: int, end_char: int) -> tuple[int, int]:
    """Token span of chars [start_char, end_char) in one window, or (0, 0) if not all inside it."""
    context_tokens = np.flatnonzero(is_context)
    if len(context_tokens) == 0:
        return 0, 0
    first, last = context_tokens[0], context_tokens[-1]
    if offsets[first, 0] > start_char or offsets[last, 1] < end_char:
        return 0, 0
    # First context token ending after the answer start, last one starting before its end:
    # robust to answers that begin or end inside a word piece.
    start = context_tokens[np.argmax(offsets[context_tokens, 1] > start_char)]
    end = context_tokens[len(context_tokens) - 1 - np.argmax(offsets[context_tokens[::-1], 0] < end_char)]
    return int(start), int(end)


def _stripped_span(context: str, answer: dict) -> tuple[int, int]:
    # Leading/trailing white space is never inside a token, so it must not decide whether a
    # window holds the answer.
    start = answer["answer_start"]
    end = start + len(answer["text"])
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return start, end


def prepare_qa_features(
    examples: Sequence[QAExample],
    tokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    training: bool = True,
    max_query_length: int = 64,
) -> QAFeatures:
    """Tokenize questions with their contexts into overlapping windows (see :class:`QAFeatures`).

    `tokenizer` must be a Hugging Face fast tokenizer (offsets and overflow windows). Questions
    longer than `max_query_length` tokens are cut to that length. Consecutive windows of a
    context share `doc_stride` tokens. With `training`, each window is labelled with the token
    span of the example's first answer.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("extractive QA needs a fast tokenizer (offset mappings); got a slow one")
    _check_budget(tokenizer, max_seq_length, doc_stride, max_query_length)
    input_names = token_feature_names(tokenizer)

    columns: dict[str, list[np.ndarray]] = {name: [] for name in input_names}
    offset_rows: list[np.ndarray] = []
    example_index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    for batch_start in range(0, len(examples), _BATCH):
        batch = examples[batch_start: batch_start + _BATCH]
        questions = _truncate_questions([e.question for e in batch], tokenizer, max_query_length)
        encoded = tokenizer(
            questions, [e.context for e in batch],
            truncation="only_second", max_length=max_seq_length, stride=doc_stride,
            return_overflowing_tokens=True, return_offsets_mapping=True,
            return_attention_mask=False, padding=False,
        )
        for window, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            for name in input_names:
                columns[name].append(np.asarray(encoded[name][window], dtype=np.int32))
            is_context = np.array([s == 1 for s in encoded.sequence_ids(window)], dtype=bool)
            offsets = np.asarray(encoded["offset_mapping"][window], dtype=np.int32).reshape(-1, 2)
            offsets[~is_context] = NOT_CONTEXT
            offset_rows.append(offsets)
            example = batch[sample]
            example_index.append(batch_start + sample)
            if training:
                if not example.answers:
                    raise DataError(f"question {example.id}: no answer to label the training windows with")
                start, end = _answer_tokens(offsets, is_context, *_stripped_span(example.context, example.answers[0]))
                starts.append(start)
                ends.append(end)

    lengths = np.array([len(row) for row in offset_rows], dtype=np.int64)
    row_splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    features = {
        name: (np.concatenate(rows) if rows else np.zeros(0, np.int32), row_splits)
        for name, rows in columns.items()
    }
    return QAFeatures(
        features=features,
        example_index=np.asarray(example_index, dtype=np.int64),
        offsets=np.concatenate(offset_rows) if offset_rows else np.zeros((0, 2), np.int32),
        start_positions=np.asarray(starts, dtype=np.int64) if training else None,
        end_positions=np.asarray(ends, dtype=np.int64) if training else None,
    )
