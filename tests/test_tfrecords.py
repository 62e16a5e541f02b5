"""Sharded, already-tokenized TFRecords: written by tools/make_tfrecords.py, read back exactly, trained on."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfbert.cli import common
from tfbert.cli import make_tfrecords as make_cli
from tfbert.data.encoding import EncodedSplit, RaggedLabels
from tfbert.data.tfrecords import read_metadata, read_tfrecords, write_tfrecords
from tfbert.errors import ConfigError, DataError


def assert_same_split(a: EncodedSplit, b: EncodedSplit) -> None:
    assert set(a.features) == set(b.features)
    for name in a.features:
        np.testing.assert_array_equal(a.features[name][0], b.features[name][0])
        np.testing.assert_array_equal(a.features[name][1], b.features[name][1])
    if isinstance(a.labels, RaggedLabels):
        np.testing.assert_array_equal(a.labels.values, b.labels.values)
        np.testing.assert_array_equal(a.labels.row_splits, b.labels.row_splits)
    elif isinstance(a.labels, dict):
        assert set(a.labels) == set(b.labels)
        for key in a.labels:
            np.testing.assert_array_equal(a.labels[key], b.labels[key])
            assert a.labels[key].dtype.kind == b.labels[key].dtype.kind
    else:
        np.testing.assert_array_equal(a.labels, b.labels)


def test_make_tfrecords_round_trips_the_tokenized_splits(tiny_config, tmp_path, capsys):
    config = tiny_config("data.validation_split=0.25")
    out = tmp_path / "records"
    args = ["--set", f"model.name_or_path={config.model.name_or_path}", "--set", f"data.train_file={config.data.train_file}",
            "--set", "data.has_header=false", "--set", "data.column_names=[label, text]",
            "--set", "data.validation_split=0.25", "--set", "data.max_seq_length=32",
            "--output", str(out), "--splits", "train,validation", "--shards", "3"]
    assert common.run(make_cli.main, args) == 0
    assert "set data.tfrecords=" in capsys.readouterr().out
    metadata = json.loads((out / "metadata.json").read_text())
    assert [f["file"] for f in metadata["splits"]["train"]["files"]] == [
        f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert metadata["label_names"] == ["ham", "spam"] and metadata["max_seq_length"] == 32

    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    expected = get_task("sequence_classification").load_data(config, load_tokenizer(config.model.name_or_path), seed=42)
    records = read_tfrecords(str(out))
    assert set(records.splits) == {"train", "validation"}
    for split in ("train", "validation"):
        assert_same_split(expected.splits[split], records.splits[split])


class _Vocab:
    pad_token_id = 0

    def get_vocab(self):
        return {"[PAD]": 0, "a": 1, "b": 2}


@pytest.fixture
def ram_dir():
    """A fresh directory on TensorFlow's in-memory file system, removed afterwards.

    ``ram://`` is one file system per process: a fixed path would hand a later test (or a rerun in
    the same worker) the files an earlier one left there.
    """
    import uuid

    import tensorflow as tf

    directory = f"ram://tfbert-records-{uuid.uuid4().hex}"
    yield directory
    if tf.io.gfile.exists(directory):
        tf.io.gfile.rmtree(directory)


def test_token_and_field_labels_round_trip_through_a_url_path(ram_dir):
    """Per-token and per-field labels, written to an in-memory file system (as a gs:// path would be)."""
    features = {"input_ids": (np.array([1, 2, 3, 4, 5, 6], np.int32), np.array([0, 2, 6], np.int64))}
    token = EncodedSplit(features=features, labels=RaggedLabels(np.array([0, -100, 1, 1, 0, -100]), np.array([0, 2, 6])))
    fields = EncodedSplit(features=features, labels={"start_positions": np.array([1, 0], np.int64),
                                                     "weight": np.array([0.5, 1.0], np.float32)})
    for name, split in (("token", token), ("fields", fields)):
        directory = f"{ram_dir}/{name}"
        write_tfrecords(directory, {"train": split}, ["O", "B-X"], task_type="x", max_seq_length=8, tokenizer=_Vocab(),
                        num_shards=2)
        assert_same_split(split, read_tfrecords(directory).splits["train"])


def test_value_labels_round_trip_as_float_lists(ram_dir):
    """A task whose labels are values (a multi-label row of 0/1) writes float lists; int64 would truncate them."""
    features = {"input_ids": (np.array([1, 2, 3, 4, 5], np.int32), np.array([0, 2, 5], np.int64))}
    rows = EncodedSplit(features=features, labels=np.array([[1, 0, 1], [0, 0.5, 0]], np.float32))
    write_tfrecords(f"{ram_dir}/values", {"train": rows}, ["a", "b", "c"], task_type="x", max_seq_length=8,
                    tokenizer=_Vocab(), label_dtype="float32")
    back = read_tfrecords(f"{ram_dir}/values").splits["train"]
    assert back.labels.dtype == np.float32
    assert_same_split(rows, back)
    with pytest.raises(DataError, match="train labels are float32 values; this task writes int64 class ids"):
        write_tfrecords(f"{ram_dir}/truncated", {"train": rows}, ["a", "b", "c"], task_type="x",
                        max_seq_length=8, tokenizer=_Vocab())


def test_make_tfrecords_writes_a_multi_label_task_as_its_task_says(tiny_model_dir, tmp_path):
    from tests.test_multi_label import write_rows
    from tfbert.config import load_config
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    sets = [f"model.name_or_path={tiny_model_dir}", "task.type=multi_label_classification",
            f"data.train_file={write_rows(tmp_path / 'a.tsv')}", "data.format=tsv", "data.label_column=labels",
            "data.validation_split=0.25", "data.max_seq_length=24", "training.metric_for_best_model=val_micro_f1"]
    out = tmp_path / "records"
    args = [item for pair in (("--set", s) for s in sets) for item in pair]
    assert common.run(make_cli.main, [*args, "--output", str(out), "--splits", "train,validation"]) == 0
    assert read_metadata(str(out))["splits"]["train"]["label_dtype"] == "float32"
    config = load_config(None, sets)
    expected = get_task(config.task.type).load_data(config, load_tokenizer(str(tiny_model_dir)), seed=42)
    records = read_tfrecords(str(out))
    for split in ("train", "validation"):
        assert_same_split(expected.splits[split], records.splits[split])


def test_training_from_tfrecords_gives_the_same_run_as_from_the_file(tiny_config, tmp_path):
    from tfbert.run.experiment import build_experiment

    common_overrides = ("data.padding=max_length", "optimizer.learning_rate=1e-3")
    from_file = tiny_config(*common_overrides, f"training.output_dir={tmp_path / 'a'}")
    out = tmp_path / "records"
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    tokenizer = load_tokenizer(from_file.model.name_or_path)
    data = get_task("sequence_classification").load_data(from_file, tokenizer, seed=42)
    write_tfrecords(str(out), dict(data.splits), data.label_names, task_type="sequence_classification",
                    max_seq_length=32, tokenizer=tokenizer, num_shards=2)
    from_records = tiny_config(*common_overrides, f"training.output_dir={tmp_path / 'b'}", "data.train_file=null",
                               "data.validation_split=0", f"data.tfrecords={out}")
    losses = []
    for config in (from_file, from_records):
        experiment = build_experiment(config)
        assert experiment.plan.num_examples == 36 and set(experiment.data.splits) == {"train", "validation"}
        spec = experiment.train_dataset.element_spec[0]["input_ids"]
        assert spec.shape.as_list() == [4, 32]  # static shapes, as TPU/IPU need
        losses.append(experiment.model.fit(experiment.train_dataset, epochs=1, verbose=0).history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_records_are_checked_against_the_run(tiny_config, tmp_path):
    from tfbert.run.experiment import build_experiment

    with pytest.raises(DataError, match="no metadata.json"):
        read_metadata(str(tmp_path))
    config = tiny_config()
    out = tmp_path / "records"
    assert common.run(make_cli.main, [
        "--set", f"model.name_or_path={config.model.name_or_path}", "--set", f"data.train_file={config.data.train_file}",
        "--set", "data.has_header=false", "--set", "data.column_names=[label, text]",
        "--set", "data.max_seq_length=32", "--output", str(out)]) == 0
    with pytest.raises(ConfigError, match="already holds files"):
        write_tfrecords(str(out), {}, [], task_type="x", max_seq_length=8, tokenizer=_Vocab())
    with pytest.raises(ConfigError, match="tokenized with max_seq_length 32"):
        build_experiment(tiny_config("data.train_file=null", "data.validation_split=0", f"data.tfrecords={out}",
                                     "data.max_seq_length=16"))
    with pytest.raises(ConfigError, match="data.train_file or data.tfrecords, not both"):
        build_experiment(tiny_config(f"data.tfrecords={out}"))
