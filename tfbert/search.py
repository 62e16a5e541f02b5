"""Hyperparameter search on Optuna: TPE sampling, median pruning on the per-epoch validation metric.

A search is an Optuna study kept in Optuna's storage (by default SQLite in the search's output
directory), so a killed search continues when the same command runs again, and any Optuna RDB URL
(PostgreSQL, MySQL) lets several machines run trials of one study at once: each machine runs the
same command with the same ``--storage`` and ``--study-name``.

Each trial is a normal run directory (``OUT/trial-007``) trained by ``tfbert.cli.train`` in a
child process. Why a child process and not `tfbert.training.trainer.train` in this one: TensorFlow
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

import contextlib
import copy
import csv
import ctypes
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml

from tfbert.config import ExperimentConfig, _apply, _nest, _read_yaml, load_config, validate
from tfbert.errors import ConfigError, TfbertError

#: Keys a search may not vary: where the trial writes, and what the search optimizes.
FIXED_KEYS = ("training.output_dir", "training.overwrite_output_dir", "training.resume",
              "training.metric_for_best_model")
_FIELDS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
           "categorical": ("type", "choices")}
_ROOT = Path(__file__).resolve().parents[1]


class SearchError(TfbertError):
    """The search cannot go on (e.g. the study was started with another config)."""


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
        _apply(config, _nest(key, value))
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
        # An unknown key gets the config's did-you-mean error; the type check comes below.
        probe = copy.deepcopy(base)
        parts = key.split(".")
        node = probe
        try:
            for i, part in enumerate(parts):
                if not dataclasses.is_dataclass(node):
                    raise ConfigError(f"config key {'.'.join(parts[:i])!r} is a value, not a section")
                names = [f.name for f in dataclasses.fields(node)]
                if part not in names:
                    from tfbert.config import _unknown_key
                    raise _unknown_key(".".join(parts[:i + 1]), names)
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
    return parse_space(_read_yaml(path), base, str(path))


def trial_config(base: ExperimentConfig, params: dict[str, Any], output_dir: str | Path) -> ExperimentConfig:
    """`base` with a trial's parameters, writing into `output_dir` (validated)."""
    config = copy.deepcopy(base)
    for key, value in params.items():
        _apply(config, _nest(key, value))
    config.training.output_dir = str(output_dir)
    config.training.overwrite_output_dir = False
    config.training.resume = "auto"
    validate(config)
    return config


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
    d = base.data
    has_validation = bool(d.validation_file or d.validation_split > 0 or d.validation_articles)
    if not has_validation:
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


def _fingerprint(prepared: _Prepared) -> str:
    """The base config and space of a study: a study continues only with the same ones."""
    base = prepared.base.to_dict()
    base["training"].pop("output_dir", None)
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


def _best_of(records: list[dict], metric: str, mode: str, last_only: bool) -> Optional[float]:
    values = [r[metric] for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    if not values:
        return None
    if last_only:
        return values[-1]
    return min(values) if mode == "min" else max(values)


def read_epochs(run_dir: Path) -> list[dict]:
    """A run's per-epoch records so far (``metrics.jsonl`` is replaced whole, atomically)."""
    path = run_dir / "metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def _lock(path: Path, block: bool = False) -> Optional[int]:
    """An exclusive `flock` on `path` (its file descriptor), or None if another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: a search killed outright still stops its trial, which backs up on SIGTERM.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Stop(Exception):
    """The search was interrupted (SIGINT/SIGTERM): the running trial is left to resume."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def handler(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


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
        with _stop_on_signals():
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
            except _Stop as stop:
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
        guard = _lock(self.out / ".locks" / "search.lock", block=True)
        try:
            trials = self.study.get_trials(deepcopy=False)
            busy = False
            for frozen in trials:
                if frozen.state != TrialState.RUNNING:
                    continue
                number = frozen.user_attrs.get("tfbert_run", None)
                if number is None or not self._lock_path(number).exists():
                    continue  # another machine's trial, or one killed before it was locked
                fd = _lock(self._lock_path(number))
                if fd is not None:
                    self.log(f"trial {frozen.number}: continuing the killed run {self.trial_dir(number)}")
                    return optuna.trial.Trial(self.study, frozen._trial_id), number, fd
                busy = True
            done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
                       for t in trials)
            if done >= self.settings.trials:
                return "wait" if busy else None
            trial = self.study.ask(distributions)
            fd = _lock(self._lock_path(trial.number))
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
                                     pass_fds=(lock_fd,), preexec_fn=_die_with_parent, cwd=os.getcwd())
            try:
                pruned = self._watch(trial, child, run_dir, reported)
            except BaseException:
                # Interrupted: the run backs up on SIGTERM and resumes with the next search.
                _terminate(child)
                raise
        seconds = time.perf_counter() - started
        if pruned is not None:
            _terminate(child)
            _drop_backups(run_dir)
            trial.set_user_attr("seconds", round(seconds, 1))
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"trial {trial.number}: pruned after epoch {pruned}")
            return
        epochs = read_epochs(run_dir)
        self._report(trial, epochs, reported)
        trial.set_user_attr("seconds", round(seconds, 1))
        value = _best_of(epochs, prepared.metric, mode, last_only=not config.training.load_best_model_at_end)
        if child.returncode != 0 or value is None:
            error = _last_line(log_path) or f"exit code {child.returncode}"
            trial.set_user_attr("error", error)
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: failed ({error}); log: {log_path}")
            return
        self.study.tell(trial, value)
        self.log(f"trial {trial.number}: {prepared.metric} {value:.4f}")

    def _report(self, trial, epochs: list[dict], reported: set) -> bool:
        """Report epochs not reported yet; True when the pruner says stop."""
        prune = False
        for record in epochs:
            epoch, value = record.get("epoch"), record.get(self.prepared.metric)
            if epoch is None or epoch in reported or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            trial.report(float(value), int(epoch))
            reported.add(epoch)
            prune = trial.should_prune()
        return prune

    def _watch(self, trial, child: subprocess.Popen, run_dir: Path, reported: set) -> Optional[int]:
        """Follow the run until it exits; the epoch it was pruned at, or None."""
        while True:
            finished = child.poll() is not None
            epochs = read_epochs(run_dir)
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
        importances = _importances(study, complete)
        if importances:
            summary["importances"] = importances
        lines = [f"# Search {prepared.study_name}", "",
                 f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in summary["states"].items() if n)
                 + f"; objective: {prepared.direction} {prepared.metric} (best epoch of each trial).", ""]
        # Best first; trials without a value (pruned, failed, running) after them, by number.
        sign = -1.0 if prepared.direction == "maximize" else 1.0
        valued = sorted((r for r in rows if r[prepared.metric] != ""), key=lambda r: sign * r[prepared.metric])
        lines += _markdown_table(valued + [r for r in rows if r[prepared.metric] == ""])
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
        dirs = [d for d in dirs if (d / "metrics.jsonl").is_file()]
        if not dirs:
            return None
        try:
            from tfbert.reporting import write_report

            return write_report(dirs, output=self.out / "report" / "report.html")
        except Exception as exc:  # noqa: BLE001 - the summary is written; the report is extra
            self.log(f"report: not written ({type(exc).__name__}: {exc})")
            return None


def _importances(study, complete) -> dict[str, float]:
    if len(complete) < 2:
        return {}
    try:
        import optuna

        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every trial had the same value
        return {}


def _markdown_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no trials yet)"]
    columns = list(rows[0])

    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows])


def _terminate(child: subprocess.Popen, timeout: float = 120.0) -> None:
    """SIGTERM (the run writes a backup and exits), then SIGKILL if it does not."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _drop_backups(run_dir: Path) -> None:
    """A pruned trial is final: delete its resumable backups (its metrics and logs stay)."""
    from tfbert.training.backup import list_backups

    for backup in list_backups(run_dir):
        shutil.rmtree(backup, ignore_errors=True)


def _last_line(path: Path) -> str:
    try:
        lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    errors = [l for l in lines if l.startswith("error:") or "Error" in l]
    return (errors or lines or [""])[-1].strip()[:300]


def run_search(settings: SearchSettings, log: Callable[[str], None] = print) -> dict:
    """Run (or continue) a search; returns its summary (best trial, value, params, files).

    Examples:
        >>> run_search(SearchSettings("configs/sms_spam_minilm.yaml", "space.yaml", trials=20))  # doctest: +SKIP
    """
    return Search(settings, log).run()
