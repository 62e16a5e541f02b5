"""Reading what a run wrote (config, per-epoch and per-step metrics, evaluation, summary)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tfbert.errors import ConfigError
from tfbert.rundir import RunDir


@dataclass
class RunData:
    """Everything the report draws from one run directory; missing files are empty values."""

    name: str
    directory: Path
    config: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    evaluation: Optional[dict] = None
    summary: Optional[dict] = None

    @property
    def task(self) -> str:
        return self.config.get("task", {}).get("type", "")

    def setting(self, section: str, key: str, default=None):
        return self.config.get(section, {}).get(key, default)

    @property
    def has_validation(self) -> bool:
        return any(key.startswith("val_") for record in self.epochs for key in record)

    @property
    def monitor(self) -> str:
        """The metric the best epoch was chosen by (``val_`` dropped without a validation split, as in training)."""
        monitor = self.setting("training", "metric_for_best_model", "val_loss") or "val_loss"
        if monitor.startswith("val_") and not self.has_validation:
            monitor = monitor[len("val_"):]
        return monitor

    def best_epoch(self) -> Optional[tuple[int, float]]:
        """(epoch, value) of the best epoch by `monitor`: the first strict improvement, as the trainer picks it."""
        best: Optional[tuple[int, float]] = None
        lower = "loss" in self.monitor
        for record in self.epochs:
            value = record.get(self.monitor)
            if value is None or not math.isfinite(float(value)):
                continue
            if best is None or (value < best[1] if lower else value > best[1]):
                best = (int(record["epoch"]), float(value))
        return best

    @property
    def updates_per_epoch(self) -> Optional[float]:
        """Optimizer updates per epoch, from the plan, else from the step records."""
        plan = (self.summary or {}).get("plan") or {}
        if plan.get("updates_per_epoch"):
            return float(plan["updates_per_epoch"])
        last = next((r for r in reversed(self.steps) if r.get("epoch")), None)
        return last["step"] / last["epoch"] if last else None

    def padding_efficiency(self) -> Optional[float]:
        """Real tokens / token slots over the logged training steps."""
        real = sum(r.get("real_tokens", 0) for r in self.steps)
        slots = sum(r.get("token_slots", 0) for r in self.steps)
        return real / slots if slots else None


def load_run(directory: str | Path, name: Optional[str] = None) -> RunData:
    """Read a run directory (``training.output_dir``) that holds at least ``config.yaml``.

    Args:
        directory: the run directory.
        name: how the report names it (default: the directory's name).
    """
    import yaml

    run = RunDir(directory)
    if not run.is_run():
        raise ConfigError(f"{run.path}: not a tfbert run directory (no {run.config_file.name})")
    try:
        return RunData(name=name or run.path.resolve().name, directory=run.path, config=run.read_config(),
                       epochs=run.read_metrics(), steps=run.read_steps(), evaluation=run.read_evaluation(),
                       summary=run.read_summary())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{run.path}: cannot read the run's files ({exc})") from None
