"""Task types: each module defines what differs (config keys, data, head, loss, metrics, evaluation,
serving, saving) and registers itself (`tfbert.tasks.registry`); the core never lists the tasks."""
from __future__ import annotations

from tfbert.tasks.base import Task, TaskData
from tfbert.tasks.registry import get_task_class, register_task, task_classes, task_types


def get_task(task_type: str) -> Task:
    """The `Task` for ``task.type`` (a `ConfigError` naming the allowed types otherwise).

    Examples:
        >>> get_task("sequence_classification").metric_names  # doctest: +SKIP
        ('loss', 'accuracy', 'macro_f1')
    """
    return get_task_class(task_type)()


__all__ = ["Task", "TaskData", "get_task", "get_task_class", "register_task", "task_classes", "task_types"]
