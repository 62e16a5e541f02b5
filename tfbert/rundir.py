"""A run directory (``training.output_dir``): the name of every file a run writes, and their readers.

The trainer, its callbacks, the backups, the report, the search and the export tool all read or
write the same files; each asks `RunDir` for the path instead of spelling the name, so a file is
named once and parsed once. No TensorFlow here: the report and the search read runs without it.

    config.yaml                the config that ran (what a resume compares against)
    metrics.jsonl, .csv        one record per epoch (rewritten whole at every epoch end)
    steps.jsonl, .csv          one record per logging window
    eval_results.json          the final evaluation report
    run_summary.json           written last: its presence marks a finished run
    README.md                  the model card
    model/                     the fine-tuned model (`tfbert.modeling.saving`)
    saved_model/               the raw-string SavedModel (``export.dir_name``)
    checkpoints/step-N/        backups: a TF checkpoint + trainer_state.json (`tfbert.training.backup` writes
                               them; `read_state` and `resolve_backup` read them without TensorFlow)
    checkpoints/best/          the best epoch's weights
    logs/                      TensorBoard
    report.html, figures/      the report (`tfbert.reporting`)
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from tfbert.errors import ConfigError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
STEPS = "steps.jsonl"
STEPS_CSV = "steps.csv"
EVAL_RESULTS = "eval_results.json"
SUMMARY = "run_summary.json"
CARD = "README.md"
MODEL = "model"
SAVED_MODEL = "saved_model"
CHECKPOINTS = "checkpoints"
BEST = "best"
LOGS = "logs"
REPORT = "report.html"
FIGURES = "figures"
#: A backup's state file, beside its checkpoint in ``checkpoints/step-N``.
STATE_FILE = "trainer_state.json"
#: A backup's TensorFlow checkpoint prefix (``ckpt.index``, ``ckpt.data-*``) and state format.
CHECKPOINT_PREFIX = "ckpt"
STATE_FORMAT = 1
_STEP_DIR = re.compile(r"^step-(\d+)$")

#: What a run writes into its directory; overwriting a run removes these and nothing else.
ARTEFACTS = (CONFIG, METRICS_CSV, METRICS, EVAL_RESULTS, SUMMARY, CARD, CHECKPOINTS, LOGS, MODEL, SAVED_MODEL,
             STEPS, STEPS_CSV, REPORT, FIGURES)


def read_records(path: Path) -> list[dict]:
    """The JSON lines of `path` ([] when it does not exist), up to the first line that is not JSON.

    The run rewrites these files whole and atomically; stopping at a damaged line keeps a reader
    that polls a live run (the search) from failing on a file something else truncated.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


class RunDir:
    """One run directory: its artefacts' paths and readers.

    Examples:
        >>> run = RunDir("runs/sms_spam_minilm")  # doctest: +SKIP
        >>> run.is_finished(), run.read_metrics()[-1]["val_accuracy"]  # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ paths

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def steps_file(self) -> Path:
        return self.path / STEPS

    @property
    def eval_results_file(self) -> Path:
        return self.path / EVAL_RESULTS

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY

    @property
    def card_file(self) -> Path:
        return self.path / CARD

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def best_dir(self) -> Path:
        return self.checkpoints_dir / BEST

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS

    @property
    def report_file(self) -> Path:
        return self.path / REPORT

    def records_files(self, stem: str) -> tuple[Path, Path]:
        """(``STEM.jsonl``, ``STEM.csv``): ``metrics`` per epoch, ``steps`` per logging window."""
        return self.path / f"{stem}.jsonl", self.path / f"{stem}.csv"

    def backup_dir(self, updates: int) -> Path:
        """Where the backup after `updates` optimizer updates goes (``checkpoints/step-N``)."""
        return self.checkpoints_dir / f"step-{int(updates)}"

    # ------------------------------------------------------------------ state

    def is_run(self) -> bool:
        """A tfbert run (finished or not): it has written its config."""
        return self.config_file.is_file()

    def is_finished(self) -> bool:
        """``run_summary.json`` is written last: a run without it was interrupted (or is running)."""
        return self.summary_file.is_file()

    def backups(self) -> list[Path]:
        """Complete backups, oldest first (a backup is complete once its directory holds its state)."""
        root = self.checkpoints_dir
        if not root.is_dir():
            return []
        found = []
        for path in root.iterdir():
            match = _STEP_DIR.match(path.name)
            if match and path.is_dir() and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found)]

    def latest_backup(self) -> Optional[Path]:
        backups = self.backups()
        return backups[-1] if backups else None

    # ------------------------------------------------------------------ readers

    def read_config(self) -> dict:
        """``config.yaml`` as a plain dict ({} when empty); missing or unreadable raises."""
        import yaml

        return yaml.safe_load(self.config_file.read_text(encoding="utf-8")) or {}

    def read_metrics(self) -> list[dict]:
        """The per-epoch records so far (``metrics.jsonl``)."""
        return read_records(self.metrics_file)

    def read_steps(self) -> list[dict]:
        """The per-logging-window records so far (``steps.jsonl``)."""
        return read_records(self.steps_file)

    def read_evaluation(self) -> Optional[dict]:
        """The final evaluation report (``eval_results.json``), or None before it is written."""
        return _read_json(self.eval_results_file)

    def read_summary(self) -> Optional[dict]:
        """The run summary (``run_summary.json``), or None for an unfinished run."""
        return _read_json(self.summary_file)


def read_state(backup: str | Path) -> dict:
    """The `trainer_state.json` of a backup, checked."""
    path = Path(backup) / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable tfbert backup state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or "fit_steps_done" not in state:
        raise ConfigError(f"{path}: not a tfbert backup state (format {STATE_FORMAT} expected)")
    if not Path(backup, CHECKPOINT_PREFIX + ".index").is_file():
        raise ConfigError(f"{backup}: the backup has no checkpoint ({CHECKPOINT_PREFIX}.index)")
    return state


def resolve_backup(path: str | Path) -> Path:
    """A backup directory, or a run directory (its latest backup), as ``training.resume`` names it."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    latest = RunDir(path).latest_backup()
    if latest is None:
        raise ConfigError(f"config key 'training.resume': {path} is neither a backup "
                          f"(RUN/checkpoints/step-N) nor a run directory holding one")
    return latest


__all__ = ["ARTEFACTS", "CHECKPOINT_PREFIX", "RunDir", "STATE_FILE", "STATE_FORMAT", "read_records", "read_state",
           "resolve_backup"]
