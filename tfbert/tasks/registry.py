"""Which task types exist, known without importing them: a `TaskSpec` per type, its `Task` on demand.

As TF Model Garden keys tasks by their config, each task package's TF-free ``config.py``
registers a `TaskSpec`: the type, its ``task``/``data`` config classes (the keys `load_config`
accepts), its metric names (which ``training.metric_for_best_model`` values exist) and where its
`Task` class lives. Finding the specs imports ``tfbert/tasks/<type>/config.py`` of every package
here and nothing else, so loading and checking a config never imports TensorFlow;
`get_task_class` then imports the one task module asked for. No module outside ``tfbert/tasks/``
names a task type (`DEFAULT_TASK_TYPE` is here for the schema's default).

A task defined outside tfbert registers the same way, once its module is imported (before a
config names its type): `register_spec` in a TF-free module, or `register_task` on its `Task`
subclass, which reads the spec from the class.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TypeVar, Union

from tfbert.errors import ConfigError

#: ``task.type`` when a config names none
DEFAULT_TASK_TYPE = "sequence_classification"

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class TaskSpec:
    """What the config layer knows of a task type, without importing its model code.

    Args:
        type: the ``task.type`` value.
        task_class: its `tfbert.tasks.base.Task` subclass, or where it lives (``"pkg.module:Class"``,
            imported by `get_task_class` only).
        config_class: the ``task`` section's dataclass (`tfbert.config.TaskConfig` or a subclass).
        data_config_class: the ``data`` section's dataclass (`tfbert.config.DataConfig` or a subclass).
        metric_names: keys of the task's evaluation ``metrics``, logged per epoch as ``val_<name>``.
        train_metric_names: metrics `fit` reports on training batches (besides ``loss``).

    Examples:
        >>> register_spec(TaskSpec(type="my_task", task_class="my_package.task:MyTask",  # doctest: +SKIP
        ...                        config_class=TaskConfig, data_config_class=DataConfig, metric_names=("loss",)))
    """

    type: str
    task_class: Union[str, type]
    config_class: type
    data_config_class: type
    metric_names: tuple[str, ...] = ()
    train_metric_names: tuple[str, ...] = ()

    def names_class(self, cls: type) -> bool:
        """Whether `task_class` is `cls` (the class itself or its dotted path)."""
        if isinstance(self.task_class, str):
            return self.task_class == f"{cls.__module__}:{cls.__qualname__}"
        return self.task_class is cls


_SPECS: dict[str, TaskSpec] = {}
_CLASSES: dict[str, type] = {}
_discovered = False


def register_spec(spec: TaskSpec) -> TaskSpec:
    """Make `spec` the task for ``task.type: <spec.type>``; a second, different spec is a `TypeError`."""
    if not spec.type:
        raise TypeError("a TaskSpec needs a task type")
    known = _SPECS.get(spec.type)
    if known is not None and known != spec:
        raise TypeError(f"task type {spec.type!r} registered twice ({known.task_class}, {spec.task_class})")
    _SPECS[spec.type] = spec
    return spec


def register_task(cls: T) -> T:
    """Class decorator for a `Task` subclass defined outside tfbert: register it for ``cls.type``.

    The spec is the class's own ``spec`` when it has one, else read from its attributes
    (``type``, ``config_class``, ``data_config_class``, ``metric_names``, ``train_metric_names``).

    Examples:
        >>> @register_task  # doctest: +SKIP
        ... class Regression(Task):
        ...     type = "my_regression"
        ...     metric_names = ("loss", "pearson")
    """
    spec = getattr(cls, "spec", None) or TaskSpec(
        type=getattr(cls, "type", ""), task_class=cls, config_class=cls.config_class,
        data_config_class=cls.data_config_class, metric_names=tuple(cls.metric_names),
        train_metric_names=tuple(cls.train_metric_names))
    if not spec.type:
        raise TypeError(f"{cls.__name__} has no task type")
    known = _SPECS.get(spec.type)
    if known is not None and not known.names_class(cls):
        raise TypeError(f"task type {spec.type!r} registered twice ({known.task_class}, {cls.__name__})")
    _SPECS.setdefault(spec.type, spec)
    _CLASSES[spec.type] = cls
    return cls


def _discover() -> None:
    """Import ``tfbert/tasks/<type>/config.py`` of each task package (they register their specs)."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("tfbert.tasks")
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"tfbert.tasks.{info.name}.config")
    _discovered = True


def task_spec(task_type: str) -> TaskSpec:
    """The spec registered for ``task.type``; a `ConfigError` naming the allowed types otherwise."""
    _discover()
    if task_type not in _SPECS:
        raise ConfigError(f"config key 'task.type': {task_type!r} is not allowed; expected one of "
                          f"{', '.join(repr(t) for t in _SPECS)}")
    return _SPECS[task_type]


def task_specs() -> list[TaskSpec]:
    """Every registered spec, in registration order (imports no task module)."""
    _discover()
    return list(_SPECS.values())


def task_types() -> list[str]:
    """Every registered ``task.type``, in registration order."""
    return [spec.type for spec in task_specs()]


def get_task_class(task_type: str) -> type:
    """The `Task` class of ``task.type``, importing its module (and only it) on first use."""
    spec = task_spec(task_type)
    if task_type not in _CLASSES:
        cls = spec.task_class
        if isinstance(cls, str):
            module, _, name = cls.partition(":")
            cls = getattr(importlib.import_module(module), name)
        if getattr(cls, "type", None) != task_type:
            raise TypeError(f"{spec.task_class} declares task type {getattr(cls, 'type', None)!r}, "
                            f"registered as {task_type!r}")
        _CLASSES[task_type] = cls
    return _CLASSES[task_type]


def task_classes() -> list[type]:
    """Every registered task class (imports every task module, and so TensorFlow)."""
    return [get_task_class(t) for t in task_types()]


__all__ = ["DEFAULT_TASK_TYPE", "TaskSpec", "get_task_class", "register_spec", "register_task", "task_classes",
           "task_spec", "task_specs", "task_types"]
