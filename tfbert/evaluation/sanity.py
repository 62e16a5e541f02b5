"""Is a trained model better than a constant guess? The check behind the recipes' smoke test."""
from __future__ import annotations

from typing import Optional

from tfbert.tasks.registry import get_task_class


def degenerate_reason(task_type: str, report: dict) -> Optional[str]:
    """Why an evaluation report shows a model no better than a constant guess, or None.

    Each task says what a constant guess scores (`Task.degenerate_reason`).

    Args:
        task_type: a registered ``task.type``.
        report: the task's evaluation report (``Task.evaluate``; ``eval_results.json``).

    Examples:
        >>> degenerate_reason("sequence_classification", {"confusion_matrix": {
        ...     "labels": ["ham", "spam"], "matrix": [[10, 0], [2, 0]]}})
        'predicts ham for every example (12 of 12)'
    """
    return get_task_class(task_type)().degenerate_reason(report)


def constant_guess_reason(confusion_matrix: dict) -> Optional[str]:
    """Why a confusion matrix is no better than always answering one class, or None.

    It predicts one class only, or its accuracy is at or below the majority class's share.

    Args:
        confusion_matrix: ``{"labels": [...], "matrix": [[...]]}`` (rows: true class).
    """
    matrix = confusion_matrix["matrix"]
    labels = confusion_matrix.get("labels") or [str(i) for i in range(len(matrix))]
    total = sum(map(sum, matrix))
    if not total:
        return "no examples were evaluated"
    predicted = [sum(row[j] for row in matrix) for j in range(len(matrix))]
    used = [j for j, n in enumerate(predicted) if n]
    if len(used) <= 1:
        return f"predicts {labels[used[0]] if used else '?'} for every example ({total} of {total})"
    accuracy = sum(matrix[i][i] for i in range(len(matrix))) / total
    majority = max(map(sum, matrix)) / total
    if accuracy <= majority:
        return f"accuracy {accuracy:.4f} is no better than the majority baseline {majority:.4f}"
    return None
