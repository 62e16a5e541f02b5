"""Resumable backups: everything a killed or preempted run needs to continue where it stopped.

A backup is a directory ``RUN/checkpoints/step-N`` (N = optimizer updates so far, as Hugging
Face's ``checkpoint-N``) holding a TensorFlow checkpoint of the model and optimizer (moments,
iterations, loss scale) and ``trainer_state.json``: the position in the data (fit steps done,
epoch, batch in epoch), the best-so-far value and epoch, early stopping's counters, the per-epoch
history and the seed. It is written into a temporary sibling and renamed into place only when
complete, so a kill at any moment leaves either the previous backups or the new one, never a
partial backup that a resume would trust.

Backups are written every ``training.save_steps`` updates, at every epoch end that falls on an
update boundary, and when SIGTERM arrives (what a preempted VM receives first). They are only
written between optimizer updates, so gradient accumulators are always empty in a backup.
Why not Keras' `BackupAndRestore`: it restarts an interrupted epoch from its first batch with a
fresh shuffle and keeps no best-model or early-stopping state; a resumed tfbert run instead
performs the same updates on the same batches as an uninterrupted one.
"""
from __future__ import annotations

import math
import shutil
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.errors import ConfigError, TfbertError
from tfbert.rundir import CHECKPOINT_PREFIX, STATE_FILE, STATE_FORMAT, RunDir
from tfbert.utils.files import atomic_directory, write_json

class CheckpointWriteError(TfbertError):
    """A backup could not be written (disk full, permissions); earlier backups are intact."""


class TrainingDiverged(TfbertError):
    """The loss became NaN or infinite; the last backup before it is kept."""


class TrainingInterrupted(TfbertError):
    """The run stopped on SIGTERM after writing a backup; rerunning the same command resumes it."""

    exit_code = 143  # 128 + SIGTERM, what schedulers expect from a terminated job


def checkpoints_dir(run_dir: str | Path) -> Path:
    return RunDir(run_dir).checkpoints_dir


def list_backups(run_dir: str | Path) -> list[Path]:
    """Complete backups of a run, oldest first (`RunDir.backups`)."""
    return RunDir(run_dir).backups()


def latest_backup(run_dir: str | Path) -> Optional[Path]:
    return RunDir(run_dir).latest_backup()


def remove_stale_temporaries(run_dir: str | Path) -> None:
    """Delete what a killed backup write left behind (``.step-N.tmp-*``, ``.step-N.old-*``)."""
    root = checkpoints_dir(run_dir)
    if root.is_dir():
        for path in root.glob(".step-*"):
            shutil.rmtree(path, ignore_errors=True)


def training_checkpoint(model: tf_keras.Model) -> tf.train.Checkpoint:
    """What a backup holds in TensorFlow's format: the model (heads included) and its optimizer."""
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer)


def restore(model: tf_keras.Model, backup: str | Path) -> None:
    """Load a backup's model and optimizer state into a compiled model (optimizer slots built)."""
    status = training_checkpoint(model).read(str(Path(backup) / CHECKPOINT_PREFIX))
    try:
        status.assert_existing_objects_matched()
    except AssertionError as exc:
        raise ConfigError(f"{backup}: the backup does not fit this model ({str(exc).splitlines()[0]})") from None
    status.expect_partial()


def epoch_record(model: tf_keras.Model, epoch: int, seconds: float, logs: Optional[dict]) -> dict:
    """One line of ``metrics.jsonl``: epoch (1-based), wall time, learning rate and every scalar log."""
    record = {"epoch": epoch + 1, "seconds": round(seconds, 3)}
    optimizer = model.optimizer
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    learning_rate = inner.learning_rate
    if isinstance(learning_rate, tf_keras.optimizers.schedules.LearningRateSchedule):
        learning_rate = learning_rate(inner.iterations)
    # get_value reads plain and mirrored (distributed) variables alike.
    record["learning_rate"] = float(tf_keras.backend.get_value(learning_rate))
    record.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
    return record


class SigtermFlag:
    """Set by a SIGTERM handler; read by `RunBackup` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *_: object) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class RunBackup(tf_keras.callbacks.Callback):
    """Writes backups during `fit` and restores the other callbacks' state when a run resumes.

    Put it after validation, best-checkpoint tracking, early stopping and TensorBoard, and before
    the metric file loggers: a backup then holds the epoch it ends, and the loggers' files are
    rewritten from the backup's history on resume, so each epoch appears there once.

    Args:
        run_dir: where this process writes (``RUN/checkpoints/step-N``).
        steps_per_epoch: `fit` steps per epoch (``steps_per_epoch`` passed to `fit`).
        batches_per_update: fit steps per optimizer update (gradient accumulation).
        save_steps: updates between backups, or ``"epoch"``.
        keep: backups to keep (``training.save_total_limit``); the best checkpoint is separate.
        state: the backup state this run resumed from (None for a fresh run).
        sigterm: flag a SIGTERM handler sets; a backup is written at the next update boundary.
        stop_on_sigterm_without_backup: multiworker: the other workers did not receive the signal,
            so a backup (which every worker must join) cannot be written; stop without one.
        total_steps, seed: recorded in the state.
        peers: callbacks whose state a backup holds (best checkpoint, early stopping, step log).
    """

    def __init__(self, run_dir: str | Path, steps_per_epoch: int, batches_per_update: int, save_steps,
                 keep: int, total_steps: int, seed: int, state: Optional[dict] = None,
                 sigterm: Optional[SigtermFlag] = None, stop_on_sigterm_without_backup: bool = False,
                 peers: Sequence[tf_keras.callbacks.Callback] = ()):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.steps_per_epoch = int(steps_per_epoch)
        self.batches_per_update = int(batches_per_update)
        self.save_steps = save_steps
        self.keep = int(keep)
        self.total_steps = int(total_steps)
        self.seed = int(seed)
        self.sigterm = sigterm
        self.stop_on_sigterm_without_backup = stop_on_sigterm_without_backup
        self.peers = list(peers)
        self.resumed_from = state
        self.fit_steps_done = int(state["fit_steps_done"]) if state else 0
        self.history: list[dict] = list(state.get("history", [])) if state else []
        self.stop_training = bool(state.get("stop_training")) if state else False
        self._last_saved_update = self.updates_done if state else 0
        self._epoch = 0
        self._epoch_start = 0.0
        self._checkpoint: Optional[tf.train.Checkpoint] = None

    # ------------------------------------------------------------------ position
    @property
    def updates_done(self) -> int:
        return self.fit_steps_done // self.batches_per_update

    @property
    def at_update_boundary(self) -> bool:
        return self.fit_steps_done % self.batches_per_update == 0

    def position(self) -> dict:
        epoch, batch = divmod(self.fit_steps_done, self.steps_per_epoch)
        return {"fit_steps_done": self.fit_steps_done, "global_step": self.updates_done,
                "epoch": epoch, "batch_in_epoch": batch}

    # ------------------------------------------------------------------ callbacks
    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        # Runs after the other callbacks' on_train_begin (which reset their state): put it back.
        state = self.resumed_from
        if not state:
            return
        for callback in self._peers():
            if hasattr(callback, "restore_state") and "best" in state:
                callback.restore_state(state["best"])
            if isinstance(callback, tf_keras.callbacks.EarlyStopping) and state.get("early_stopping"):
                es = state["early_stopping"]
                callback.wait = int(es["wait"])
                callback.best = float(es["best"]) if es["best"] is not None else callback.best
                callback.best_epoch = int(es["best_epoch"])
                callback.stopped_epoch = int(es.get("stopped_epoch", 0))

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch = epoch
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self.fit_steps_done = self._epoch * self.steps_per_epoch + batch + 1
        if not self.at_update_boundary:
            return
        # The epoch's last batch is saved by on_epoch_end, after validation and best tracking.
        last_of_epoch = batch + 1 >= self.steps_per_epoch
        if self.sigterm is not None and self.sigterm.is_set() and not last_of_epoch:
            self._stop_for_sigterm()
        if (self.save_steps != "epoch" and not last_of_epoch
                and self.updates_done - self._last_saved_update >= int(self.save_steps)):
            self.save()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.history.append(epoch_record(self.model, epoch, time.perf_counter() - self._epoch_start, logs))
        self.stop_training = bool(self.model.stop_training)
        if self.at_update_boundary:
            self.save()
        if self.sigterm is not None and self.sigterm.is_set() and self.at_update_boundary:
            self._stop_for_sigterm(saved=True)

    # ------------------------------------------------------------------ writing
    def _peers(self) -> list[tf_keras.callbacks.Callback]:
        return self.peers

    def state(self) -> dict:
        state = {"format": STATE_FORMAT, **self.position(), "total_steps": self.total_steps,
                 "steps_per_epoch": self.steps_per_epoch, "batches_per_update": self.batches_per_update,
                 "seed": self.seed, "stop_training": self.stop_training, "history": self.history,
                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for callback in self._peers():
            if hasattr(callback, "best_state"):
                state["best"] = callback.best_state()
            if hasattr(callback, "steps_state"):
                state["steps"] = callback.steps_state()  # step-level log records (`StepLog`)
            if isinstance(callback, tf_keras.callbacks.EarlyStopping):
                best = callback.best
                state["early_stopping"] = {
                    "wait": int(callback.wait), "best_epoch": int(callback.best_epoch),
                    "stopped_epoch": int(callback.stopped_epoch),
                    "best": None if best is None or not math.isfinite(float(best)) else float(best)}
        return state

    def save(self) -> Path:
        """Write a backup of the current position atomically; keep the newest `keep`."""
        if self._checkpoint is None:
            self._checkpoint = training_checkpoint(self.model)
        target = RunDir(self.run_dir).backup_dir(self.updates_done)
        try:
            with atomic_directory(target) as tmp:
                self._checkpoint.write(str(tmp / CHECKPOINT_PREFIX))
                write_json(tmp / STATE_FILE, self.state())
        except (OSError, tf.errors.OpError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc)
            latest = latest_backup(self.run_dir)
            raise CheckpointWriteError(
                f"{target}: could not write a backup ({reason.splitlines()[0]}); "
                f"the last good backup is {latest or 'none'}; free space and rerun the same command to resume"
            ) from None
        self._last_saved_update = self.updates_done
        for old in list_backups(self.run_dir)[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def _stop_for_sigterm(self, saved: bool = False) -> None:
        where = "step {global_step} of {total}".format(total=self.total_steps, **self.position())
        if self.stop_on_sigterm_without_backup:
            latest = latest_backup(self.run_dir)
            raise TrainingInterrupted(
                f"stopped by SIGTERM at {where}; multiworker runs resume from the last periodic backup "
                f"({latest or 'none yet'}): rerun the same command")
        target = RunDir(self.run_dir).backup_dir(self.updates_done) if saved else self.save()
        raise TrainingInterrupted(f"stopped by SIGTERM at {where}; backup written to {target}; "
                                  "rerun the same command to resume")
