"""Classification metrics: accuracy, per-class precision/recall/F1, macro F1, confusion matrix."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> dict:
    """A JSON-ready report; rows of the confusion matrix are true labels, columns predictions."""
    labels = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "num_examples": int(len(y_true)),
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {
                "precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": {
            "labels": list(label_names),
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
    }


def softmax_cross_entropy(logits, labels) -> float:
    """Mean of -log softmax(row)[label] over rows, computed stably.

    `logits` is a [n, C] array, or a sequence of 1-D rows of different lengths (e.g. QA windows).
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())
    total = 0.0
    for row, label in zip(logits, labels):
        shifted = row - row.max()
        total -= float(shifted[label] - np.log(np.exp(shifted).sum()))
    return total / len(labels)
