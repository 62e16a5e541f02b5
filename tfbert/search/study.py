"""Hyperparameter search on Optuna: TPE sampling, median pruning on the per-epoch validation metric.

A search is an Optuna study kept in Optuna's storage (by default SQLite in the search's output
directory), so a killed search continues when the same command runs again, and any Optuna RDB URL
(PostgreSQL, MySQL) lets several machines run trials of one study at once: each machine runs the
same command with the same ``--storage`` and ``--study-name``.

Each trial is a normal run directory (``OUT/trial-007``) trained by ``tfbert.cli.train`` in a
child process. Why a child process and not `tfbert.run.trainer.train` in this one: TensorFlow
keeps graphs, kernels and allocator memory for the life of a process, and several of its settings
are process-wide (precision policy, logical devices for Mirrored, the SIGTERM handler); a fresh
process per trial gives every trial the same start, and a trial that crashes or runs out of memory
fails that trial only. The cost is TensorFlow's start-up, a few seconds per trial.

Pruning: the parent reads the trial's ``metrics.jsonl`` (rewritten by the run at every epoch end),
reports each epoch's validation metric with ``trial.report`` and stops the run (SIGTERM, the run's
own interruption path) when the pruner says so. A pruned trial is marked PRUNED in the study and
its resumable backups are deleted, so nothing resumes it.

Resuming: while a trial runs, its process (and the child, which inherits it) holds an exclusive
lock on ``OUT/.locks/trial-NNN.lock``. A RUNNING trial whose lock nobody holds was killed with its
search; the next search on this output directory continues it in the same run directory (the run
resumes from its latest backup). A trial started by another machine has no lock file here and is
left alone.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tfbert import rundir
from tfbert.config import ExperimentConfig, flatten_keys, load_config, new_config
from tfbert.errors import ConfigError, TfbertError
from tfbert.rundir import RunDir
from tfbert.search.space import Param, load_space, trial_config
from tfbert.search.trials import (Stop, best_of, die_with_parent, drop_backups, last_line, lock, markdown_table,
                                  param_importances, stop_on_signals, terminate)

_ROOT = Path(__file__).resolve().parents[2]


class SearchError(TfbertError):
    """The search cannot go on (e.g. the study was started with another config)."""


# ------------------------------------------------------------------------------------- the search


@dataclass
class SearchSettings:
    """What `run_search` runs.

    Args:
        config: the base experiment YAML.
        space: the search-space YAML.
        trials: trials in the study in all (finished, pruned, failed and running ones count).
        overrides: ``key=value`` overrides of the base config.
        output_dir: where trials and the study go (default: ``training.output_dir`` + ``-search``).
        storage: an Optuna storage URL (default: SQLite in `output_dir`).
        study_name: the study in the storage (default: the output directory's name).
        strategy: ``--strategy`` for each trial's training.
        startup_trials: random trials before TPE, and trials finished before the median pruner prunes.
        warmup_epochs: epochs a trial always runs before it can be pruned.
        seed: seed of the sampler (default: random; machines sharing a study must not share one).
    """

    config: str
    space: str
    trials: int
    overrides: list[str] = field(default_factory=list)
    output_dir: Optional[str] = None
    storage: Optional[str] = None
    study_name: Optional[str] = None
    strategy: Optional[str] = None
    startup_trials: int = 5
    warmup_epochs: int = 0
    seed: Optional[int] = None
    #: seconds between reads of a running trial's metrics
    poll_seconds: float = 1.0


@dataclass
class _Prepared:
    base: ExperimentConfig
    params: list[Param]
    output_dir: Path
    storage: str
    study_name: str
    metric: str
    direction: str


def prepare(settings: SearchSettings) -> _Prepared:
    """Read and check the base config and the space; nothing is written."""
    from tfbert.training.callbacks import monitor_mode

    if settings.trials < 1:
        raise ConfigError(f"--trials: must be >= 1, got {settings.trials}")
    if settings.startup_trials < 0 or settings.warmup_epochs < 0:
        raise ConfigError("--startup-trials and --warmup-epochs must be >= 0")
    base = load_config(settings.config, settings.overrides)
    from tfbert.tasks import get_task

    if not get_task(base.task.type).has_validation(base):
        raise ConfigError("config key 'data.validation_file': a search needs a validation split "
                          "(data.validation_file or data.validation_split); it never looks at the test set")
    metric = base.training.metric_for_best_model
    if not metric.startswith("val_"):
        raise ConfigError(f"config key 'training.metric_for_best_model': a search optimizes a validation "
                          f"metric (val_...), got {metric!r}")
    params = load_space(settings.space, base)
    out = Path(settings.output_dir or f"{base.training.output_dir.rstrip('/')}-search")
    storage = settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    return _Prepared(base, params, out, storage, settings.study_name or out.resolve().name, metric,
                     "minimize" if monitor_mode(metric) == "min" else "maximize")


def non_default_values(config: ExperimentConfig) -> dict:
    """Dotted keys of `config` whose values differ from `new_config`'s defaults for its task type."""
    defaults = flatten_keys(new_config(config.task.type).to_dict())
    return {k: v for k, v in flatten_keys(config.to_dict()).items() if k not in defaults or defaults[k] != v}


def _fingerprint(prepared: _Prepared) -> str:
    """The base config and space of a study: a study continues only with the same ones.

    Only values that differ from the defaults count, so a tfbert version that adds a config key
    (with a default) still continues a study started before it.
    """
    base = non_default_values(prepared.base)
    base.pop("training.output_dir", None)
    space = [dataclasses.asdict(p) for p in prepared.params]
    return json.dumps({"config": base, "space": space}, sort_keys=True, default=str)


def open_study(prepared: _Prepared, settings: SearchSettings):
    """Create or load the study; refuse one started with another config, space or metric."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared.output_dir.mkdir(parents=True, exist_ok=True)
    sampler = optuna.samplers.TPESampler(n_startup_trials=settings.startup_trials, seed=settings.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials,
                                         n_warmup_steps=settings.warmup_epochs)
    try:
        study = optuna.create_study(storage=prepared.storage, study_name=prepared.study_name,
                                    direction=prepared.direction, sampler=sampler, pruner=pruner,
                                    load_if_exists=True)
    except ValueError as exc:  # e.g. an existing study with the other direction
        raise SearchError(f"study {prepared.study_name!r} in {prepared.storage}: {exc}") from None
    fingerprint = _fingerprint(prepared)
    saved = study.user_attrs.get("tfbert_fingerprint")
    if saved is None:
        study.set_user_attr("tfbert_fingerprint", fingerprint)
        study.set_user_attr("tfbert_metric", prepared.metric)
    elif saved != fingerprint:
        raise SearchError(f"study {prepared.study_name!r} in {prepared.storage} was started with another base "
                          "config or search space; use another --study-name or --output-dir")
    return study


class Search:
    """One search process: claims or asks trials, runs them, reports, tells.

    Args:
        settings: see `SearchSettings`.
        log: where progress lines go.

    Examples:
        >>> Search(SearchSettings("configs/sms_spam_minilm.yaml", "space.yaml", trials=10)).run()  # doctest: +SKIP
    """

    def __init__(self, settings: SearchSettings, log: Callable[[str], None] = print):
        self.settings = settings
        self.log = log
        self.prepared = prepare(settings)
        self.out = self.prepared.output_dir
        self.study = None

    def trial_dir(self, number: int) -> Path:
        return self.out / f"trial-{number:03d}"

    def _lock_path(self, number: int) -> Path:
        return self.out / ".locks" / f"trial-{number:03d}.lock"

    def run(self) -> dict:
        """Run trials until the study holds `settings.trials`; write the summary and the best config."""
        self.study = open_study(self.prepared, self.settings)
        self.log(f"study {self.prepared.study_name!r} ({self.prepared.direction} {self.prepared.metric}) "
                 f"in {self.prepared.storage}")
        distributions = {p.key: p.distribution() for p in self.prepared.params}
        with stop_on_signals():
            try:
                waiting = False
                while True:
                    claimed = self._next_trial(distributions)
                    if claimed is None:
                        break
                    if claimed == "wait":
                        if not waiting:
                            self.log("waiting for this directory's trials still running in other processes "
                                     "(a killed search's trial finishing its backup, or another search)")
                        waiting = True
                        time.sleep(max(self.settings.poll_seconds, 1.0))
                        continue
                    waiting = False
                    trial, number, fd = claimed
                    try:
                        self._run_trial(trial, number, fd)
                    finally:
                        os.close(fd)
            except Stop as stop:
                self.log(f"search interrupted ({stop}); rerun the same command to continue it")
                raise KeyboardInterrupt from None
        return self.write_summary()

    def _next_trial(self, distributions):
        """(trial, run number, lock fd): a killed trial of this directory first, else a new one;
        None when the study is full, "wait" when it is full but this directory's trials still run
        elsewhere (one of them may turn out to need continuing)."""
        import optuna
        from optuna.trial import TrialState

        # Asking and locking happen under one lock, so no other local search can take a trial
        # that was just asked for but is not locked yet.
        guard = lock(self.out / ".locks" / "search.lock", block=True)
        try:
            trials = self.study.get_trials(deepcopy=False)
            busy = False
            for frozen in trials:
                if frozen.state != TrialState.RUNNING:
                    continue
                number = frozen.user_attrs.get("tfbert_run", None)
                if number is None or not self._lock_path(number).exists():
                    continue  # another machine's trial, or one killed before it was locked
                fd = lock(self._lock_path(number))
                if fd is not None:
                    self.log(f"trial {frozen.number}: continuing the killed run {self.trial_dir(number)}")
                    return optuna.trial.Trial(self.study, frozen._trial_id), number, fd
                busy = True
            done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
                       for t in trials)
            if done >= self.settings.trials:
                return "wait" if busy else None
            trial = self.study.ask(distributions)
            fd = lock(self._lock_path(trial.number))
            if fd is None:  # a stale lock file of a deleted study's trial with this number
                raise SearchError(f"{self._lock_path(trial.number)} is locked by another process; "
                                  "is a search of another study writing into the same --output-dir?")
            trial.set_user_attr("tfbert_run", trial.number)
            return trial, trial.number, fd
        finally:
            os.close(guard)

    def _run_trial(self, trial, number: int, lock_fd: int) -> None:
        from optuna.trial import TrialState

        from tfbert.training.callbacks import monitor_mode

        prepared = self.prepared
        run_dir = self.trial_dir(number)
        params = dict(trial.params)
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        try:
            config = trial_config(prepared.base, params, run_dir)
        except ConfigError as exc:
            # Each range was checked at its ends; a combination can still be invalid.
            self.log(f"trial {trial.number}: {shown}: not a valid config ({exc})")
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=TrialState.FAIL)
            return
        # The trial's final evaluation scores validation: no trial looks at the test split
        # (best_config.yaml keeps the base config's do_predict).
        config.training.do_predict = False
        configs = self.out / "configs"
        configs.mkdir(parents=True, exist_ok=True)
        config_path = configs / f"trial-{number:03d}.yaml"
        config_path.write_text(config.to_yaml(), encoding="utf-8")
        log_path = self.out / "logs" / f"trial-{number:03d}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "tfbert.cli.train", "--config", str(config_path)]
        if self.settings.strategy:
            command += ["--strategy", self.settings.strategy]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self.log(f"trial {trial.number}: {shown} -> {run_dir}")
        mode = monitor_mode(prepared.metric)
        reported = set(self.study._storage.get_trial(trial._trial_id).intermediate_values)
        started = time.perf_counter()
        with open(log_path, "ab") as log_file:
            child = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                     pass_fds=(lock_fd,), preexec_fn=die_with_parent, cwd=os.getcwd())
            try:
                pruned = self._watch(trial, child, run_dir, reported)
            except BaseException:
                # Interrupted: the run backs up on SIGTERM and resumes with the next search.
                terminate(child)
                raise
        seconds = time.perf_counter() - started
        if pruned is not None:
            terminate(child)
            drop_backups(run_dir)
            trial.set_user_attr("seconds", round(seconds, 1))
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"trial {trial.number}: pruned after epoch {pruned}")
            return
        epochs = RunDir(run_dir).read_metrics()
        self._report(trial, epochs, reported)
        trial.set_user_attr("seconds", round(seconds, 1))
        value = best_of(epochs, prepared.metric, mode, last_only=not config.training.load_best_model_at_end)
        if child.returncode != 0 or value is None:
            error = last_line(log_path) or f"exit code {child.returncode}"
            trial.set_user_attr("error", error)
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: failed ({error}); log: {log_path}")
            return
        self.study.tell(trial, value)
        self.log(f"trial {trial.number}: {prepared.metric} {value:.4f}")

    def _report(self, trial, epochs: list[dict], reported: set) -> bool:
        """Report epochs not reported yet, in order; True (and nothing more reported) at the first
        epoch the pruner stops, even when one poll found several new epochs."""
        for record in sorted(epochs, key=lambda r: r.get("epoch") or 0):
            epoch, value = record.get("epoch"), record.get(self.prepared.metric)
            if epoch is None or epoch in reported or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            trial.report(float(value), int(epoch))
            reported.add(epoch)
            if trial.should_prune():
                return True
        return False

    def _watch(self, trial, child: subprocess.Popen, run_dir: Path, reported: set) -> Optional[int]:
        """Follow the run until it exits; the epoch it was pruned at, or None."""
        while True:
            finished = child.poll() is not None
            epochs = RunDir(run_dir).read_metrics()
            if not finished and self._report(trial, epochs, reported):
                return max(reported)
            if finished:
                return None
            time.sleep(self.settings.poll_seconds)

    # ------------------------------------------------------------------------------ results

    def write_summary(self) -> dict:
        """``trials.csv``, ``search_summary.md`` (table and importances), ``best_config.yaml``, a report."""
        from optuna.trial import TrialState

        prepared, study = self.prepared, self.study
        trials = study.get_trials(deepcopy=False)
        keys = [p.key for p in prepared.params]
        rows = []
        for t in trials:
            row = {"trial": t.number, "state": t.state.name.lower(),
                   prepared.metric: t.value if t.value is not None else "",
                   "epochs": len(t.intermediate_values), "seconds": t.user_attrs.get("seconds", "")}
            row.update({k: t.params.get(k, "") for k in keys})
            rows.append(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
        (self.out / "trials.csv").write_text(buffer.getvalue(), encoding="utf-8")
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        summary: dict = {"study": prepared.study_name, "storage": prepared.storage, "metric": prepared.metric,
                         "direction": prepared.direction, "trials": len(trials),
                         "states": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}}
        importances = param_importances(study, complete)
        if importances:
            summary["importances"] = importances
        lines = [f"# Search {prepared.study_name}", "",
                 f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in summary["states"].items() if n)
                 + f"; objective: {prepared.direction} {prepared.metric} (best epoch of each trial).", ""]
        # Best first; trials without a value (pruned, failed, running) after them, by number.
        sign = -1.0 if prepared.direction == "maximize" else 1.0
        valued = sorted((r for r in rows if r[prepared.metric] != ""), key=lambda r: sign * r[prepared.metric])
        lines += markdown_table(valued + [r for r in rows if r[prepared.metric] == ""])
        if importances:
            lines += ["", "What mattered (Optuna's fANOVA importance of each parameter, sums to 1):", ""]
            lines += [f"- {k}: {v:.2f}" for k, v in importances.items()]
        if complete:
            best = study.best_trial
            number = best.user_attrs.get("tfbert_run", best.number)
            config = trial_config(prepared.base, best.params, self.out / "best")
            header = (f"# Best of {len(complete)} finished trials of study {prepared.study_name!r}: "
                      f"{prepared.metric} {best.value:.4f} (trial {best.number}, {self.trial_dir(number)}).\n"
                      "# Ready to use: tools/train.py --config THIS_FILE\n")
            (self.out / "best_config.yaml").write_text(header + config.to_yaml(), encoding="utf-8")
            summary.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                           best_run=str(self.trial_dir(number)), best_config=str(self.out / "best_config.yaml"))
            lines += ["", f"Best: trial {best.number} ({prepared.metric} {best.value:.4f}); its config: "
                      "`best_config.yaml`."]
        report = self._write_report(trials)
        if report:
            summary["report"] = str(report)
            lines += ["", f"Per-epoch curves of the trials: `{report.relative_to(self.out)}`."]
        (self.out / "search_summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for line in lines[2:]:
            self.log(line)
        return summary

    def _write_report(self, trials) -> Optional[Path]:
        """The run report comparing the trials' curves (pruned ones stop early); never fails the search."""
        dirs = [self.trial_dir(t.user_attrs.get("tfbert_run", t.number)) for t in trials]
        dirs = [d for d in dirs if RunDir(d).metrics_file.is_file()]
        if not dirs:
            return None
        try:
            from tfbert.reporting import write_report

            return write_report(dirs, output=self.out / "report" / rundir.REPORT)
        except Exception as exc:  # noqa: BLE001 - the summary is written; the report is extra
            self.log(f"report: not written ({type(exc).__name__}: {exc})")
            return None


def run_search(settings: SearchSettings, log: Callable[[str], None] = print) -> dict:
    """Run (or continue) a search; returns its summary (best trial, value, params, files).

    Examples:
        >>> run_search(SearchSettings("configs/sms_spam_minilm.yaml", "space.yaml", trials=20))  # doctest: +SKIP
    """
    return Search(settings, log).run()
