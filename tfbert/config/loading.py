"""How a config tree is assembled: defaults, YAML, ``--set`` overrides and dotted values, validation.

Overrides apply in a fixed order: dataclass defaults, then the YAML file, then each
``--set key=value`` in the order given, then validation of the whole tree. ``task.type`` is
applied first wherever it appears, because it decides which ``task`` and ``data`` keys exist: the
task's config classes come from its `tfbert.tasks.registry.TaskSpec`, found without importing any
model code, so nothing here imports TensorFlow.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Optional

from tfbert.config.checks import check_config
from tfbert.config.schema import ExperimentConfig
from tfbert.config.values import coerce, nest, parse_override, read_yaml, unknown_key
from tfbert.errors import ConfigError
from tfbert.tasks.registry import task_spec, task_specs


def _convert(obj: Any, cls: type) -> Any:
    """`obj`'s values for the fields `cls` has, as a `cls` (other fields take their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name in names})


def set_task_type(config: ExperimentConfig, task_type: Any) -> None:
    """Set ``task.type`` and give ``task`` and ``data`` that task's config classes (its keys)."""
    task_type = coerce(task_type, str, "task.type")
    spec = task_spec(task_type)
    for section, cls in (("task", spec.config_class), ("data", spec.data_config_class)):
        if type(getattr(config, section)) is not cls:
            setattr(config, section, _convert(getattr(config, section), cls))
    config.task.type = task_type


def _other_tasks_key(section: str, name: str) -> bool:
    """A key of another task's config: kept by configs saved before keys moved to their task."""
    attribute = {"task": "config_class", "data": "data_config_class"}.get(section)
    return attribute is not None and any(
        name in {f.name for f in dataclasses.fields(getattr(spec, attribute))} for spec in task_specs())


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'!r}: expected a mapping, got {values!r}")
    if isinstance(obj, ExperimentConfig) and isinstance(values.get("task"), dict) and "type" in values["task"]:
        # The task's type decides which keys the task and data sections have: set it first.
        set_task_type(obj, values["task"]["type"])
    types = typing.get_type_hints(type(obj))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if prefix == "task." and name == "type":
            continue
        if name not in types:
            if _other_tasks_key(prefix.rstrip("."), name):
                continue
            raise unknown_key(key, list(types))
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _apply(current, value, key + ".")
        else:
            setattr(obj, name, coerce(value, types[name], key))


def _apply_pairs(config: ExperimentConfig, pairs: list[tuple[str, Any]]) -> None:
    types = [value for key, value in pairs if key == "task.type"]
    if types:
        # ``data.doc_stride=16`` before ``task.type=question_answering`` still sets QA's stride.
        set_task_type(config, types[-1])
    for key, value in pairs:
        _apply(config, nest(key, value))


def apply_values(config: ExperimentConfig, values: dict[str, Any]) -> None:
    """Set dotted keys to values in order, the last ``task.type`` first (call `validate` afterwards).

    The way to change a config from code (a search trial's sampled values, say): each key gets the
    same type check and did-you-mean error as in YAML.

    Args:
        config: the tree to change in place.
        values: dotted key -> value, e.g. ``{"optimizer.learning_rate": 3e-5}``.

    Examples:
        >>> config = load_config("configs/sms_spam_minilm.yaml")
        >>> apply_values(config, {"optimizer.learning_rate": 3e-5, "training.num_train_epochs": 2})
        >>> validate(config)
        >>> config.training.num_train_epochs
        2.0
    """
    _apply_pairs(config, list(values.items()))


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> None:
    """Apply ``key=value`` strings in order, the last ``task.type`` first (validate afterwards).

    The values are read as YAML, so ``3e-5``, ``true`` and ``[1, 2]`` work.
    """
    _apply_pairs(config, [parse_override(text) for text in overrides])


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Defaults, then the YAML at `path`, then `overrides` (``key=value``), then validation.

    ``task.type`` is applied first (it decides which ``task`` and ``data`` keys exist); keys of
    another task type are accepted and ignored, as configs saved before keys moved list them all.
    Imports neither TensorFlow nor transformers.

    Args:
        path: a YAML file of sections (``model``, ``data``, ``task``…), or None for the defaults.
        overrides: ``section.key=value`` strings, applied in order; values are read as YAML.

    Returns:
        The validated config; a `ConfigError` naming the file, line or key otherwise.

    Examples:
        >>> config = load_config("configs/sms_spam_minilm.yaml", ["optimizer.learning_rate=3e-5"])
        >>> config.optimizer.learning_rate
        3e-05
        >>> load_config(None, ["task.type=question_answering", "data.max_seq_length=384"]).task.n_best_size
        20
    """
    config = new_config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        values = read_yaml(path)
        try:
            _apply(config, values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    apply_overrides(config, overrides or [])
    validate(config)
    return config


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Build and validate a config from a nested dict (e.g. one saved next to a model)."""
    config = new_config()
    _apply(config, values)
    validate(config)
    return config


def new_config(task_type: Optional[str] = None) -> ExperimentConfig:
    """The defaults, with the config classes of `task_type` (default: the default ``task.type``)."""
    config = ExperimentConfig()
    set_task_type(config, task_type or config.task.type)
    return config


def validate(config: ExperimentConfig) -> None:
    """Reject impossible values up front, naming the key (`tfbert.config.checks`)."""
    spec = task_spec(config.task.type)
    if type(config.task) is not spec.config_class or type(config.data) is not spec.data_config_class:
        set_task_type(config, config.task.type)  # a tree built by hand: give it the task's classes
    check_config(config)


__all__ = ["apply_overrides", "apply_values", "config_from_dict", "load_config", "new_config", "set_task_type",
           "validate"]
