"""What the search (`tfbert.search.study`) needs around its trials: locks, child processes, signals,
dropping a pruned trial's backups, and the study's summary tables (a trial's epochs: `RunDir`)."""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Iterator, Optional

from tfbert.rundir import RunDir


def best_of(records: list[dict], metric: str, mode: str, last_only: bool) -> Optional[float]:
    values = [r[metric] for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    if not values:
        return None
    if last_only:
        return values[-1]
    return min(values) if mode == "min" else max(values)


def lock(path: Path, block: bool = False) -> Optional[int]:
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


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: a search killed outright still stops its trial, which backs up on SIGTERM.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Stop(Exception):
    """The search was interrupted (SIGINT/SIGTERM): the running trial is left to resume."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    def handler(signum, frame):
        raise Stop(signal.Signals(signum).name)

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


def param_importances(study, complete) -> dict[str, float]:
    if len(complete) < 2:
        return {}
    try:
        import optuna

        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every trial had the same value
        return {}


def markdown_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no trials yet)"]
    columns = list(rows[0])

    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows])


def terminate(child: subprocess.Popen, timeout: float = 120.0) -> None:
    """SIGTERM (the run writes a backup and exits), then SIGKILL if it does not."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def drop_backups(run_dir: Path) -> None:
    """A pruned trial is final: delete its resumable backups (its metrics and logs stay)."""
    for backup in RunDir(run_dir).backups():
        shutil.rmtree(backup, ignore_errors=True)


def last_line(path: Path) -> str:
    try:
        lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    errors = [l for l in lines if l.startswith("error:") or "Error" in l]
    return (errors or lines or [""])[-1].strip()[:300]

