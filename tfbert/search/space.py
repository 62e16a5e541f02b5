"""The search space of `tfbert.search`: parameters over config keys, checked against the config.

Sampled values reach a config only through `tfbert.config.apply_values`, the public way to set
dotted keys, so a trial's values get exactly the checks and errors of a YAML file.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tfbert.config import ExperimentConfig, apply_values, read_yaml, unknown_key, validate
from tfbert.errors import ConfigError


#: Keys a search may not vary: where the trial writes, and what the search optimizes.
FIXED_KEYS = ("training.output_dir", "training.overwrite_output_dir", "training.resume",
              "training.metric_for_best_model")


_FIELDS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
           "categorical": ("type", "choices")}


@dataclass
class Param:
    """One searched config key and its range.

    Args:
        key: dotted config key (``optimizer.learning_rate``).
        type: ``float``, ``int`` or ``categorical``.
        low, high: inclusive range (float, int).
        log: sample on a log scale (float, int; low > 0).
        step: grid step (float, int; not with log).
        choices: the values to choose from (categorical).
    """

    key: str
    type: str
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: list = field(default_factory=list)

    def distribution(self):
        """The Optuna distribution of this parameter."""
        from optuna import distributions

        if self.type == "float":
            return distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return distributions.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return distributions.CategoricalDistribution(self.choices)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any, where: str, name: str) -> float:
    # YAML 1.1 reads 1e-5 (no dot) as a string, the usual way to write a learning rate.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if not _is_number(value):
        raise ConfigError(f"{where}: '{name}' must be a number, got {value!r}")
    return value


def _check_value(base: ExperimentConfig, key: str, value: Any, where: str) -> None:
    """The config's own one-line error if `value` is not allowed for `key` (type or range)."""
    config = copy.deepcopy(base)
    try:
        apply_values(config, {key: value})
        validate(config)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_space(values: Any, base: ExperimentConfig, source: str = "search space") -> list[Param]:
    """Check a search space (a mapping of config key -> range) against `base`, before any trial runs.

    Every key must be a config key, every range non-empty and of the key's type, and every value
    at the ends of a range (or every choice) must pass the config's validation.

    Args:
        values: e.g. ``{"optimizer.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True}}``.
        base: the validated base config.
        source: names the space in errors (the YAML file).

    Examples:
        >>> parse_space({"training.num_train_epochs": {"type": "int", "low": 2, "high": 4}},
        ...             ExperimentConfig())[0].high
        4
    """
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{source}: expected a mapping of config keys to ranges, e.g. "
                          "'optimizer.learning_rate: {type: float, low: 1e-5, high: 1e-4, log: true}'")
    params = []
    for key, spec in values.items():
        where = f"{source}: {key!r}"
        key = str(key)
        if key in FIXED_KEYS:
            raise ConfigError(f"{where}: the search sets this key itself; it cannot be searched")
        # An unknown key gets the config's did-you-mean error; the type check comes below. Stricter
        # than `apply_values`, which skips another task type's keys: a searched key must exist.
        parts = key.split(".")
        node = base
        try:
            for i, part in enumerate(parts):
                if not dataclasses.is_dataclass(node):
                    raise ConfigError(f"config key {'.'.join(parts[:i])!r} is a value, not a section")
                names = [f.name for f in dataclasses.fields(node)]
                if part not in names:
                    raise unknown_key(".".join(parts[:i + 1]), names)
                node = getattr(node, part)
            if dataclasses.is_dataclass(node):
                raise ConfigError(f"config key {key!r} is a section; name one of its keys")
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 1e-5, high: 1e-4}}, got {spec!r}")
        kind = spec.get("type")
        if kind not in _FIELDS:
            raise ConfigError(f"{where}: 'type' must be one of float, int, categorical, got {kind!r}")
        unknown = [f for f in spec if f not in _FIELDS[kind]]
        if unknown:
            import difflib
            close = difflib.get_close_matches(str(unknown[0]), _FIELDS[kind], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}{hint}; a {kind} range has "
                              f"{', '.join(_FIELDS[kind])}")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: 'choices' must be a non-empty list")
            if any(not (c is None or isinstance(c, (bool, int, float, str))) for c in choices):
                raise ConfigError(f"{where}: choices must be numbers, strings, booleans or null")
            if len(set(map(repr, choices))) != len(choices):
                raise ConfigError(f"{where}: choices must be distinct")
            for choice in choices:
                _check_value(base, key, choice, source)
            params.append(Param(key, kind, choices=list(choices)))
            continue
        for name in ("low", "high"):
            if name not in spec:
                raise ConfigError(f"{where}: a {kind} range needs 'low' and 'high'")
        low, high = _number(spec["low"], where, "low"), _number(spec["high"], where, "high")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: 'log' must be true or false, got {log!r}")
        step = spec.get("step")
        if step is not None:
            step = _number(step, where, "step")
            if step <= 0:
                raise ConfigError(f"{where}: 'step' must be > 0, got {step}")
            if log:
                raise ConfigError(f"{where}: 'step' and 'log: true' exclude each other")
        if kind == "int":
            for name, value in (("low", low), ("high", high), ("step", step)):
                if value is not None and value != int(value):
                    raise ConfigError(f"{where}: '{name}' must be an integer for type int, got {value!r}")
            low, high = int(low), int(high)
            step = int(step) if step is not None else None
        if not low < high:
            raise ConfigError(f"{where}: empty range: 'low' ({low}) must be < 'high' ({high})")
        if log and low <= 0:
            raise ConfigError(f"{where}: 'log: true' needs low > 0, got {low}")
        # The key's own type and checks, at both ends of the range (as floats for a float range:
        # an integer key must refuse it).
        for value in (low, high):
            _check_value(base, key, float(value) if kind == "float" else value, source)
        params.append(Param(key, kind, low, high, log, step))
    return params


def load_space(path: str | Path, base: ExperimentConfig) -> list[Param]:
    """`parse_space` of a YAML file (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search space file not found")
    return parse_space(read_yaml(path), base, str(path))


def trial_config(base: ExperimentConfig, params: dict[str, Any], output_dir: str | Path) -> ExperimentConfig:
    """`base` with a trial's parameters, writing into `output_dir` (validated)."""
    config = copy.deepcopy(base)
    apply_values(config, params)
    config.training.output_dir = str(output_dir)
    config.training.overwrite_output_dir = False
    config.training.resume = "auto"
    validate(config)
    return config

