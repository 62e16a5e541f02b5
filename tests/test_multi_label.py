"""Multi-label classification, the fourth task: data, one loss for training and evaluation,
metrics, the thresholds tuned on validation (globally or per label) stored with the model and used
by evaluation, the SavedModel, the model card and the command-line tools."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SHARED_DATA

ROWS = [
    ("What a wonderful, happy day, I love it", ["joy", "love"]),
    ("I am so angry and annoyed right now", ["anger"]),
    ("This is lovely and it makes me happy", ["joy", "love"]),
    ("Terrible, furious, I hate waiting", ["anger"]),
    ("The meeting is at ten tomorrow", []),
    ("Happy birthday, love you lots", ["joy", "love"]),
]


def write_rows(path: Path, repeat: int = 4, json_lists: bool = False) -> Path:
    lines = ["text\tlabels"]
    for _ in range(repeat):
        for text, labels in ROWS:
            lines.append(f"{text}\t{json.dumps(labels) if json_lists else ','.join(labels)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_for(tiny_model_dir, path, tmp_path, *overrides):
    from tfbert.config import load_config

    return load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=multi_label_classification", f"data.train_file={path}",
        "data.format=tsv", "data.label_column=labels", "data.validation_split=0.25", "data.max_seq_length=24",
        "training.per_device_train_batch_size=4", "training.per_device_eval_batch_size=8",
        "training.num_train_epochs=1", "training.tensorboard=false", "training.verbose=0",
        "training.metric_for_best_model=val_micro_f1", f"training.output_dir={tmp_path / 'run'}", *overrides])


def test_labels_parse_from_delimited_and_json_columns(tiny_model_dir, tmp_path):
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    tokenizer = load_tokenizer(str(tiny_model_dir))
    task = get_task("multi_label_classification")
    delimited = task.load_data(config_for(tiny_model_dir, write_rows(tmp_path / "a.tsv"), tmp_path), tokenizer, 0)
    listed = task.load_data(config_for(tiny_model_dir, write_rows(tmp_path / "b.tsv", json_lists=True), tmp_path),
                            tokenizer, 0)
    assert delimited.label_names == listed.label_names == ["anger", "joy", "love"]
    for data in (delimited, listed):
        labels = np.concatenate([data.splits[s].labels for s in ("train", "validation")])
        assert labels.shape == (24, 3)
        assert labels.sum(axis=0).tolist() == [8, 12, 12]  # 4 repeats x (2 anger, 3 joy, 3 love)
        assert (labels.sum(axis=1) == 0).sum() == 4  # the neutral sentence has no label


def test_ids_into_data_labels_and_bad_labels(tiny_model_dir, tmp_path):
    from tfbert.errors import ConfigError, DataError
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    path = tmp_path / "ids.tsv"
    path.write_text("text\tlabels\nhappy love\t1,2\nangry\t0\nnothing\t\n", encoding="utf-8")
    tokenizer = load_tokenizer(str(tiny_model_dir))
    task = get_task("multi_label_classification")
    config = config_for(tiny_model_dir, path, tmp_path, "data.labels_are_ids=true", "data.labels=[anger, joy, love]",
                        "data.validation_split=0.0")
    data = task.load_data(config, tokenizer, 0)
    assert data.splits["train"].labels.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    path.write_text("text\tlabels\nhappy\t3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 1: label '3' in column 'labels' is not ids 0-2"):
        task.load_data(config, tokenizer, 0)
    with pytest.raises(ConfigError, match="data.labels_are_ids"):
        config_for(tiny_model_dir, path, tmp_path, "data.labels_are_ids=true")
    with pytest.raises(ConfigError, match="task.threshold"):
        config_for(tiny_model_dir, path, tmp_path, "task.threshold=1.5")


def test_metrics_and_threshold_tuning():
    from tfbert.tasks.multi_label_classification.task import multi_label_metrics, tune_threshold

    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], np.float32)
    predicted = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]], np.float32)
    report = multi_label_metrics(gold, predicted, ["a", "b", "c"])
    # tp 3, fp 1, fn 2: micro P 3/4, R 3/5
    assert report["micro_precision"] == pytest.approx(0.75)
    assert report["micro_recall"] == pytest.approx(0.6)
    assert report["micro_f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert report["per_class"]["c"]["f1"] == 0.0
    assert report["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert report["subset_accuracy"] == pytest.approx(0.5)
    from tfbert.tasks import get_task

    task = get_task("multi_label_classification")
    assert task.degenerate_reason(report) is None  # 0.667 beats always "a" (2 * 2 / (4 + 5) = 0.444)
    constant = multi_label_metrics(gold, np.tile([1, 0, 0], (4, 1)).astype(np.float32), ["a", "b", "c"])
    assert "no better than always predicting a" in task.degenerate_reason(constant)
    probabilities = np.array([[0.9, 0.1, 0.35], [0.2, 0.8, 0.1], [0.7, 0.4, 0.05], [0.1, 0.2, 0.3]])
    # 0.35 and 0.4 are gold, 0.3 is not: only thresholds in (0.3, 0.35] get every label right
    assert tune_threshold(gold, probabilities) == pytest.approx(0.35)


def test_per_label_thresholds_need_the_support_floor():
    from tfbert.tasks.multi_label_classification.task import tune_label_thresholds, tune_threshold

    # label 0 (6 positives): gold at 0.6 and above, negatives up to 0.55 -> its own best is 0.6;
    # label 1 (6 positives): gold from 0.2, a negative at 0.15 -> 0.2;
    # label 2 (2 positives): its best alone would be 0.9, but two examples are under the floor.
    rows = [([1, 0, 0], [0.9, 0.15, 0.1]), ([1, 0, 0], [0.8, 0.05, 0.1]), ([1, 0, 0], [0.7, 0.1, 0.1]),
            ([1, 0, 0], [0.6, 0.1, 0.1]), ([1, 0, 0], [0.65, 0.1, 0.1]), ([1, 0, 0], [0.75, 0.1, 0.1]),
            ([0, 1, 0], [0.55, 0.2, 0.1]), ([0, 1, 0], [0.5, 0.25, 0.1]), ([0, 1, 0], [0.1, 0.3, 0.1]),
            ([0, 1, 0], [0.1, 0.22, 0.1]), ([0, 1, 0], [0.1, 0.4, 0.1]), ([0, 1, 0], [0.1, 0.35, 0.1]),
            ([0, 0, 1], [0.1, 0.1, 0.95]), ([0, 0, 1], [0.1, 0.1, 0.92]), ([0, 0, 0], [0.1, 0.1, 0.85]),
            ([0, 0, 0], [0.1, 0.1, 0.6])]
    gold = np.array([g for g, _ in rows], np.float32)
    probabilities = np.array([p for _, p in rows])
    global_threshold = tune_threshold(gold, probabilities)
    thresholds = tune_label_thresholds(gold, probabilities, global_threshold, min_support=5)
    assert thresholds[0] == pytest.approx(0.6) and thresholds[1] == pytest.approx(0.2)
    assert thresholds[2] == pytest.approx(global_threshold) and global_threshold == pytest.approx(0.2)
    # without the floor the two rare examples pick a threshold of their own
    assert tune_label_thresholds(gold, probabilities, global_threshold, min_support=1)[2] == pytest.approx(0.9)


def test_threshold_keys_are_checked(tiny_model_dir, tmp_path):
    from tfbert.errors import ConfigError

    path = write_rows(tmp_path / "a.tsv", repeat=1)
    with pytest.raises(ConfigError, match="task.threshold_rule"):
        config_for(tiny_model_dir, path, tmp_path, "task.threshold=0.3", "task.threshold_rule=per_label")
    with pytest.raises(ConfigError, match="task.threshold_rule"):
        config_for(tiny_model_dir, path, tmp_path, "task.threshold_rule=median")
    with pytest.raises(ConfigError, match="task.threshold_min_support"):
        config_for(tiny_model_dir, path, tmp_path, "task.threshold_min_support=0")
    with pytest.raises(ConfigError, match="task.tuned_thresholds"):
        config_for(tiny_model_dir, path, tmp_path, "task.tuned_thresholds=[0.3, 1.0, 0.2]")
    with pytest.raises(ConfigError, match=r"task.tuned_thresholds': 2 values for the 3 labels"):
        config_for(tiny_model_dir, path, tmp_path, "data.labels=[anger, joy, love]", "task.tuned_thresholds=[0.3, 0.2]")
    config = config_for(tiny_model_dir, path, tmp_path, "task.threshold_rule=per_label",
                        "task.tuned_thresholds=[0.3, 0.4, 0.2]", "task.tuned_threshold=0.25")
    assert config.task.decision_thresholds(3) == [0.3, 0.4, 0.2]
    config.task.threshold_rule = "global"  # the stored per-label values are not used under the global rule
    assert config.task.decision_thresholds(3) == [0.25] * 3
    with pytest.raises(ConfigError, match="task.tuned_thresholds': 3 values for 4 labels"):
        config_for(tiny_model_dir, path, tmp_path, "task.threshold_rule=per_label",
                   "task.tuned_thresholds=[0.3, 0.4, 0.2]").task.decision_thresholds(4)


def test_training_and_evaluation_use_one_loss(tiny_model_dir, tmp_path):
    from tfbert.run.experiment import build_experiment

    config = config_for(tiny_model_dir, write_rows(tmp_path / "a.tsv"), tmp_path, "task.threshold=0.5")
    experiment = build_experiment(config)
    split = experiment.data.splits["validation"]
    report = experiment.evaluate_split("validation")
    keras_loss = experiment.model.evaluate(experiment.datasets["validation"], verbose=0, return_dict=True)["loss"]
    assert report["loss"] == pytest.approx(keras_loss, rel=1e-4)
    logits = experiment.model.predict(experiment.datasets["validation"], verbose=0)
    assert logits.shape[1] == 3 and len(split) == 6
    assert set(report["metrics"]) == {"loss", "micro_f1", "macro_f1", "subset_accuracy"}


def test_label_prior_initial_bias(tiny_model_dir, tmp_path):
    from tfbert.run.experiment import build_experiment

    path = write_rows(tmp_path / "a.tsv")
    experiment = build_experiment(config_for(tiny_model_dir, path, tmp_path, "task.initial_bias=label_prior"))
    labels = experiment.data.splits["train"].labels
    p = (labels.sum(axis=0) + 0.5) / (len(labels) + 1)
    bias = experiment.model.get_layer("classifier").bias.numpy()
    np.testing.assert_allclose(bias, np.log(p / (1 - p)), rtol=1e-5)
    assert not build_experiment(config_for(tiny_model_dir, path, tmp_path)).model.get_layer("classifier").bias.numpy().any()


def test_train_stores_the_tuned_threshold_and_serves_it(tiny_model_dir, tmp_path, capsys):
    import yaml

    from tfbert.cli import predict
    from tfbert.modeling.saving import load_pretrained
    from tfbert.serving.base import load_saved_model, saved_model_task
    from tfbert.run.trainer import train

    config = config_for(tiny_model_dir, write_rows(tmp_path / "a.tsv"), tmp_path, "optimizer.learning_rate=1e-3")
    train(config, log=lambda *_: None)
    run = tmp_path / "run"
    results = json.loads((run / "eval_results.json").read_text())
    threshold = results["threshold"]
    saved = yaml.safe_load((run / "model" / "tfbert_config.yaml").read_text())
    assert saved["task"]["tuned_threshold"] == threshold and saved["task"]["threshold"] is None
    assert saved["task"]["tuned_thresholds"] is None  # the default rule tunes one global threshold
    hf_config = json.loads((run / "model" / "config.json").read_text())
    assert hf_config["problem_type"] == "multi_label_classification"
    assert f"Threshold for every label: {threshold:.2f}" in (run / "model" / "README.md").read_text()

    assert saved_model_task(run / "saved_model") == "multi_label_classification"
    serve = load_saved_model(run / "saved_model").signatures["serving_default"]
    texts = [t for t, _ in ROWS]
    out = {k: v.numpy() for k, v in serve(text=np.array(texts)).items()}
    loaded = load_pretrained(run / "model")
    encoded = loaded.tokenizer(texts, padding=True, return_tensors="np")
    logits = loaded.model({k: encoded[k].astype(np.int32) for k in loaded.model.input_names}, training=False).numpy()
    probabilities = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(out["probabilities"], probabilities, atol=1e-5)
    np.testing.assert_array_equal(out["label_mask"], (probabilities >= threshold).astype(np.int32))
    for i in range(len(texts)):
        want = [n for n, m in zip(loaded.label_names, out["label_mask"][i]) if m]
        assert [v.decode() for v in out["labels"][i][: out["num_predicted"][i]]] == want
    np.testing.assert_allclose(out["threshold"], np.full((len(texts), 3), threshold), atol=1e-7)

    assert predict.main(["--saved-model", str(run / "saved_model"), "--json", texts[0]]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["text"] == texts[0] and len(record["probabilities"]) == 3


def _probabilities(model_dir: Path, texts: list[str]) -> np.ndarray:
    from tfbert.modeling.saving import load_pretrained

    loaded = load_pretrained(model_dir)
    encoded = loaded.tokenizer(texts, padding=True, return_tensors="np")
    logits = loaded.model({k: encoded[k].astype(np.int32) for k in loaded.model.input_names}, training=False).numpy()
    return 1 / (1 + np.exp(-logits))


def test_per_label_thresholds_are_stored_reloaded_and_served(tiny_model_dir, tmp_path):
    """Per-label thresholds travel with the model: the model directory's config and card, a later
    evaluation from that directory, and a SavedModel exported from it all use the stored values."""
    import yaml

    from tfbert.cli import evaluate, export
    from tfbert.serving.base import load_saved_model
    from tfbert.run.trainer import train

    data = write_rows(tmp_path / "a.tsv")
    config = config_for(tiny_model_dir, data, tmp_path, "optimizer.learning_rate=1e-3",
                        "task.threshold_rule=per_label", "task.threshold_min_support=1")
    train(config, log=lambda *_: None)
    run, texts = tmp_path / "run", [t for t, _ in ROWS]
    results = json.loads((run / "eval_results.json").read_text())
    saved = yaml.safe_load((run / "model" / "tfbert_config.yaml").read_text())["task"]
    assert saved["threshold_rule"] == "per_label" and len(saved["tuned_thresholds"]) == 3
    assert [results["per_class"][n]["threshold"] for n in ("anger", "joy", "love")] == \
        pytest.approx(saved["tuned_thresholds"])
    card = (run / "model" / "README.md").read_text()
    assert "| label | threshold |" in card or "Threshold for every label" in card

    # Thresholds that split these texts differently from any single threshold: each label's
    # threshold sits between two of its probabilities, and the global one lets every label through.
    probabilities = _probabilities(run / "model", texts)
    ordered = np.sort(probabilities, axis=0)
    chosen = [float((ordered[j + 1, j] + ordered[j + 2, j]) / 2) for j in range(3)]  # j + 2 texts below
    want = (probabilities >= np.array(chosen)).astype(np.int32)
    assert want.sum(axis=0).tolist() == [4, 3, 2]  # each label has its own count of texts over its threshold
    config_file = run / "model" / "tfbert_config.yaml"
    stored = yaml.safe_load(config_file.read_text())
    stored["task"].update(tuned_thresholds=chosen, tuned_threshold=0.0005)
    config_file.write_text(yaml.safe_dump(stored))

    # A later evaluation from the model directory (no validation split: nothing is re-tuned).
    assert evaluate.main(["--model", str(run / "model"), "--file", str(data), "--output", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert [report["per_class"][n]["threshold"] for n in ("anger", "joy", "love")] == pytest.approx(chosen)
    gold = np.array([[n in labels for n in ("anger", "joy", "love")] for _, labels in ROWS] * 4, np.float32)
    from tfbert.tasks.multi_label_classification.task import multi_label_metrics

    expected = multi_label_metrics(gold, np.tile(want, (4, 1)).astype(np.float32), ["anger", "joy", "love"])
    assert report["micro_f1"] == pytest.approx(expected["micro_f1"], abs=1e-6)
    assert report["macro_f1"] == pytest.approx(expected["macro_f1"], abs=1e-6)

    # A SavedModel exported from the directory serves the stored thresholds.
    assert export.main(["--model", str(run / "model"), "--output", str(tmp_path / "sm")]) == 0
    out = {k: v.numpy() for k, v in
           load_saved_model(tmp_path / "sm").signatures["serving_default"](text=np.array(texts)).items()}
    np.testing.assert_array_equal(out["label_mask"], want)
    np.testing.assert_allclose(out["threshold"][0], chosen, atol=1e-6)


def test_goemotions_recipe_loads_its_labels():
    from tfbert.config import load_config

    config = load_config(ROOT / "configs" / "goemotions_minilm.yaml")
    assert config.task.type == "multi_label_classification" and config.data.labels_are_ids
    # GoEmotions' 27 emotions and neutral, in the order of the dataset's ids (neutral is id 27).
    assert len(config.data.labels) == len(set(config.data.labels)) == 28
    assert config.data.labels[0] == "admiration" and config.data.labels[27] == "neutral"


@pytest.mark.skipif(not (SHARED_DATA / "goemotions").is_dir(), reason="../shared/data/goemotions is absent")
def test_goemotions_recipe_labels_match_the_datasets_ids():
    from tfbert.config import load_config

    config = load_config(ROOT / "configs" / "goemotions_minilm.yaml")
    assert config.data.labels == (SHARED_DATA / "goemotions" / "labels.txt").read_text().split()


def test_several_train_files_are_concatenated_and_errors_name_the_file(tiny_model_dir, tmp_path):
    from tfbert.errors import DataError
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    first, second = write_rows(tmp_path / "a.tsv", repeat=1), tmp_path / "b.tsv"
    second.write_text("text\tlabels\nso angry\tanger\nnothing here\t\n", encoding="utf-8")
    tokenizer, task = load_tokenizer(str(tiny_model_dir)), get_task("multi_label_classification")
    config = config_for(tiny_model_dir, f"[{first}, {second}]", tmp_path, "data.validation_split=0.0")
    data = task.load_data(config, tokenizer, 0)
    assert data.extras["train"][0] == [text for text, _ in ROWS] + ["so angry", "nothing here"]
    assert data.splits["train"].labels[-2:].tolist() == [[1, 0, 0], [0, 0, 0]]
    second.write_text("text\tlabels\nso angry\t[\"anger\"\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"b.tsv, row 1: column 'labels'"):
        task.load_data(config, tokenizer, 0)
