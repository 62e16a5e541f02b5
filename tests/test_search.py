"""Hyperparameter search (tfbert.search, tools/search.py): the space's checks, a 3-trial search on the
tiny BERT with pruning, and the resume of a killed search. Trials run in child processes."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tfbert.config import ExperimentConfig, load_config
from tfbert.errors import ConfigError
from tfbert.search import SearchSettings, parse_space, run_search

optuna = pytest.importorskip("optuna")


def _base() -> ExperimentConfig:
    return load_config(None, ["data.validation_split=0.2"])


@pytest.mark.parametrize("space,message", [
    ({"optimizer.lerning_rate": {"type": "float", "low": 1e-5, "high": 1e-4}},
     "unknown config key 'optimizer.lerning_rate' (did you mean 'learning_rate'?)"),
    ({"optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-5}}, "empty range"),
    ({"training.num_train_epochs": {"type": "int", "low": 3, "high": 3}}, "empty range"),
    ({"training.per_device_train_batch_size": {"type": "float", "low": 8, "high": 32}},
     "config key 'training.per_device_train_batch_size': expected an integer"),
    ({"model.pooling": {"type": "categorical", "choices": ["cls", "max"]}}, "'max' is not allowed"),
    ({"model.pooling": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"optimizer.learning_rate": {"type": "float", "low": -1, "high": 1e-4}}, "must be > 0"),
    ({"optimizer.layerwise_lr_decay": {"type": "float", "low": 0.5, "high": 1.5}}, "must be in (0, 1]"),
    ({"optimizer.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "lg": True}},
     "unknown field 'lg' (did you mean 'log'?)"),
    ({"optimizer.learning_rate": {"type": "uniform", "low": 1e-5, "high": 1e-4}}, "'type' must be one of"),
    ({"optimizer.learning_rate": {"type": "float", "low": "a lot", "high": 1e-4}}, "'low' must be a number"),
    ({"optimizer": {"type": "float", "low": 1e-5, "high": 1e-4}}, "is a section"),
    ({"training.output_dir": {"type": "categorical", "choices": ["a", "b"]}}, "cannot be searched"),
    ({"training.num_train_epochs": {"type": "int", "low": 1.5, "high": 3}}, "must be an integer for type int"),
    ([], "expected a mapping"),
])
def test_bad_search_spaces_get_one_line_errors(space, message):
    with pytest.raises(ConfigError) as info:
        parse_space(space, _base(), "space.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("space.yaml")


def test_a_good_space_parses_every_kind():
    params = parse_space({
        "optimizer.learning_rate": {"type": "float", "low": "1e-5", "high": 1e-4, "log": True},
        "training.num_train_epochs": {"type": "int", "low": 2, "high": 4},
        "model.pooling": {"type": "categorical", "choices": ["cls", "pooler"]},
        "optimizer.warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
    }, _base())
    kinds = [type(p.distribution()).__name__ for p in params]
    assert kinds == ["FloatDistribution", "IntDistribution", "CategoricalDistribution", "FloatDistribution"]
    assert params[0].low == 1e-5 and params[0].log


def test_cli_reports_a_bad_space_in_one_line(tmp_path, capsys):
    from tfbert.cli import common
    from tfbert.cli.search import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train_file": "x.tsv", "validation_split": 0.2}}))
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.learning_rate: {type: float, low: 1e-4, high: 1e-5}\n")
    assert common.run(main, ["--config", str(config), "--space", str(space), "--trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "empty range" in err[0]


def test_search_needs_a_validation_split(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train_file": "x.tsv"}}))
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.learning_rate: {type: float, low: 1e-5, high: 1e-4}\n")
    with pytest.raises(ConfigError, match="needs a validation split"):
        run_search(SearchSettings(str(config), str(space), trials=1))


# ------------------------------------------------------------------ real searches on the tiny BERT

def _write_base(tiny_config, tmp_path: Path, *overrides: str) -> Path:
    config = tiny_config("training.num_train_epochs=2", "export.at_end=false", "training.metric_for_best_model=val_loss",
                         "optimizer.lr_scheduler_type=constant", *overrides)
    path = tmp_path / "base.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    return path


def _space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text("optimizer.learning_rate: {type: float, low: 1.0e-7, high: 3.0e-3, log: true}\n")
    return path


def test_two_trial_search_prunes_and_writes_the_best_config(tiny_config, tmp_path):
    # With a test split, so that the trials can be seen not to score it.
    base = _write_base(tiny_config, tmp_path, "training.num_train_epochs=3", "data.test_split=0.2")
    space, out = _space(tmp_path), tmp_path / "search"
    # The first two trials are fixed so that pruning is certain: a useful rate, then one that
    # leaves the model where it started (its val_loss stays above the finished trial's by epoch 2).
    out.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{out.resolve() / 'study.db'}", study_name="search",
                                direction="minimize")
    study.enqueue_trial({"optimizer.learning_rate": 3e-3})
    study.enqueue_trial({"optimizer.learning_rate": 1e-7})
    lines: list[str] = []
    summary = run_search(SearchSettings(str(base), str(space), trials=2, output_dir=str(out), startup_trials=1,
                                        seed=0, poll_seconds=0.2), log=lines.append)
    study = optuna.load_study(study_name="search", storage=summary["storage"])
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED"], (states, lines)
    assert len(study.trials[1].intermediate_values) <= 2  # pruned before its last epoch
    # (Its process gets SIGTERM then; a tiny model's epochs are so short that the run may already
    # be in its final evaluation, which ends normally, so its directory may be complete.)
    assert not list((out / "trial-001" / "checkpoints").glob("step-*"))  # a pruned trial never resumes
    assert (out / "trial-000" / "run_summary.json").is_file() and (out / "trial-000" / "model").is_dir()
    for evaluated in out.glob("trial-*/eval_results.json"):
        assert json.loads(evaluated.read_text())["split"] == "validation"
    best = load_config(out / "best_config.yaml")
    assert best.training.do_predict  # the chosen config's own run reports on the test split
    assert best.optimizer.learning_rate == pytest.approx(study.best_trial.params["optimizer.learning_rate"])
    assert best.training.output_dir == str(out / "best")
    table = (out / "search_summary.md").read_text()
    assert "| trial | state | val_loss |" in table and "pruned" in table
    assert len((out / "trials.csv").read_text().strip().splitlines()) == 3
    # The study is full: running the command again adds no trial.
    run_search(SearchSettings(str(base), str(space), trials=2, output_dir=str(out)), log=lines.append)
    assert len(optuna.load_study(study_name="search", storage=summary["storage"]).trials) == 2
    # ...and a different space is refused rather than mixed into the same study.
    space.write_text("optimizer.learning_rate: {type: float, low: 1.0e-6, high: 3.0e-3, log: true}\n")
    from tfbert.search import SearchError

    with pytest.raises(SearchError, match="was started with another base config or search space"):
        run_search(SearchSettings(str(base), str(space), trials=3, output_dir=str(out)))


def test_a_killed_search_resumes_its_trial(tiny_config, tmp_path):
    base = _write_base(tiny_config, tmp_path, "training.num_train_epochs=4", "training.save_steps=2")
    space, out = _space(tmp_path), tmp_path / "search"
    command = [sys.executable, str(ROOT / "tools" / "search.py"), "--config", str(base), "--space", str(space),
               "--trials", "1", "--output-dir", str(out), "--seed", "0"]
    search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 300
    while not list((out / "trial-000" / "checkpoints").glob("step-*")):
        assert search.poll() is None and time.monotonic() < deadline, search.stdout.read().decode()
        time.sleep(0.1)
    search.send_signal(signal.SIGKILL)  # no chance to clean up: the trial stays RUNNING in the study
    search.wait()
    lines: list[str] = []
    summary = run_search(SearchSettings(str(base), str(space), trials=1, output_dir=str(out)), log=lines.append)
    assert any("continuing the killed run" in line for line in lines), lines
    assert "resuming at step" in (out / "logs" / "trial-000.log").read_text()
    study = optuna.load_study(study_name="search", storage=summary["storage"])
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert (out / "trial-000" / "run_summary.json").is_file() and not (out / "trial-001").exists()
    assert list(study.trials[0].intermediate_values) == [1, 2, 3, 4]


def test_a_study_fingerprint_counts_only_values_that_differ_from_the_defaults():
    """A tfbert version that adds a config key (with its default) still continues an older study."""
    from tfbert.search import non_default_values

    config = load_config(None, ["optimizer.learning_rate=3e-5", "training.output_dir=runs/x"])
    assert non_default_values(config) == {"optimizer.learning_rate": 3e-5, "training.output_dir": "runs/x"}


def test_epochs_found_in_one_poll_stop_at_the_first_pruned_one(tiny_config, tmp_path):
    """A trial pruned at epoch 2 is not reported at epoch 3 even when both arrived together."""
    from tfbert.search import Search

    class Trial:  # the two calls of optuna.Trial that reporting makes
        def __init__(self):
            self.values = {}

        def report(self, value, step):
            self.values[step] = value

        def should_prune(self):
            return max(self.values) >= 2

    search = Search(SearchSettings(str(_write_base(tiny_config, tmp_path)), str(_space(tmp_path)), trials=1,
                                   output_dir=str(tmp_path / "search")))
    trial, reported = Trial(), set()
    epochs = [{"epoch": e, "val_loss": 1.0 / e} for e in (3, 1, 2)]
    assert search._report(trial, epochs, reported) is True
    assert reported == {1, 2} and sorted(trial.values) == [1, 2]
