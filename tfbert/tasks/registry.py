"""Which task types exist: each task module registers its `Task` class; nothing else lists them.

A task module in ``tfbert/tasks/`` decorates its class with `register_task`; `get_task_class`
imports every module of the package once (by name, so no core module imports a task) and looks
the type up. A task defined outside tfbert registers the same way once its module is imported.
Importing this module is cheap: it imports no task and no TensorFlow.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from tfbert.errors import ConfigError

#: task type -> its `tfbert.tasks.base.Task` subclass
_TASKS: dict[str, type] = {}
_NOT_TASKS = {"base", "registry"}
_discovered = False

T = TypeVar("T", bound=type)


def register_task(cls: T) -> T:
    """Class decorator: make `cls` the task for ``task.type: <cls.type>``.

    Examples:
        >>> @register_task  # doctest: +SKIP
        ... class MyTask(Task):
        ...     type = "my_task"
    """
    task_type = getattr(cls, "type", "")
    if not task_type:
        raise TypeError(f"{cls.__name__} has no task type")
    if task_type in _TASKS and _TASKS[task_type] is not cls:
        raise TypeError(f"task type {task_type!r} registered twice ({_TASKS[task_type].__name__}, {cls.__name__})")
    _TASKS[task_type] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("tfbert.tasks")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_TASKS and not info.name.startswith("_"):
            importlib.import_module(f"tfbert.tasks.{info.name}")
    _discovered = True


def task_types() -> list[str]:
    """Every registered ``task.type``, in registration order."""
    _discover()
    return list(_TASKS)


def task_classes() -> list[type]:
    """Every registered task class."""
    _discover()
    return list(_TASKS.values())


def get_task_class(task_type: str) -> type:
    """The class registered for ``task.type``; a `ConfigError` naming the allowed types otherwise."""
    _discover()
    if task_type not in _TASKS:
        raise ConfigError(f"config key 'task.type': {task_type!r} is not allowed; expected one of "
                          f"{', '.join(repr(t) for t in _TASKS)}")
    return _TASKS[task_type]


__all__ = ["get_task_class", "register_task", "task_classes", "task_types"]
