"""Is a trained model better than a constant guess? The check behind the recipes' smoke test."""
from __future__ import annotations

from typing import Optional


def degenerate_reason(task_type: str, report: dict) -> Optional[str]:
    """Why an evaluation report shows a model no better than a constant guess, or None.

    - classification: it predicts one class only, or its accuracy is at or below the majority
      class's share (what always answering the commonest label scores);
    - token classification: no entity found correctly (entity F1 0 is what tagging every word
      ``O`` scores);
    - question answering: token F1 0 (no answer overlaps a reference).

    Args:
        task_type: ``sequence_classification``, ``token_classification`` or ``question_answering``.
        report: the task's evaluation report (``Task.evaluate``; ``eval_results.json``).

    Examples:
        >>> degenerate_reason("sequence_classification", {"confusion_matrix": {
        ...     "labels": ["ham", "spam"], "matrix": [[10, 0], [2, 0]]}})
        'predicts ham for every example (12 of 12)'
    """
    if task_type == "sequence_classification":
        matrix = report["confusion_matrix"]["matrix"]
        labels = report["confusion_matrix"].get("labels") or [str(i) for i in range(len(matrix))]
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
    if task_type == "token_classification":
        return None if report["f1"] > 0 else "finds no entity correctly (entity F1 0, as tagging every word O)"
    if task_type == "question_answering":
        return None if report["f1"] > 0 else "no answer overlaps a reference (F1 0)"
    raise ValueError(f"unknown task type {task_type!r}")
