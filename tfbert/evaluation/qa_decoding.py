"""Turn per-window start/end logits into answer text, the standard SQuAD n-best decoding.

Logits come one row per window of :class:`~tfbert.data.qa_features.QAFeatures`, in window
order: either a sequence of 1-D arrays or a padded 2-D array (num_windows, padded_length).
Only the first ``features.lengths[i]`` entries of row ``i`` are read, so padding never wins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from tfbert.data.qa_features import QAFeatures
from tfbert.data.squad import QAExample

Logits = Union[np.ndarray, Sequence[np.ndarray]]


@dataclass(frozen=True)
class Prediction:
    """An answer span: `text` is ``context[start_char:end_char]`` (end exclusive)."""

    text: str
    start_char: int
    end_char: int
    score: float


NO_ANSWER = Prediction(text="", start_char=-1, end_char=-1, score=float("-inf"))


def _window_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray,
    n_best_size: int, max_answer_length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid (start, end, score) among the n-best starts x n-best ends of one window."""
    length = len(offsets)
    if len(start_logits) < length or len(end_logits) < length:
        raise ValueError(
            f"a window has {length} tokens but only {min(len(start_logits), len(end_logits))} logits"
        )
    start_logits = np.asarray(start_logits[:length], dtype=np.float64)
    end_logits = np.asarray(end_logits[:length], dtype=np.float64)
    # Stable sort: among equal logits the earlier token wins, so results are reproducible.
    top_starts = np.argsort(-start_logits, kind="stable")[:n_best_size]
    top_ends = np.argsort(-end_logits, kind="stable")[:n_best_size]
    starts, ends = np.meshgrid(top_starts, top_ends, indexing="ij")
    starts, ends = starts.ravel(), ends.ravel()
    in_context = offsets[:, 0] >= 0
    valid = (
        (ends >= starts)
        & (ends - starts + 1 <= max_answer_length)
        & in_context[starts]
        & in_context[ends]
    )
    starts, ends = starts[valid], ends[valid]
    return starts, ends, start_logits[starts] + end_logits[ends]


def decode_n_best(
    start_logits: Logits,
    end_logits: Logits,
    features: QAFeatures,
    examples: Sequence[QAExample],
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> dict[str, list[Prediction]]:
    """Question id -> up to `n_best_size` distinct answer spans over all its windows, best first.

    Per window, the `n_best_size` highest start and end logits are paired; a pair is dropped
    when the end comes before the start, either token is outside the context, or the span is
    longer than `max_answer_length` tokens. Score is start logit + end logit. A span found in
    two overlapping windows is listed once, with its higher score. Questions with no valid span
    get an empty list.
    """
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size ({n_best_size}) and max_answer_length ({max_answer_length}) must be >= 1")
    if not len(start_logits) == len(end_logits) == len(features):
        raise ValueError(
            f"got {len(start_logits)} start and {len(end_logits)} end logit rows for "
            f"{len(features)} windows"
        )
    if len(features) and features.example_index.max() >= len(examples):
        raise ValueError("the features were made from more examples than were passed")

    best: list[dict[tuple[int, int], float]] = [{} for _ in examples]
    for window in range(len(features)):
        offsets = features.window_offsets(window)
        starts, ends, scores = _window_spans(
            start_logits[window], end_logits[window], offsets, n_best_size, max_answer_length
        )
        spans = best[features.example_index[window]]
        for start, end, score in zip(starts, ends, scores):
            key = (int(offsets[start, 0]), int(offsets[end, 1]))
            if score > spans.get(key, float("-inf")):
                spans[key] = float(score)

    results: dict[str, list[Prediction]] = {}
    for example, spans in zip(examples, best):
        ranked = sorted(spans.items(), key=lambda item: (-item[1], item[0]))[:n_best_size]
        results[example.id] = [
            Prediction(text=example.context[s:e], start_char=s, end_char=e, score=score)
            for (s, e), score in ranked
        ]
    return results


def decode_predictions(
    start_logits: Logits,
    end_logits: Logits,
    features: QAFeatures,
    examples: Sequence[QAExample],
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> dict[str, Prediction]:
    """Question id -> its best answer span (see :func:`decode_n_best`), or :data:`NO_ANSWER`
    (empty text, character offsets -1, score -inf) when no window holds a valid span."""
    n_best = decode_n_best(start_logits, end_logits, features, examples, n_best_size, max_answer_length)
    return {qid: spans[0] if spans else NO_ANSWER for qid, spans in n_best.items()}
