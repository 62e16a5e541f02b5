"""Task types: each module defines what differs (data, head, loss, metrics, evaluation, export)."""
from __future__ import annotations

from tfbert.errors import ConfigError
from tfbert.tasks.base import Task, TaskData


def get_task(task_type: str) -> Task:
    """The `Task` for ``task.type``."""
    from tfbert.tasks.question_answering import QuestionAnswering
    from tfbert.tasks.sequence_classification import SequenceClassification
    from tfbert.tasks.token_classification import TokenClassification

    tasks = {cls.type: cls for cls in (SequenceClassification, TokenClassification, QuestionAnswering)}
    if task_type not in tasks:
        raise ConfigError(f"config key 'task.type': {task_type!r} is not allowed; expected one of {', '.join(tasks)}")
    return tasks[task_type]()


__all__ = ["Task", "TaskData", "get_task"]
