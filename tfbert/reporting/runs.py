"""Reading what a run wrote (config, per-epoch and per-step metrics, evaluation, summary)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tfbert.errors import ConfigError


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


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_run(directory: str | Path, name: Optional[str] = None) -> RunData:
    """Read a run directory (``training.output_dir``) that holds at least ``config.yaml``.

    Args:
        directory: the run directory.
        name: how the report names it (default: the directory's name).
    """
    import yaml

    directory = Path(directory)
    config_path = directory / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{directory}: not a tfbert run directory (no config.yaml)")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        return RunData(
            name=name or directory.resolve().name, directory=directory, config=config,
            epochs=_read_jsonl(directory / "metrics.jsonl"), steps=_read_jsonl(directory / "steps.jsonl"),
            evaluation=_read_json(directory / "eval_results.json"), summary=_read_json(directory / "run_summary.json"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{directory}: cannot read the run's files ({exc})") from None
