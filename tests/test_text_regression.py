"""Text regression (``task.type: text_regression``, STS-B): the task added without a core module knowing it.

On the tiny seeded BERT: a score that is not a finite number stops with its file and row; the loss
is the mean squared error in training, evaluation and packed batches (packed gradients equal
unpacked ones); a short run goes end to end (evaluation with Pearson/Spearman/MSE, model directory,
SavedModel, ``tools/export.py``, ``tools/evaluate.py``, ``tools/predict.py``, the report's scatter figure), and a fresh
process without tfbert reads the model directory with transformers 4's TF class and
``pipeline("text-classification", function_to_apply="none")`` and gets the SavedModel's scores.
The STS-B preparation script keeps every sentence on one side of its split.
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

#: (sentence1, sentence2, score): graded similarity, pairs and singles of varied length
PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "A woman is cutting an onion into pieces.", 4.2),
    ("A dog runs in the park.", "A cat sleeps on the sofa.", 0.6),
    ("Two kids are playing football on the beach.", "Children play soccer on the sand.", 3.8),
    ("The stock market fell sharply today.", "A man is riding a horse.", 0.0),
    ("A plane is taking off.", "An air plane is taking off.", 5.0),
    ("The president met the prime minister in Berlin.", "The leaders held talks in Germany.", 3.2),
    ("Someone is frying eggs.", "A person is cooking.", 2.6),
    ("It is raining heavily in the north.", "Heavy rain fell across northern areas.", 4.4),
    ("A boy reads a book.", "A girl writes a letter.", 1.2),
    ("The cat climbs the tree.", "A cat is climbing a tree quickly.", 4.0),
    ("The team won the final match.", "The orchestra played a symphony.", 0.4),
]


def write_pairs(path: Path, rows=PAIRS, repeat: int = 2) -> Path:
    lines = ["sentence1\tsentence2\tscore"] + [f"{a}\t{b}\t{s}" for a, b, s in rows] * repeat
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def regression_config(model_dir: Path, train: Path, tmp: Path, *overrides: str):
    from tfbert.config import load_config

    return load_config(None, [
        f"model.name_or_path={model_dir}", "task.type=text_regression", f"data.train_file={train}",
        "data.text_column=sentence1", "data.text_pair_column=sentence2", "data.label_column=score",
        "data.max_seq_length=48", "training.metric_for_best_model=loss", f"training.output_dir={tmp / 'run'}",
        "training.verbose=0", "training.tensorboard=false", *overrides])


# ------------------------------------------------------------------------------------ config and data

@pytest.mark.parametrize("override, message", [
    ("task.num_labels=3", "config key 'task.num_labels': text_regression predicts one score"),
    ("data.labels=[low, high]", "config key 'data.labels': text_regression reads numeric scores"),
    ("training.metric_for_best_model=val_mse", "val_mse is val_loss"),
    ("training.metric_for_best_model=val_accuracy", "does not select by 'val_accuracy'"),
])
def test_class_keys_are_refused_at_load_time(override, message):
    from tfbert.config import load_config
    from tfbert.errors import ConfigError

    base = ["task.type=text_regression", "training.metric_for_best_model=val_spearman"]
    load_config(None, base)  # the valid base
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, base + [override])


@pytest.mark.parametrize("cell, why", [
    ("high", "'high' is not a number"), ("", "empty score"), ("nan", "is not a finite number"),
    ("-inf", "is not a finite number"),
])
def test_a_score_that_is_not_a_finite_number_names_the_file_and_row(tiny_model_dir, tmp_path, cell, why):
    from tfbert.errors import DataError
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    rows = [r for r in PAIRS[:4]]
    rows[2] = (rows[2][0], rows[2][1], cell)
    path = write_pairs(tmp_path / "scores.tsv", rows, repeat=1)
    config = regression_config(tiny_model_dir, path, tmp_path)
    with pytest.raises(DataError) as raised:
        get_task("text_regression").load_data(config, load_tokenizer(str(tiny_model_dir)), seed=0)
    message = str(raised.value)
    assert message.startswith(f"{path}, row 3: column 'score': ") and why in message, message
    assert "\n" not in message


def test_scores_load_as_float32_with_one_output_named_by_the_column(tiny_model_dir, tmp_path):
    from tfbert.errors import DataError
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    task = get_task("text_regression")
    tokenizer = load_tokenizer(str(tiny_model_dir))
    path = write_pairs(tmp_path / "scores.tsv")
    data = task.load_data(regression_config(tiny_model_dir, path, tmp_path, "data.validation_split=0.25"),
                          tokenizer, seed=0)
    assert data.label_names == ["score"]
    assert data.splits["train"].labels.dtype == np.float32 and len(data.splits["validation"]) == 6
    every = np.concatenate([data.splits[s].labels for s in ("train", "validation")])
    assert sorted(every.tolist()) == pytest.approx(sorted([s for *_, s in PAIRS] * 2))
    constant = write_pairs(tmp_path / "constant.tsv", [(a, b, 2.5) for a, b, _ in PAIRS])
    with pytest.raises(DataError, match="holds one score .2.5. for every row"):
        task.load_data(regression_config(tiny_model_dir, constant, tmp_path), tokenizer, seed=0)


# ------------------------------------------------------------------------------------ loss and metrics

def test_one_mean_squared_error_for_training_evaluation_and_packed_slots():
    import tf_keras

    from tfbert.data.encoding import IGNORE_INDEX
    from tfbert.modeling.losses import split_loss
    from tfbert.tasks import get_task
    from tfbert.tasks.text_regression.task import LabelledScores

    task = get_task("text_regression")
    gold = np.array([0.0, 1.5, 4.0, 5.0], np.float32)
    outputs = np.array([[0.5], [1.0], [3.0], [5.5]], np.float32)
    expected = float(np.mean((outputs[:, 0] - gold) ** 2))  # 0.4375
    assert float(task.loss()(gold, outputs)) == pytest.approx(expected)
    assert split_loss(task.loss(), gold, outputs) == pytest.approx(expected)
    # Packed: [packs, K] targets with empty slots, [packs, K, 1] outputs; the mean over filled slots.
    packed_gold = np.array([[0.0, 1.5, IGNORE_INDEX], [4.0, 5.0, IGNORE_INDEX]], np.float32)
    packed_out = np.array([[[0.5], [1.0], [99.0]], [[3.0], [5.5], [-7.0]]], np.float32)
    packed = LabelledScores(task.loss())
    assert float(packed(packed_gold, packed_out)) == pytest.approx(expected)
    restored = tf_keras.losses.deserialize(tf_keras.losses.serialize(packed))
    assert float(restored(packed_gold, packed_out)) == pytest.approx(expected)


def test_metrics_are_scipys_and_a_constant_model_is_flagged():
    from scipy import stats

    from tfbert.tasks import get_task
    from tfbert.tasks.text_regression.task import regression_metrics

    task = get_task("text_regression")
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 200)
    predicted = gold + rng.normal(0, 1.0, 200)
    report = regression_metrics(gold, predicted)
    assert report["pearson"] == pytest.approx(stats.pearsonr(predicted, gold)[0])
    assert report["spearman"] == pytest.approx(stats.spearmanr(predicted, gold)[0])
    assert report["mse"] == pytest.approx(np.mean((predicted - gold) ** 2))
    assert task.degenerate_reason(report) is None
    constant = regression_metrics(gold, np.full(200, 2.5) + rng.normal(0, 1e-4, 200))
    assert task.degenerate_reason(constant).startswith("predicts about one score (2.5000")
    flat = regression_metrics(gold, np.full(200, 2.5))
    assert flat["pearson"] == flat["spearman"] == 0.0  # scipy would say NaN
    assert "200 of 200" in task.degenerate_reason(flat)
    reversed_ = regression_metrics(gold, 5 - gold)
    assert "Spearman -1.0000" in task.degenerate_reason(reversed_)


# ------------------------------------------------------------------------------------ packing

SEQ, K = 64, 4


def _split(tokenizer, rows, labels):
    from tfbert.data.encoding import EncodedSplit

    encoded = tokenizer([a for a, *_ in rows], [b for _, b, *_ in rows], truncation=True, max_length=SEQ)
    features = {}
    for name in ("input_ids", "token_type_ids"):
        values = [np.asarray(r, np.int32) for r in encoded[name]]
        splits = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
        features[name] = (np.concatenate(values), splits)
    return EncodedSplit(features=features, labels=labels)


def _gradients(model, x, y) -> dict:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return {v.name: tf.convert_to_tensor(g).numpy() for v, g in zip(model.trainable_variables, grads) if g is not None}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_packed_scores_and_gradients_equal_unpacked(tiny_nodrop_model_dir, pooling):
    import tf_keras

    from tfbert.data.encoding import select_rows
    from tfbert.data.packing import plan_packing
    from tfbert.data.pipeline import make_dataset
    from tfbert.modeling.backbone import load_backbone
    from tfbert.modeling.classifier import build_sequence_classifier
    from tfbert.modeling.packed import build_packed_model
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    task = get_task("text_regression")
    split = _split(load_tokenizer(str(tiny_nodrop_model_dir)), PAIRS, np.array([s for *_, s in PAIRS], np.float32))
    model = build_sequence_classifier(load_backbone(str(tiny_nodrop_model_dir), "tfbert"), 1,
                                      ["input_ids", "token_type_ids", "attention_mask"], pooling=pooling, dropout=0.0)
    twin = build_packed_model(model, task, SEQ, K, pooling)
    model.compile(optimizer=tf_keras.optimizers.SGD(0.0), **task.compile_args())
    twin.compile(optimizer=tf_keras.optimizers.SGD(0.0), **task.packed_compile_args())
    examples = plan_packing(split.lengths, SEQ, K).epoch_assignment(split.lengths, 0, 0)[:3]
    x, y = next(iter(make_dataset(split, 3, "packed", SEQ, max_examples_per_pack=K)))
    valid = examples >= 0
    assert valid.sum() > 3 and y.dtype.name == "float32"  # several pairs per pack, scores not cut to ints
    np.testing.assert_array_equal(y.numpy()[valid], split.labels[examples[valid]])
    ux, uy = next(iter(make_dataset(select_rows(split, examples[valid]), int(valid.sum()), "dynamic", SEQ)))
    np.testing.assert_allclose(twin(x).numpy()[valid], model(ux).numpy(), atol=1e-5, rtol=0)
    packed, plain = _gradients(twin, x, y), _gradients(model, ux, uy)
    assert packed.keys() == plain.keys() and max(np.abs(g).max() for g in plain.values()) > 1e-3
    for name in plain:
        np.testing.assert_allclose(packed[name], plain[name], atol=1e-5, rtol=0, err_msg=name)


def test_float_scores_round_trip_through_tfrecords(tiny_model_dir, tmp_path):
    from tfbert.data.tfrecords import read_tfrecords, write_tfrecords
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    tokenizer = load_tokenizer(str(tiny_model_dir))
    split = _split(tokenizer, PAIRS, np.array([s for *_, s in PAIRS], np.float32))
    task = get_task("text_regression")
    write_tfrecords(str(tmp_path / "records"), {"train": split}, ["score"], task_type=task.type, max_seq_length=SEQ,
                    tokenizer=tokenizer, label_dtype=task.record_label_dtype)
    back = read_tfrecords(str(tmp_path / "records")).splits["train"]
    assert back.labels.dtype == np.float32
    np.testing.assert_array_equal(back.labels, split.labels)


# ------------------------------------------------------------------------------------ end to end

FRESH = r"""
import json, sys
import tensorflow_text  # the SavedModel's tokenizer ops
import tensorflow as tf
import transformers
from transformers import pipeline
transformers.logging.set_verbosity_error()
job = json.loads(sys.argv[1])
serve = tf.saved_model.load(job["saved_model"]).signatures["serving_default"]
ours = serve(text=tf.constant(job["texts"]), text_pair=tf.constant(job["pairs"]))["score"].numpy().tolist()
# transformers 4.55-4.57's TF classes read tf_model.h5 only with use_safetensors=False (huggingface/transformers#40028).
model = transformers.TFAutoModelForSequenceClassification.from_pretrained(job["model"], use_safetensors=False)
tok = transformers.AutoTokenizer.from_pretrained(job["model"])
logits = model(dict(tok(job["texts"], job["pairs"], padding=True, return_tensors="tf"))).logits.numpy()
# dtype=None: transformers 4.57 without torch otherwise fails inside pipeline.
pipe = pipeline("text-classification", model=job["model"], framework="tf", dtype=None,
                model_kwargs={"use_safetensors": False})
piped = pipe([{"text": t, "text_pair": p} for t, p in zip(job["texts"], job["pairs"])], function_to_apply="none")
print(json.dumps({"ours": ours, "auto": logits[:, 0].tolist(), "pipeline": [r["score"] for r in piped],
                  "labels": sorted({r["label"] for r in piped}), "problem_type": model.config.problem_type,
                  "num_labels": model.config.num_labels,
                  "tfbert_imported": any(m == "tfbert" or m.startswith("tfbert.") for m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory) -> dict:
    """A short run with a validation and a test file: everything it wrote, and its config."""
    from tfbert.run.trainer import train

    tmp = tmp_path_factory.mktemp("regression-run")
    train_file = write_pairs(tmp / "train.tsv", repeat=3)
    test_file = write_pairs(tmp / "test.tsv", PAIRS[::-1], repeat=1)
    config = regression_config(
        tiny_model_dir, train_file, tmp, f"data.validation_file={test_file}", f"data.test_file={test_file}",
        "model.pooling=pooler", "training.num_train_epochs=6", "training.per_device_train_batch_size=4",
        "training.metric_for_best_model=val_spearman", "optimizer.learning_rate=5e-3", "optimizer.warmup_ratio=0.1")
    summary = train(config, log=lambda *_: None)
    return {"dir": tmp / "run", "summary": summary, "config": config, "test_file": test_file}


def test_a_run_reports_correlations_and_writes_a_regression_model_directory(run):
    out = run["dir"]
    assert "warning" not in run["summary"]  # the compressed but ordered scores are no constant guess
    report = json.loads((out / "eval_results.json").read_text())
    assert set(report["metrics"]) == {"loss", "pearson", "spearman", "mse"}
    assert report["num_examples"] == len(PAIRS) and len(report["predictions"]) == len(report["gold"]) == len(PAIRS)
    assert report["loss"] == pytest.approx(report["mse"], rel=1e-4)  # one loss definition
    assert all(math.isfinite(report[k]) for k in ("pearson", "spearman", "mse"))
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("val_spearman" in row and "val_pearson" in row for row in history)
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    assert config["architectures"] == ["BertForSequenceClassification"]
    card = (out / "model" / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and 'function_to_apply="none"' in card and "Spearman" in card
    # The report draws the task's own figure from the final evaluation.
    assert (out / "figures" / "regression_scatter.png").stat().st_size > 5000
    assert "Predicted vs gold scores" in (out / "report.html").read_text()


def test_saved_model_scores_equal_the_model_and_tools_agree(run, capsys):
    import tensorflow as tf

    from tfbert.cli import common
    from tfbert.cli import evaluate as evaluate_cli
    from tfbert.cli import export as export_cli
    from tfbert.cli import predict as predict_cli
    from tfbert.modeling.saving import load_pretrained
    from tfbert.serving.base import load_saved_model

    out = run["dir"]
    loaded = load_pretrained(out / "model")
    texts, pairs = [a for a, *_ in PAIRS], [b for _, b, *_ in PAIRS]
    batch = loaded.tokenizer(texts, pairs, padding=True, return_tensors="np")
    expected = loaded.model({k: v.astype(np.int32) for k, v in batch.items()}, training=False).numpy()[:, 0]
    assert np.ptp(expected) > 1e-3  # a model that scores pairs differently: the comparison has teeth
    serve = load_saved_model(out / "saved_model").signatures["serving_default"]
    result = serve(text=tf.constant(texts), text_pair=tf.constant(pairs))
    assert set(result) == {"score", "logits"}
    np.testing.assert_allclose(result["score"].numpy(), expected, atol=1e-4)
    # tools/export.py writes the same graph from the model directory.
    assert common.run(export_cli.main, ["--model", str(out / "model"), "--output", str(out / "exported")]) == 0
    exported = load_saved_model(out / "exported").signatures["serving_default"]
    np.testing.assert_allclose(exported(text=tf.constant(texts), text_pair=tf.constant(pairs))["score"].numpy(),
                               expected, atol=1e-4)
    # tools/predict.py knows the task from the export and prints one score per pair.
    capsys.readouterr()
    assert common.run(predict_cli.main, ["--model", str(out / "saved_model"), texts[0], "--pair", pairs[0],
                                         "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["score"] == pytest.approx(float(expected[0]), abs=1e-4) and record["text_pair"] == pairs[0]
    # An export written before the task type was recorded is still recognised by its signature.
    assert predict_cli.serving_class(str(out), serve).__name__ == "RegressionServingModule"
    # tools/evaluate.py on the test file scores what the run's final evaluation scored.
    assert common.run(evaluate_cli.main, ["--model", str(out / "model"), "--file", str(run["test_file"]),
                                          "--output", str(out / "again.json")]) == 0
    again = json.loads((out / "again.json").read_text())
    final = json.loads((out / "eval_results.json").read_text())
    assert again["spearman"] == pytest.approx(final["spearman"], abs=1e-6)
    assert again["mse"] == pytest.approx(final["mse"], rel=1e-4)


def test_transformers_reads_the_directory_with_the_saved_models_scores(run):
    out = run["dir"]
    texts, pairs = [a for a, *_ in PAIRS], [b for _, b, *_ in PAIRS]
    job = {"model": str(out / "model"), "saved_model": str(out / "saved_model"), "texts": texts, "pairs": pairs}
    result = subprocess.run([sys.executable, "-c", FRESH, json.dumps(job)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert not answer["tfbert_imported"]
    assert (answer["problem_type"], answer["num_labels"], answer["labels"]) == ("regression", 1, ["score"])
    np.testing.assert_allclose(answer["auto"], answer["ours"], atol=1e-4)
    np.testing.assert_allclose(answer["pipeline"], answer["ours"], atol=1e-4)
    assert np.ptp(answer["ours"]) > 1e-3


# ------------------------------------------------------------------------------------ STS-B split

def _prepare_module():
    spec = importlib.util.spec_from_file_location("prepare_stsb", ROOT / "scripts" / "prepare_stsb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stsb_split_keeps_every_sentence_on_one_side(tmp_path):
    prepare = _prepare_module()
    header = "\t".join(prepare.COLUMNS)
    # A chain of pairs sharing sentences (one group of 5 pairs), and 40 pairs of their own.
    chain = [(f"Chain sentence {i}.", f"chain  SENTENCE {i + 1}.") for i in range(5)]
    singles = [(f"Alone {i} a.", f"Alone {i} b.") for i in range(40)]
    lines = [header] + [f"{i}\tg\tf\ty\t{i}\tnone\tnone\t{a}\t{b}\t{i % 6}.000"
                        for i, (a, b) in enumerate(chain + singles)]
    source = tmp_path / "train.tsv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert prepare.main(["--input", str(source), "--output", str(tmp_path / "out"), "--test", "0.2", "--dev", "0.1"]) == 0
    parts = {name: (tmp_path / "out" / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
             for name in ("train", "dev", "test")}
    assert all(part[0] == header for part in parts.values())
    rows = {name: part[1:] for name, part in parts.items()}
    assert sorted(sum(rows.values(), [])) == sorted(lines[1:])  # every row once, unchanged
    assert len(rows["test"]) >= 9 and len(rows["dev"]) >= 4  # whole groups until 20% and 10% (rounded) are reached
    keys = {name: {prepare.sentence_key(s) for row in part for s in row.split("\t")[7:9]} for name, part in rows.items()}
    assert not (keys["train"] & keys["dev"]) and not (keys["train"] & keys["test"]) and not (keys["dev"] & keys["test"])
    chained = [name for name, part in rows.items() if any("Chain" in row for row in part)]
    assert len(chained) == 1  # the group of pairs sharing sentences stayed together
    both = (tmp_path / "out" / "train_both_orders.tsv").read_text(encoding="utf-8").splitlines()
    assert both[0] == header and both[1::2] == rows["train"]
    assert [row.split("\t")[7:9] for row in both[2::2]] == [row.split("\t")[8:6:-1] for row in rows["train"]]
    names = [*parts, "train_both_orders"]
    first = {name: (tmp_path / "out" / f"{name}.tsv").read_bytes() for name in names}
    assert prepare.main(["--input", str(source), "--output", str(tmp_path / "out"), "--test", "0.2", "--dev", "0.1"]) == 0
    assert first == {name: (tmp_path / "out" / f"{name}.tsv").read_bytes() for name in names}  # deterministic
