"""Keras callbacks: validation metrics, checkpoints (keep last N, restore best), metric logs."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tf_keras


def monitor_mode(metric: str) -> str:
    """``min`` for losses, ``max`` for everything else (accuracy, F1…)."""
    return "min" if "loss" in metric else "max"


class ValidationMetrics(tf_keras.callbacks.Callback):
    """Adds ``val_*`` metrics to the epoch logs from one prediction pass over the validation split.

    Put it first in the callback list so checkpointing, early stopping and loggers see them.
    `evaluate_fn(model)` returns a flat dict such as ``{"loss": .., "accuracy": .., "macro_f1": ..}``.
    """

    def __init__(self, evaluate_fn: Callable[[tf_keras.Model], dict], prefix: str = "val_"):
        super().__init__()
        self.evaluate_fn = evaluate_fn
        self.prefix = prefix

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        results = self.evaluate_fn(self.model)
        # Keras' progress bar prints these too: it reads the same logs dict after this callback.
        if logs is not None:
            logs.update({self.prefix + k: v for k, v in results.items()})


class CheckpointKeeper(tf_keras.callbacks.Callback):
    """Checkpoint model + optimizer every epoch, keep the last N, track and restore the best.

    TensorFlow writes each checkpoint to temporary files and renames them when complete, so an
    interrupted run never leaves a half-written checkpoint that later gets restored.
    """

    def __init__(self, directory: str | Path, keep: int, monitor: str, restore_best: bool = True):
        super().__init__()
        self.directory = Path(directory)
        self.keep = keep
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.restore_best = restore_best
        self.best_value: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self._manager = self._best_manager = None

    def _managers(self):
        if self._manager is None:
            checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer)
            self._manager = tf.train.CheckpointManager(checkpoint, str(self.directory / "last"), self.keep)
            best = tf.train.Checkpoint(model=self.model)
            self._best_manager = tf.train.CheckpointManager(best, str(self.directory / "best"), 1)
        return self._manager, self._best_manager

    def _improved(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        logs = logs or {}
        manager, best_manager = self._managers()
        manager.save(checkpoint_number=epoch + 1)
        value = logs.get(self.monitor)
        if value is not None and self._improved(float(value)):
            self.best_value, self.best_epoch = float(value), epoch + 1
            best_manager.save(checkpoint_number=epoch + 1)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self.restore_best and self._best_manager is not None and self._best_manager.latest_checkpoint:
            tf.train.Checkpoint(model=self.model).restore(self._best_manager.latest_checkpoint).expect_partial()
            print(f"restored the best epoch ({self.best_epoch}, {self.monitor} = {self.best_value:.4f})", flush=True)


class MetricsLog(tf_keras.callbacks.Callback):
    """Appends each epoch's metrics (plus wall time and learning rate) to a JSON-lines file."""

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.history: list[dict] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._start, 3)}
        optimizer = self.model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        learning_rate = inner.learning_rate
        if isinstance(learning_rate, tf_keras.optimizers.schedules.LearningRateSchedule):
            learning_rate = learning_rate(inner.iterations)
        # get_value reads plain and mirrored (distributed) variables alike.
        record["learning_rate"] = float(tf_keras.backend.get_value(learning_rate))
        record.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self.history.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
