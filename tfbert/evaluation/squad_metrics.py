"""SQuAD v1.1 exact match and F1, as the official `evaluate-v1.1.py` computes them.

Answers are compared after normalisation (lower-case, drop punctuation, drop the articles
a/an/the, collapse white space) and each question scores its best match over all reference
answers. One quirk is kept on purpose so numbers stay comparable with published ones: when a
prediction and a reference both normalise to nothing, exact match is 1 but F1 is 0 (v1.1 has
no special case for empty token lists; the v2.0 script added one).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Callable, Iterable, Mapping

import numpy as np

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower-case, remove ASCII punctuation, remove a/an/the, collapse white space."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """1.0 if both normalise to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    """Harmonic mean of token precision and recall over the normalised bags of tokens."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def metric_max_over_ground_truths(
    metric_fn: Callable[[str, str], float], prediction: str, ground_truths: Iterable[str]
) -> float:
    """The best score of `prediction` against any of the reference answers (0.0 if none)."""
    return max((metric_fn(prediction, truth) for truth in ground_truths), default=0.0)


def squad_evaluate(references: Mapping[str, list[str]], predictions: Mapping[str, str]) -> dict:
    """Exact match and F1 in percent (0-100), averaged over every question in `references`.

    A question with no prediction scores 0 on both (as in the official script); predictions
    for ids that are not in `references` are ignored. `num_missing` counts the former.
    """
    if not references:
        raise ValueError("squad_evaluate needs at least one reference question")
    exact = f1 = 0.0
    missing = 0
    for qid, truths in references.items():
        if qid not in predictions:
            missing += 1
            continue
        exact += metric_max_over_ground_truths(exact_match_score, predictions[qid], truths)
        f1 += metric_max_over_ground_truths(f1_score, predictions[qid], truths)
    total = len(references)
    return {
        "exact_match": 100.0 * exact / total,
        "f1": 100.0 * f1 / total,
        "num_questions": total,
        "num_missing": missing,
    }


def span_accuracy(pred_start, pred_end, gold_start, gold_end) -> dict:
    """Fractions (0-1) of windows whose predicted start / end token equals the label.

    These are the "start logits accuracy" and "end logits accuracy" of the seeds' DistilBERT
    card (Keras accuracy on each head's argmax); `span_accuracy` needs both right.
    """
    arrays = [np.asarray(a).reshape(-1) for a in (pred_start, pred_end, gold_start, gold_end)]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"span_accuracy got arrays of lengths {[len(a) for a in arrays]}")
    if len(arrays[0]) == 0:
        raise ValueError("span_accuracy needs at least one window")
    pred_start, pred_end, gold_start, gold_end = arrays
    start_ok, end_ok = pred_start == gold_start, pred_end == gold_end
    return {
        "start_accuracy": float(start_ok.mean()),
        "end_accuracy": float(end_ok.mean()),
        "span_accuracy": float((start_ok & end_ok).mean()),
    }
