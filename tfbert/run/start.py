"""Whether a run starts fresh, resumes or is refused: decided from files alone, before TensorFlow loads.

`tools/train.py` asks `plan_start` right after reading the config, so a finished run, a changed
config or an unwritable directory is refused in a fraction of a second; `trainer.train` asks again
(the library path) and builds on the answer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tfbert.config import ExperimentConfig, config_from_dict, flatten_keys
from tfbert.errors import ConfigError, TfbertError
from tfbert.rundir import RunDir, read_state, resolve_backup


#: Keys that may change between an interrupted run and its resume (where and how it reports).
#: distribution.* is compared through the batch plan instead: the same global batch may come
#: from different strategies.
RESUME_IGNORED_KEYS = ("training.output_dir", "training.overwrite_output_dir", "training.resume",
                       "training.save_steps", "training.save_total_limit", "training.tensorboard",
                       "training.verbose", "training.logging_steps", "training.per_device_eval_batch_size", "training.steps_per_execution",
                       "data.cache_dir", "export.", "distribution.")


@dataclass
class StartPoint:
    """How a run starts: fresh, or from a backup (its directory and state)."""

    backup: Optional[Path] = None
    state: Optional[dict] = None
    #: an unfinished run's directory to clear first (killed before its first backup)
    clear: bool = False

    @property
    def resuming(self) -> bool:
        return self.backup is not None

    @property
    def source_run(self) -> Optional[Path]:
        """The run directory the backup belongs to (``RUN/checkpoints/step-N``)."""
        return self.backup.parent.parent if self.backup is not None else None


def config_differences(saved: ExperimentConfig, current: ExperimentConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """Keys whose change makes a resumed run a different run (model, data, batch, schedule...);
    `ignore` adds keys (or ``section.`` prefixes) to `RESUME_IGNORED_KEYS` for this comparison."""
    old, new = flatten_keys(saved.to_dict()), flatten_keys(current.to_dict())
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)
            and not any(k == i or (i.endswith(".") and k.startswith(i)) for i in RESUME_IGNORED_KEYS + ignore)]


def _saved_config(run_dir: Path) -> ExperimentConfig:
    import yaml

    run = RunDir(run_dir)
    path = run.config_file
    try:
        return config_from_dict(run.read_config())
    except (OSError, yaml.YAMLError, TfbertError) as exc:
        raise ConfigError(f"{path}: the interrupted run's config cannot be read ({exc})") from None


def plan_start(config: ExperimentConfig, resolved: bool = True) -> StartPoint:
    """Decide, before anything is built or written, whether this run starts fresh or resumes.

    - nothing (or an empty directory) at ``training.output_dir``: fresh;
    - a finished run: refused unless ``training.overwrite_output_dir`` (then fresh);
    - an unfinished run with a backup: resumed (``training.resume: auto``), refused (``never``);
    - an unfinished run killed before its first backup: started again;
    - ``training.resume: PATH``: resumed from that backup or run directory.
    Resuming refuses a config that differs in a key that matters (`config_differences`). With
    `resolved` false (the config as read, before TensorFlow loads), ``precision.policy: auto`` is
    not compared: it becomes a policy only on the device, and the run asks again then.
    """
    t = config.training
    out = Path(t.output_dir)
    _check_writable(out)
    occupied = out.is_dir() and any(out.iterdir())
    explicit = t.resume not in ("auto", "never")
    if occupied and t.overwrite_output_dir:
        if explicit:
            raise ConfigError("config key 'training.resume': resuming and training.overwrite_output_dir=true exclude "
                              "each other")
        return StartPoint(clear=True)
    if explicit:
        if occupied and Path(t.resume).resolve() != out.resolve() and not str(Path(t.resume).resolve()).startswith(
                str(out.resolve()) + "/"):
            raise ConfigError(f"config key 'training.output_dir': {out} already holds files; resume into a new "
                              "or empty directory, or into the run being resumed")
        return _resume_point(config, resolve_backup(t.resume), resolved)
    if not occupied:
        return StartPoint()
    run = RunDir(out)
    if run.is_finished() or not run.is_run():
        what = "a finished run" if run.is_finished() else "files that are not a tfbert run"
        raise ConfigError(f"config key 'training.output_dir': {out} already holds {what}; choose another "
                          "directory or set training.overwrite_output_dir=true")
    latest = run.latest_backup()
    if latest is None:
        return StartPoint(clear=True)  # killed before its first backup: nothing to keep
    if t.resume == "never":
        raise ConfigError(f"config key 'training.resume': {out} holds an unfinished run (backup {latest.name}); "
                          "set training.resume=auto to continue it or training.overwrite_output_dir=true to start over")
    return _resume_point(config, latest, resolved)


def _check_writable(out: Path) -> None:
    """Fail before any work if the output directory cannot be made (checked again on creation)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"config key 'training.output_dir': {out} is a file, not a directory")
    ancestor = out
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"config key 'training.output_dir': cannot create {out}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"config key 'training.output_dir': cannot create {out}: {ancestor} is not writable")


def _resume_point(config: ExperimentConfig, backup: Path, resolved: bool) -> StartPoint:
    start = StartPoint(backup=backup, state=read_state(backup))
    source_run = start.source_run
    if RunDir(source_run).is_run():
        unresolved = ("precision.policy",) if not resolved and config.precision.policy == "auto" else ()
        differences = config_differences(_saved_config(source_run), config, ignore=unresolved)
        if differences:
            raise ConfigError(
                f"config key 'training.resume': cannot resume {source_run}: the config differs in "
                f"{', '.join(differences)} (a resumed run must be the same run; use a new training.output_dir "
                "or training.overwrite_output_dir=true)")
    return start
