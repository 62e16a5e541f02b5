"""Training end to end on the tiny model: checkpoints, best restore, logs, card, repeatability."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tfbert.errors import ConfigError
from tfbert.run.experiment import build_experiment
from tfbert.modeling.saving import load_pretrained
from tfbert.run.trainer import train


def test_train_writes_a_complete_run(tiny_config):
    config = tiny_config("training.num_train_epochs=3", "training.save_total_limit=2",
                         "training.tensorboard=true", "data.test_split=0.25", "export.at_end=false")
    summary = train(config, log=lambda *_: None)
    out = config.training.output_dir
    from pathlib import Path
    out = Path(out)
    # the last N backups kept (the newest at the last update), plus the best epoch's checkpoint
    from tfbert.rundir import read_state
    from tfbert.training.backup import list_backups
    backups = list_backups(out)
    assert len(backups) == 2 and read_state(backups[-1])["global_step"] == read_state(backups[-1])["total_steps"]
    assert len(list((out / "checkpoints" / "best").glob("ckpt-*.index"))) == 1
    history = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate"} <= set(history[0])
    assert (out / "metrics.csv").read_text().startswith("epoch,")
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    report = json.loads((out / "eval_results.json").read_text())
    assert report["split"] == "test" and report["num_examples"] == 12
    assert set(report["per_class"]) == {"ham", "spam"}
    assert np.array(report["confusion_matrix"]["matrix"]).sum() == 12
    card = (out / "README.md").read_text()
    assert "- learning_rate: 5e-05" in card and "| Training Loss | Epoch | Step | Accuracy | Validation Loss |" in card
    assert card.count("\n| ") >= 4  # header + 3 epochs
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["num_train_epochs"] == 3
    assert summary["eval"]["split"] == "test"


def test_best_epoch_is_restored_and_model_reloads(tiny_config):
    config = tiny_config("training.num_train_epochs=2", "optimizer.learning_rate=1e-3", "export.at_end=false",
                         "training.metric_for_best_model=val_loss")
    experiment = build_experiment(config)
    keeper = next(c for c in experiment.callbacks() if type(c).__name__ == "CheckpointKeeper")
    experiment.fit(callbacks=[c for c in experiment.callbacks() if type(c).__name__ != "CheckpointKeeper"][:1] + [keeper])
    best = experiment.evaluate_split("validation")["loss"]
    assert best == pytest.approx(keeper.best_value, rel=1e-4)
    from tfbert.modeling.saving import save_pretrained
    path = save_pretrained(experiment.output_dir / "model", experiment.model, experiment.tokenizer, config,
                           experiment.label_names)
    loaded = load_pretrained(path)
    assert loaded.label_names == ["ham", "spam"]
    for a, b in zip(loaded.model.get_weights(), experiment.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_run(tiny_config, tmp_path):
    losses = []
    for run in ("a", "b"):
        config = tiny_config(f"training.output_dir={tmp_path / run}", "training.num_train_epochs=2",
                             "optimizer.learning_rate=1e-3")
        history = build_experiment(config).fit(callbacks=[])
        losses.append(history.history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_accumulation_and_freezing_train_through_fit(tiny_config):
    config = tiny_config("training.gradient_accumulation_steps=3", "training.freeze=bottom",
                         "training.freeze_layers=1", "optimizer.learning_rate=1e-3")
    experiment = build_experiment(config)
    frozen = [w.numpy().copy() for w in experiment.model.weights if "/layer_0/" in w.name or "embeddings" in w.name]
    assert len(frozen) > 10
    experiment.fit(callbacks=[])
    assert experiment.model.optimizer.iterations.numpy() == experiment.plan.total_optimizer_steps
    after = [w.numpy() for w in experiment.model.weights if "/layer_0/" in w.name or "embeddings" in w.name]
    for a, b in zip(frozen, after):
        np.testing.assert_array_equal(a, b)


def test_mixed_float16_fit_stays_finite(tiny_config):
    from tfbert.training.precision import set_precision

    try:
        experiment = build_experiment(tiny_config("precision.policy=mixed_float16",
                                                  "training.gradient_accumulation_steps=2"))
        history = experiment.fit(callbacks=[])
        assert np.isfinite(history.history["loss"]).all()
        assert all(np.isfinite(w).all() for w in experiment.model.get_weights())
    finally:
        set_precision("float32")


def test_early_stopping(tiny_config):
    config = tiny_config("training.num_train_epochs=6", "training.early_stopping_patience=1",
                         "optimizer.learning_rate=1e-9", "training.metric_for_best_model=val_accuracy",
                         "export.at_end=false")
    train(config, log=lambda *_: None)
    from pathlib import Path
    epochs = len(Path(config.training.output_dir, "metrics.jsonl").read_text().splitlines())
    assert epochs < 6


def test_refuses_to_overwrite_a_run(tiny_config):
    config = tiny_config("export.at_end=false")
    train(config, log=lambda *_: None)
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train(config, log=lambda *_: None)


def test_library_example_runs(tiny_model_dir, spam_file, tmp_path):
    """examples/fit_in_your_script.py: a user's own `model.fit` on what tfbert builds, written to the
    example's own directory; the demo's finished run beside it is left as it was."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.test_guards import finished_run

    demo = finished_run(tmp_path / "runs" / "sms_spam_minilm")
    before = {p: p.read_bytes() for p in demo.rglob("*") if p.is_file()}
    home = tmp_path / "home"  # and, like tests/test_hermetic.py's run, nothing lands in HOME (the export too)
    home.mkdir()
    result = subprocess.run([
        sys.executable, str(ROOT / "examples" / "fit_in_your_script.py"), "--config", str(ROOT / "configs" / "sms_spam_minilm.yaml"),
        "--set", f"model.name_or_path={tiny_model_dir}", "--set", f"data.train_file={spam_file}",
        "--set", "data.max_seq_length=32", "--set", "training.per_device_train_batch_size=4",
    ], capture_output=True, text=True, timeout=600, cwd=tmp_path, env={**os.environ, "HOME": str(home)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out accuracy" in result.stdout
    assert list(home.iterdir()) == []
    own = tmp_path / "runs" / "fit_in_your_script"
    assert (own / "model" / "labels.json").is_file() and (own / "saved_model" / "saved_model.pb").is_file()
    assert {p: p.read_bytes() for p in demo.rglob("*") if p.is_file()} == before
