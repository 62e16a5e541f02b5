"""The suite is hermetic: a whole training run writes nothing into ``HOME`` or the repository.

``conftest.py`` points every cache (Hugging Face hub and datasets, tfbert's, Keras', matplotlib's,
``XDG_CACHE_HOME``) into the session's temporary directory before anything is imported; a tool run
in a subprocess inherits that. This runs ``tools/train.py`` end to end (data cache, training,
backups, TensorBoard logs, model directory, report with figures; the SavedModel export is checked
the same way by ``tests/test_training.py::test_library_example_runs``) with ``HOME`` pointed at an
empty directory, from the repository root, and checks that ``HOME`` is still empty and that the
repository holds no file it did not hold before.
"""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import HERMETIC_DIRS, ROOT, SESSION_TMP

#: Directories not walked: git's own, the virtual environments and bytecode caches.
SKIPPED_DIRS = {".git", ".venv", ".venvs", "__pycache__"}


def repository_files() -> set[str]:
    """Every file of the working tree (relative paths), tracked or not, outside `SKIPPED_DIRS`."""
    found = set()
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in SKIPPED_DIRS]
        found.update(os.path.relpath(os.path.join(directory, name), ROOT) for name in files)
    return found


def written_by_the_run(new: set[str], top_level_before: set[str]) -> list[str]:
    """The new files a test run must not have made.

    A new top-level entry (``runs/``, ``.hypothesis/``, a cache directory…) always counts. Below
    the top level, a working tree shared with people who edit sources and run things while this
    runs gains files of its own, so only a run's own kinds of files count there (data caches,
    weights, logs, metrics), and not under an existing ``runs/`` (where a person's runs go; on a
    fresh clone, as in CI, ``runs/`` does not exist and any run written there is a new top-level
    entry).
    """
    own_kinds = (".arrow", ".lock", ".h5", ".pb", ".index", ".safetensors", ".png", ".jsonl", ".csv", ".html",
                 ".tfrecord", "run_summary.json", "eval_results.json", "trainer_state.json", "config.yaml")
    found = []
    for path in sorted(new):
        top = path.split(os.sep)[0]
        if top not in top_level_before or (top != "runs" and (path.endswith(own_kinds) or "tfevents" in path)):
            found.append(path)
    return found


def test_caches_point_into_the_session_directory():
    for variable, sub in HERMETIC_DIRS.items():
        assert os.environ[variable] == str(SESSION_TMP / sub)
    import datasets.config

    assert str(datasets.config.HF_DATASETS_CACHE) == str(SESSION_TMP / "huggingface" / "datasets")


def test_a_training_run_leaves_an_empty_home_empty_and_the_repository_unchanged(tiny_model_dir, spam_file, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    before, top_level_before = repository_files(), set(os.listdir(ROOT))
    out = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "tools" / "train.py")]
    for pair in (f"model.name_or_path={tiny_model_dir}", f"data.train_file={spam_file}", "data.has_header=false",
                 "data.column_names=[label, text]", "data.validation_split=0.25", "data.max_seq_length=32",
                 "training.per_device_train_batch_size=4", "training.num_train_epochs=1", "training.save_steps=2",
                 # The SavedModel export runs with an empty HOME in tests/test_training.py's example run.
                 "export.at_end=false", f"training.output_dir={out}"):
        argv += ["--set", pair]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HOME": str(home)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "run_summary.json").is_file() and (out / "model").is_dir() and (out / "report.html").is_file()
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
    written = written_by_the_run(repository_files() - before, top_level_before)
    assert not written, f"the run wrote into the repository: {written}"


def test_the_repository_check_tells_a_runs_files_from_a_persons_edits():
    top = {"tfbert", "tests", "data", "runs", "README.md"}
    assert written_by_the_run({"data/sms_spam/cache-1a2b.arrow", "tfbert/new_module.py", "runs/i24/speed.log",
                               ".hypothesis/examples/x", "tests/test_new.py", "data/x/run_summary.json"}, top) == [
        ".hypothesis/examples/x", "data/sms_spam/cache-1a2b.arrow", "data/x/run_summary.json"]
    # On a fresh clone runs/ does not exist: a test that trains into runs/NAME is caught.
    assert written_by_the_run({"runs/sms_spam_minilm/config.yaml"}, top - {"runs"}) == ["runs/sms_spam_minilm/config.yaml"]


def test_the_longest_files_are_scheduled_first(request):
    """`conftest.LONGEST_FILES` names files that exist, and the session collected them before the rest."""
    from tests.conftest import LONGEST_FILES, schedule_rank

    missing = [name for name in LONGEST_FILES if not (ROOT / name).is_file()]
    assert not missing, f"renamed or removed: {missing}"
    ranks = [schedule_rank(item.nodeid) for item in request.session.items]
    assert ranks == sorted(ranks)
