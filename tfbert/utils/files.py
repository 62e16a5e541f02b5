"""Atomic file and directory writes: a crash never leaves a half-written artefact in place; tfbert's cache."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def cache_dir(*parts: str) -> Path:
    """A folder under tfbert's cache: ``$TFBERT_CACHE``, else ``~/.cache/tfbert``."""
    return Path(os.environ.get("TFBERT_CACHE", Path.home() / ".cache" / "tfbert"), *parts)


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; on success swap it into place, on error remove it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, old / "previous")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def refuse_to_replace_finished_run(target: str | Path, overwrite: bool = False, how: str = "overwrite=True") -> None:
    """Stop before `target` replaces a finished run's model or export, unless `overwrite`.

    A finished run is a directory holding ``run_summary.json`` (written last by `tfbert.train`);
    its ``model/`` and ``saved_model/`` belong with its report, metrics and backups, so a library
    call that would put another model there (an example script pointed at the demo's run, say)
    raises `OutputExistsError` with one line instead. A run's own saves happen before its summary
    exists, and a retrained run (``training.overwrite_output_dir``) removes the summary first.

    Args:
        target: the directory about to be written.
        overwrite: replace it anyway.
        how: how the caller's user says "overwrite" (named in the message).
    """
    from tfbert.errors import OutputExistsError

    from tfbert.rundir import RunDir

    target = Path(target)
    if overwrite or not RunDir(target.parent).is_finished():
        return
    if target.is_dir() and any(target.iterdir()):
        raise OutputExistsError(f"{target}: refusing to replace {target.name}/ of the finished run {target.parent} "
                                f"(it has run_summary.json); write to another directory or pass {how}")


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, payload: object) -> Path:
    """Write JSON atomically (see `write_text`)."""
    return write_text(path, json.dumps(payload, indent=2) + "\n")
