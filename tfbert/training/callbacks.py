"""Keras callbacks: validation metrics, the best checkpoint, a stop on divergence, metric logs."""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import tensorflow as tf
import tf_keras

from tfbert.rundir import BEST, RunDir
from tfbert.utils.files import write_text


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
    """Track the best epoch by `monitor`, checkpoint its model, restore it when training ends.

    The resumable run state (model + optimizer every ``save_steps``) is `tfbert.training.backup`'s
    job; this one keeps ``checkpoints/best``. TensorFlow writes each checkpoint to temporary files
    and renames them when complete, so an interrupted run never leaves a half-written one.
    """

    def __init__(self, directory: str | Path, monitor: str, restore_best: bool = True):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = monitor_mode(monitor)
        self.restore_best = restore_best
        self.best_value: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self._best_manager = None

    def _manager(self) -> tf.train.CheckpointManager:
        if self._best_manager is None:
            best = tf.train.Checkpoint(model=self.model)
            self._best_manager = tf.train.CheckpointManager(best, str(self.directory / BEST), 1)
        return self._best_manager

    def best_state(self) -> dict:
        """What a resumed run needs to go on comparing epochs (see `tfbert.training.backup`)."""
        return {"value": self.best_value, "epoch": self.best_epoch, "monitor": self.monitor}

    def restore_state(self, state: dict) -> None:
        if state.get("monitor") == self.monitor:
            self.best_value, self.best_epoch = state.get("value"), state.get("epoch")

    def _improved(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and self._improved(float(value)):
            self.best_value, self.best_epoch = float(value), epoch + 1
            self._manager().save(checkpoint_number=epoch + 1)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        manager = self._manager() if self.model is not None else None
        if self.restore_best and manager is not None and manager.latest_checkpoint:
            tf.train.Checkpoint(model=self.model).restore(manager.latest_checkpoint).expect_partial()
            print(f"restored the best epoch ({self.best_epoch}, {self.monitor} = {self.best_value:.4f})", flush=True)


#: Divergence rule (`DivergenceGuard`): the run stops when `DIVERGENCE_PATIENCE` optimizer updates in
#: a row each have a mean training loss above ``DIVERGENCE_FACTOR * max(reference, DIVERGENCE_FLOOR)``,
#: the reference being the first update's loss (the loss of the model as loaded, before any update:
#: about ln(number of classes) for a fresh head). Measured with the bundled MiniLM on 2 CPU cores,
#: largest update loss / first update's loss: 1.10 (SMS recipe, 40 updates), 1.09 (frozen backbone
#: at head rate 5e-3), 1.04 (SST-2), 1.01 (AG News), 1.01 and 1.00 (WNUT-17 recipes), 1.09 (SQuAD,
#: rate 3e-4), and 3.6 for the SMS recipe at ten times its rate (1e-3: a spike, and it still reached
#: accuracy 0.977). Diverged: the SMS recipe at rate 1e6 without clipping is at 1.1e7x by its third
#: update (NaN at the fifth); the tiny BERT at rate 1e3 at 2e4x from its third. 10x sits between.
DIVERGENCE_FACTOR = 10.0
#: Nats. A run continued from a fine-tuned model starts near 0, and one hard batch of such a model
#: can cost several times that; a mean above 10 nats (every example's true class given e^-10) is
#: broken for any head whatever the reference.
DIVERGENCE_FLOOR = 1.0
#: Updates in a row: one spiking batch is not divergence, a loss that stays up is.
DIVERGENCE_PATIENCE = 5


class DivergenceGuard(tf_keras.callbacks.Callback):
    """Stop a run whose loss is NaN or infinite, or explodes and stays up, naming the step and what to try.

    Non-finite: the running mean Keras logs stays NaN once one batch is, so the first non-finite
    value marks the step. Backups are written only after finite steps, so the last one is still
    good. Under mixed_float16 the loss scale absorbs float16 overflow (the update is skipped and
    the scale lowered); the loss itself is computed in float32 and stays finite, so that never
    stops a run.

    Explosion: `DIVERGENCE_PATIENCE` updates in a row whose mean loss is above
    ``DIVERGENCE_FACTOR * max(reference, DIVERGENCE_FLOOR)``. The reference is the first update's
    loss; a resumed run takes the first logged window's loss from its backup's step records (the
    first ``loss`` of ``steps.jsonl``). Each update's loss is recovered from Keras' running mean
    (``n * mean_n - (n - 1) * mean_(n-1)``); Keras weights that mean by batch size, so a bucket's
    short last batch reads as a blend of its loss and the mean so far, which is close enough for a
    tenfold rule. Put it before `RunBackup`: the step that trips the rule is never backed up.

    Args:
        steps_per_epoch: `fit` steps per epoch.
        batches_per_update: `fit` steps per optimizer update (gradient accumulation).
        run_dir: the run directory (for the last backup's name).
        state: the backup state a resumed run continues from (its ``steps`` records).
    """

    def __init__(self, steps_per_epoch: int, batches_per_update: int, run_dir: str | Path,
                 state: Optional[dict] = None):
        super().__init__()
        self.steps_per_epoch = int(steps_per_epoch)
        self.batches_per_update = int(batches_per_update)
        self.run_dir = Path(run_dir)
        logged = [r["loss"] for r in (state or {}).get("steps", []) if "loss" in r]
        #: the loss the rule compares with (None until the first update of a fresh run)
        self.reference: Optional[float] = float(logged[0]) if logged else None
        self._reference_from = "the first logged window's" if logged else "the first update's"
        self._epoch = 0
        self._epoch_start: Optional[int] = None
        self._epoch_sum = 0.0  # running mean x batches, as of the last callback this epoch
        self._epoch_batches = 0
        self._pending_sum = 0.0  # batch losses of the update in progress
        self._pending_batches = 0
        self._above = 0  # updates in a row above the threshold
        self._first_above: Optional[int] = None

    @property
    def threshold(self) -> Optional[float]:
        """The mean loss above which an update counts towards divergence (None before the reference)."""
        if self.reference is None:
            return None
        return DIVERGENCE_FACTOR * max(self.reference, DIVERGENCE_FLOOR)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch = epoch
        self._epoch_start = None
        self._epoch_sum, self._epoch_batches = 0.0, 0

    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        if self._epoch_start is None:
            self._epoch_start = batch  # a resumed epoch starts where the interrupted one stopped

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        done = self._epoch * self.steps_per_epoch + batch + 1
        if not math.isfinite(loss):
            # float16's range is the usual suspect only when the run computes in float16.
            fp16 = tf_keras.mixed_precision.global_policy().compute_dtype == "float16"
            self._stop(f"training loss became {loss} at step {self._step(done)} (epoch {self._epoch + 1}, "
                       f"batch {batch + 1}); last good backup: {self._latest()}; try a lower "
                       "optimizer.learning_rate or optimizer.max_grad_norm (e.g. 1.0)"
                       + (", or precision.policy float32 / mixed_bfloat16 instead of mixed_float16" if fp16 else ""))
        batches = batch + 1 - (self._epoch_start or 0)
        total = loss * batches
        self._pending_sum += total - self._epoch_sum
        self._pending_batches += batches - self._epoch_batches
        self._epoch_sum, self._epoch_batches = total, batches
        if done % self.batches_per_update or not self._pending_batches:
            return  # inside an accumulation: judge whole updates
        update_loss = self._pending_sum / self._pending_batches
        updates = max(1, -(-self._pending_batches // self.batches_per_update))
        self._pending_sum, self._pending_batches = 0.0, 0
        if self.reference is None:
            self.reference = update_loss
            return
        if update_loss <= self.threshold:
            self._above, self._first_above = 0, None
            return
        step = self._step(done)
        if not self._above:
            self._first_above = step - updates + 1
        self._above += updates
        if self._above >= DIVERGENCE_PATIENCE:
            self._stop(
                f"training loss diverged at step {step} (epoch {self._epoch + 1}, batch {batch + 1}): "
                f"{update_loss:.4g}, above {DIVERGENCE_FACTOR:g}x {self._reference_from} loss "
                f"({self.reference:.4g}, floor {DIVERGENCE_FLOOR:g}) at every step since {self._first_above}; "
                "try a lower optimizer.learning_rate, optimizer.max_grad_norm (e.g. 1.0) or a longer "
                "optimizer.warmup_ratio, with training.overwrite_output_dir=true")

    def _step(self, done: int) -> int:
        """The optimizer update that `done` fit steps belong to."""
        return -(-done // self.batches_per_update)

    def _latest(self) -> str:
        from tfbert.training.backup import latest_backup

        return str(latest_backup(self.run_dir) or "none")

    def _stop(self, message: str) -> None:
        from tfbert.training.backup import TrainingDiverged

        raise TrainingDiverged(message)


class MetricsLog(tf_keras.callbacks.Callback):
    """Each epoch's metrics (plus wall time and learning rate) in ``metrics.jsonl`` and ``metrics.csv``.

    Both files are rewritten whole from the history at each epoch (atomically): a resumed run
    starts from its backup's history, so every epoch appears once whatever happened before.
    """

    def __init__(self, directory: str | Path, history: Optional[list[dict]] = None):
        super().__init__()
        self.directory = Path(directory)
        self.history: list[dict] = list(history or [])
        self._start = 0.0

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.write()

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        from tfbert.training.backup import epoch_record

        self.history = [r for r in self.history if r["epoch"] != epoch + 1]
        self.history.append(epoch_record(self.model, epoch, time.perf_counter() - self._start, logs))
        self.write()

    def write(self) -> None:
        if not self.history and not self.directory.exists():
            return
        write_records(self.directory, "metrics", self.history, first_column="epoch")


def write_records(directory: str | Path, stem: str, records: list[dict], first_column: str = "step") -> None:
    """``STEM.jsonl`` and ``STEM.csv`` (`RunDir.records_files`) rewritten whole from `records`, each atomically.

    Args:
        directory: the run directory.
        stem: ``metrics`` or ``steps``.
        records: flat dicts; the CSV has the union of their keys as columns.
        first_column: the CSV's header while there are no records yet.
    """
    jsonl, table = RunDir(directory).records_files(stem)
    write_text(jsonl, "".join(json.dumps(record) + "\n" for record in records))
    columns = list(dict.fromkeys(key for record in records for key in record))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or [first_column], restval="")
    writer.writeheader()
    writer.writerows(records)
    write_text(table, buffer.getvalue())


def current_learning_rate(model: tf_keras.Model) -> float:
    """The learning rate the next update uses (the schedule at the optimizer's step)."""
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    learning_rate = inner.learning_rate
    if isinstance(learning_rate, tf_keras.optimizers.schedules.LearningRateSchedule):
        learning_rate = learning_rate(inner.iterations)
    return float(tf_keras.backend.get_value(learning_rate))


def progress_mode(verbose: int, is_terminal: Optional[bool] = None) -> tuple[int, bool]:
    """Keras' ``verbose`` for `fit` and whether `StepLog` prints its lines.

    ``training.verbose: 2`` is Keras' progress bar (with ETA) on a terminal, and in a log file one
    line per ``logging_steps`` (from `StepLog`) plus Keras' line per epoch; 1 is always the bar.

    Args:
        verbose: ``training.verbose`` (0, 1 or 2).
        is_terminal: whether stdout is a terminal (default: ask it).
    """
    if verbose != 2:
        return verbose, False
    if is_terminal is None:
        import sys

        is_terminal = sys.stdout.isatty()
    return (1, False) if is_terminal else (2, True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class StepLog(tf_keras.callbacks.Callback):
    """Every ``logging_steps`` optimizer updates: mean loss, learning rate, gradient norm, tokens/s.

    One record per logging window goes to ``steps.jsonl`` and ``steps.csv`` (rewritten whole and
    atomically at each record), to TensorBoard (``logs/train``, tags ``step/*``) and, in a log
    file, to stdout as one line. The loss is the mean over the window's `fit` steps; the gradient
    norm is the last update's (as Hugging Face logs them); tokens/s counts real (non-padding)
    tokens over the time spent in training steps only, so validation and backups between steps do
    not lower it; ``padding_efficiency`` is real tokens / token slots of the window's batches.

    Put it after `DivergenceGuard` (a non-finite step stops the run before it is logged) and before
    `RunBackup`, which keeps the records in its state (`steps_state`): a resumed run starts from the
    backup's records, so each step appears once.

    Args:
        directory: the run directory.
        logging_steps: updates between records.
        steps_per_epoch: `fit` steps per epoch.
        batches_per_update: `fit` steps per optimizer update (gradient accumulation).
        total_steps: optimizer updates in the whole run (for the ETA).
        state: the backup state a resumed run continues from.
        tensorboard_dir: where TensorBoard scalars go (None: none).
        print_lines: print one line per record.
    """

    def __init__(self, directory: str | Path, logging_steps: int, steps_per_epoch: int, batches_per_update: int,
                 total_steps: int, state: Optional[dict] = None, tensorboard_dir: Optional[str | Path] = None,
                 print_lines: bool = False):
        super().__init__()
        self.directory = Path(directory)
        self.logging_steps = int(logging_steps)
        self.steps_per_epoch = int(steps_per_epoch)
        self.batches_per_update = int(batches_per_update)
        self.total_steps = int(total_steps)
        self.tensorboard_dir = tensorboard_dir
        self.print_lines = print_lines
        self._start_fit_steps = int(state["fit_steps_done"]) if state else 0
        resumed_at = self._start_fit_steps // self.batches_per_update
        # A backup's records end at its own step; anything later was never backed up.
        self.records: list[dict] = [r for r in (state or {}).get("steps", []) if r["step"] <= resumed_at]
        self._fit_steps_done = self._start_fit_steps
        self._last_logged = resumed_at
        self._epoch = 0
        self._batch_start = 0.0
        self._window_seconds = 0.0
        self._window_fit_steps = 0
        self._fit_seconds = 0.0
        self._first_step_seconds: Optional[float] = None
        self._estimate_printed = False
        self._writer = None

    def steps_state(self) -> list[dict]:
        """The records a backup keeps (`tfbert.training.backup.RunBackup`)."""
        return list(self.records)

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        if hasattr(self.model, "take_step_stats"):
            self.model.take_step_stats()  # drop whatever an earlier fit left in the sums
        if self.tensorboard_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))
        if self.records or self.directory.exists():
            write_records(self.directory, "steps", self.records)

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        seconds = time.perf_counter() - self._batch_start
        self._window_seconds += seconds
        self._fit_seconds += seconds
        if self._first_step_seconds is None:
            self._first_step_seconds = seconds
        done = self._epoch * self.steps_per_epoch + batch + 1
        self._window_fit_steps += done - self._fit_steps_done
        self._fit_steps_done = done
        if done % self.batches_per_update:
            return
        update = done // self.batches_per_update
        if update // self.logging_steps > self._last_logged // self.logging_steps:
            self._log(update)

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log(self, update: int) -> None:
        stats = self.model.take_step_stats() if hasattr(self.model, "take_step_stats") else None
        steps, seconds = max(self._window_fit_steps, 1), max(self._window_seconds, 1e-9)
        record = {"step": update, "epoch": round(self._fit_steps_done / self.steps_per_epoch, 4),
                  "learning_rate": current_learning_rate(self.model)}
        if stats is not None:
            record["loss"] = stats["loss_sum"] / steps
            if "grad_norm" in stats:
                record["grad_norm"] = stats["grad_norm"]
            if stats["token_slots"]:
                record.update(tokens_per_second=round(stats["real_tokens"] / seconds, 1),
                              real_tokens=int(stats["real_tokens"]), token_slots=int(stats["token_slots"]),
                              padding_efficiency=round(stats["real_tokens"] / stats["token_slots"], 4))
        record["seconds"] = round(seconds, 3)
        self.records.append(record)
        self._last_logged = update
        self._window_seconds, self._window_fit_steps = 0.0, 0
        write_records(self.directory, "steps", self.records)
        if self._writer is not None:
            with self._writer.as_default():
                for key in ("loss", "learning_rate", "grad_norm", "tokens_per_second", "padding_efficiency"):
                    if key in record:
                        tf.summary.scalar(f"step/{key}", record[key], step=update)
            self._writer.flush()
        if self.print_lines:
            print(self._line(record), flush=True)
        if not self._estimate_printed and self._seconds_per_fit_step() is not None:
            self._estimate_printed = True
            # Once, early, on its own line (also under a progress bar): the whole run's cost is
            # known after one window, long before the first epoch's bar ends.
            print(("" if self.print_lines else "\n") + self.estimate_line(record["step"]), flush=True)

    def _seconds_per_fit_step(self) -> Optional[float]:
        """Steady-state seconds per `fit` step in this `fit`: the first step (tracing and
        compilation) is left out; None until a second step ran."""
        steps = self._fit_steps_done - self._start_fit_steps
        if steps < 2 or self._first_step_seconds is None:
            return None
        return (self._fit_seconds - self._first_step_seconds) / (steps - 1)

    def estimate_line(self, step: int) -> str:
        """The run's estimated training time, from the steps timed so far (validation, backups and
        evaluation come on top)."""
        rate = self._seconds_per_fit_step() or 0.0
        total = self.total_steps * self.batches_per_update * rate
        left = (self.total_steps - step) * self.batches_per_update * rate
        return (f"estimated training time: {_duration(total)} for {self.total_steps:,} updates "
                f"({rate * self.batches_per_update:.2f} s per update over the first window; "
                f"{_duration(left)} left; validation and saving come on top)")

    def _line(self, record: dict) -> str:
        parts = [f"step {record['step']}/{self.total_steps} (epoch {record['epoch']:.2f})"]
        if "loss" in record:
            parts.append(f"loss {record['loss']:.4f}")
        parts.append(f"lr {record['learning_rate']:.3g}")
        if "grad_norm" in record:
            parts.append(f"grad norm {record['grad_norm']:.3f}")
        if "tokens_per_second" in record:
            parts.append(f"{record['tokens_per_second']:,.0f} tokens/s")
        rate = self._seconds_per_fit_step()
        if rate is not None:
            parts.append(f"eta {_duration((self.total_steps - record['step']) * self.batches_per_update * rate)}")
        return ", ".join(parts)
