"""Task types: one package per type, ``tfbert/tasks/<type>/``, holding everything that differs.

- ``config.py``: the task's config keys and metric names, registered by type (`registry.TaskSpec`);
  no TensorFlow, so `load_config` resolves ``task.type`` without importing model code;
- ``task.py``: its `Task` (data, head, the one loss, metrics, evaluation, packed head, Hub and
  transformers facts, TFRecord labels, report parts);
- ``serving.py``: its raw-string SavedModel module.

The core never lists the tasks. Importing this package is cheap: `Task` and `TaskData` (which
import TensorFlow) load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tfbert.tasks.registry import (DEFAULT_TASK_TYPE, TaskSpec, get_task_class, register_spec, register_task,
                                   task_classes, task_spec, task_specs, task_types)

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from tfbert.data.task_data import TaskData
    from tfbert.tasks.base import Task

_LAZY = {"Task": "tfbert.tasks.base", "TaskData": "tfbert.data.task_data"}


def get_task(task_type: str) -> "Task":
    """The `Task` for ``task.type`` (a `ConfigError` naming the allowed types otherwise).

    Examples:
        >>> get_task("sequence_classification").metric_names  # doctest: +SKIP
        ('loss', 'accuracy', 'macro_f1')
    """
    return get_task_class(task_type)()


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbert.tasks' has no attribute {name!r}")


__all__ = ["DEFAULT_TASK_TYPE", "Task", "TaskData", "TaskSpec", "get_task", "get_task_class", "register_spec",
           "register_task", "task_classes", "task_spec", "task_specs", "task_types"]
