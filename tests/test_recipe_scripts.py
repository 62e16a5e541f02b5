"""The scripts behind the recipes' choices: multi-label decision rules compared on one model
(`scripts/compare_thresholds.py`) and checkpoint averaging (`scripts/average_checkpoints.py`),
on a tiny model trained for two epochs; a recipe's cost per precision (`scripts/recipe_cost.py`)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_multi_label import ROWS, config_for, write_rows


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def two_epoch_run(tiny_model_dir, tmp_path_factory):
    """A multi-label run with a validation and a test split and one backup per epoch."""
    from tfbert.run.trainer import train

    tmp = tmp_path_factory.mktemp("run")
    config = config_for(tiny_model_dir, write_rows(tmp / "a.tsv", repeat=6), tmp, "optimizer.learning_rate=1e-3",
                        "data.validation_split=0.25", "data.test_split=0.25", "training.num_train_epochs=2",
                        "training.save_steps=epoch", "training.save_total_limit=2",
                        "task.threshold_rule=per_label", "task.threshold_min_support=1")
    train(config, log=lambda *_: None)
    return tmp / "run"


def test_compare_thresholds_scores_each_rule_on_the_test_split(two_epoch_run, tmp_path, capsys):
    from tfbert.modeling.saving import load_pretrained
    from tfbert.tasks import get_task
    from tfbert.tasks.multi_label_classification.task import multi_label_metrics, tune_threshold

    out = tmp_path / "rules.json"
    assert _script("compare_thresholds").main([str(two_epoch_run / "model"), "--floors", "1,50", "--labels",
                                              "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| fixed 0.5 |" in printed and "| per label, floor 50 |" in printed and "| anger |" in printed
    results = json.loads(out.read_text())
    # Recompute the global rule by hand: tuned on validation, scored on the test split.
    loaded = load_pretrained(two_epoch_run / "model")
    data = get_task("multi_label_classification").load_data(loaded.config, loaded.tokenizer,
                                                             seed=loaded.config.training.seed,
                                                             label_names=loaded.label_names)

    def probabilities(split):
        encoded = loaded.tokenizer(data.extras[split][0], padding=True, return_tensors="np")
        logits = loaded.model({k: encoded[k].astype(np.int32) for k in loaded.model.input_names}).numpy()
        return 1 / (1 + np.exp(-logits))

    t = tune_threshold(data.splits["validation"].labels, probabilities("validation"))
    expected = multi_label_metrics(data.splits["test"].labels, (probabilities("test") >= t).astype(np.float32),
                                   data.label_names)
    (rule,) = [r for r in results if r.startswith("global")]
    assert rule == f"global (tuned: {t:.2f})"
    assert results[rule]["macro_f1"] == pytest.approx(expected["macro_f1"], abs=1e-6)
    assert results[rule]["micro_f1"] == pytest.approx(expected["micro_f1"], abs=1e-6)
    # A floor above every label's validation support leaves every label at the global threshold.
    assert results["per label, floor 50"]["thresholds"] == pytest.approx([t] * 3)
    assert set(results["per_label"]) == {"anger", "joy", "love"}


def test_average_checkpoints_writes_the_mean_of_the_last_backups(two_epoch_run, tmp_path):
    import tensorflow as tf

    from tfbert.modeling.saving import load_pretrained
    from tfbert.training.backup import CHECKPOINT_PREFIX, list_backups

    backups = list_backups(two_epoch_run)
    assert len(backups) == 2
    assert _script("average_checkpoints").main([str(two_epoch_run), "--last", "2",
                                                "--output", str(tmp_path / "avg")]) == 0
    reference = load_pretrained(two_epoch_run / "model")
    weights = []
    for backup in backups:
        tf.train.Checkpoint(model=reference.model).read(str(backup / CHECKPOINT_PREFIX)).expect_partial()
        weights.append(reference.model.get_weights())
    assert any(not np.allclose(a, b) for a, b in zip(*weights))  # the two epochs differ
    averaged = load_pretrained(tmp_path / "avg").model.get_weights()
    for got, first, second in zip(averaged, *weights):
        np.testing.assert_allclose(got, (first + second) / 2, atol=1e-6)
    from tfbert.errors import ConfigError

    with pytest.raises(ConfigError, match="--last 3"):
        _script("average_checkpoints").main([str(two_epoch_run), "--last", "3"])


def test_recipe_cost_times_a_short_run_and_scales_it_to_the_recipe(tiny_model_dir, spam_file, capsys):
    """`scripts/recipe_cost.py`: one short float32 run of the demo recipe on the tiny model; the
    estimate is the median seconds per update times the recipe's updates (its 2 epochs)."""
    import re

    cost = _script("recipe_cost")
    overrides = [f"model.name_or_path={tiny_model_dir}", f"data.train_file={spam_file}", "data.max_seq_length=32",
                 "training.per_device_train_batch_size=2"]
    result = cost.time_precision(str(ROOT / "configs" / "sms_spam_minilm.yaml"), "float32", 20, overrides)
    assert result["precision"] == "float32" and result["seconds_per_update"] > 0
    assert result["updates"] > 20 and result["updates"] % 2 == 0  # whole batches per epoch x 2 epochs
    assert result["estimated_minutes"] == pytest.approx(result["seconds_per_update"] * result["updates"] / 60)
    with pytest.raises(SystemExit) as stopped:
        cost.main([str(ROOT / "configs" / "sms_spam_minilm.yaml"), "--updates", "10"])
    assert stopped.value.code == 2 and "--updates must be at least 20" in capsys.readouterr().err
    assert re.fullmatch(r".+, \d+ cores?, bfloat16 units: .+", cost.cpu_description())
