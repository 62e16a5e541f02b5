"""Data: readers, labels, splits, tokenization and tf.data batching."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfbert.config import DataConfig
from tfbert.data.classification import load_classification_data
from tfbert.data.encoding import EncodedSplit, select_rows
from tfbert.data.pipeline import bucket_sizes, default_bucket_boundaries, make_dataset
from tfbert.training.batch_plan import BatchPlan
from tfbert.data.readers import read_table
from tfbert.errors import DataError


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def spam_config(path, **kw) -> DataConfig:
    return DataConfig(train_file=str(path), has_header=False, column_names=["label", "text"], **kw)


def test_headerless_tsv_keeps_quotes_and_na(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text('ham\tHe said "hi\nspam\tNA\nham\tnull\n', encoding="utf-8")
    ds = read_table(path, spam_config(path))
    assert ds["text"] == ['He said "hi', "NA", "null"]


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_csv_json_jsonl(tmp_path, fmt, tokenizer):
    rows = [{"sentence": f"text number {i}", "label": i % 3} for i in range(9)]
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        path.write_text("sentence,label\n" + "".join(f'"{r["sentence"]}",{r["label"]}\n' for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_classification_data(DataConfig(train_file=str(path), text_column="sentence"), tokenizer, seed=0)
    assert data.label_names == ["0", "1", "2"]
    assert list(data.splits["train"].labels) == [r["label"] for r in rows]


def test_text_pairs(tmp_path, tokenizer):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"a": f"first {i}", "b": f"second {i}", "label": "yes" if i % 2 else "no"}) + "\n"
                            for i in range(6)))
    config = DataConfig(train_file=str(path), text_column="a", text_pair_column="b", max_seq_length=16)
    data = load_classification_data(config, tokenizer, seed=0)
    split = data.splits["train"]
    values, splits = split.features["token_type_ids"]
    first = values[splits[0]:splits[1]]
    assert 0 in first and 1 in first  # both segments present


def test_stratified_split_is_seeded_and_keeps_shares(spam_file, tokenizer):
    config = spam_config(spam_file, test_split=0.25, validation_split=0.25)
    a = load_classification_data(config, tokenizer, seed=1)
    b = load_classification_data(config, tokenizer, seed=1)
    assert a.extras["test"] == b.extras["test"]
    sizes = {k: len(v) for k, v in a.splits.items()}
    assert sizes == {"train": 24, "test": 12, "validation": 12}
    for split in a.splits.values():
        assert split.labels.mean() == pytest.approx(0.5)  # 50/50 kept in every split
    c = load_classification_data(config, tokenizer, seed=2)
    assert c.extras["test"] != a.extras["test"]


@pytest.mark.parametrize("content,pattern", [
    (b"ham\tfine\nspam\t\xff\xfebad\n", r"line 2: not valid UTF-8 \(byte 0xff"),
    (b"ham\tfine\nspam\t   \n", r"row 2: empty text in column 'text'"),
])
def test_bad_rows_are_named(tmp_path, tokenizer, content, pattern):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as info:
        load_classification_data(spam_config(path), tokenizer, seed=0)
    assert str(path) in str(info.value)


def test_missing_file_and_column(tmp_path, spam_file, tokenizer):
    with pytest.raises(DataError, match="nope.tsv: data file not found"):
        load_classification_data(spam_config(tmp_path / "nope.tsv"), tokenizer, seed=0)
    with pytest.raises(DataError, match=r"no column 'sentence'; the file has columns \['label', 'text'\]"):
        load_classification_data(spam_config(spam_file, text_column="sentence"), tokenizer, seed=0)


def test_unknown_label_in_eval_data(tmp_path, spam_file, tokenizer):
    test = tmp_path / "test.tsv"
    test.write_text("ham\thello\nspma\tWIN now\n")
    config = spam_config(spam_file, test_file=str(test))
    with pytest.raises(DataError, match=r"test.tsv, row 2: unknown label 'spma'.*\['ham', 'spam'\]"):
        load_classification_data(config, tokenizer, seed=0)


def test_tokenization_truncates_without_padding(spam_file, tokenizer):
    config = spam_config(spam_file, max_seq_length=8)
    split = load_classification_data(config, tokenizer, seed=0).splits["train"]
    assert split.lengths.max() == 8
    values, row_splits = split.features["input_ids"]
    assert values[row_splits[1] - 1] == tokenizer.sep_token_id  # [SEP] kept after truncation


def _ragged_split(lengths: list[int]) -> EncodedSplit:
    values = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return EncodedSplit(features={"input_ids": (values, splits)}, labels=np.arange(len(lengths), dtype=np.int32))


def test_bucketing_pads_to_few_shapes_and_keeps_every_example():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(3, 128, size=300))
    split = _ragged_split(lengths)
    dataset = make_dataset(split, batch_size=16, padding="bucket", max_seq_length=128, shuffle=True, seed=0)
    seen, shapes = [], set()
    for features, labels in dataset:
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        shapes.add(ids.shape[1])
        np.testing.assert_array_equal(mask.sum(axis=1), [lengths[i] for i in labels.numpy()])
        assert (ids[mask == 0] == 0).all()
        seen.extend(labels.numpy().tolist())
    assert sorted(seen) == list(range(300))
    assert shapes <= set(default_bucket_boundaries(128))
    real = sum(lengths)
    bucket_tokens = sum(min(b for b in default_bucket_boundaries(128) if b >= n) for n in lengths)
    assert bucket_tokens < 1.3 * real  # padding waste bounded by the bucket ladder


@pytest.mark.parametrize("boundaries,drop", [(None, False), (None, True), ([16, 32], False)])
def test_planned_batches_per_epoch_are_the_bucketed_pipeline_s(boundaries, drop):
    """Each bucket ends an epoch with its own partial batch: the plan (and so the learning-rate
    schedule) counts those batches instead of assuming ceil(examples / batch)."""
    lengths = np.random.default_rng(1).integers(3, 100, size=500)
    split = _ragged_split(list(lengths))
    dataset = make_dataset(split, batch_size=32, padding="bucket", max_seq_length=100, shuffle=True,
                           drop_remainder=drop, bucket_boundaries=boundaries)
    batches = list(dataset)
    plan = BatchPlan(num_examples=500, per_replica_batch_size=32, drop_remainder=drop,
                     bucket_sizes=bucket_sizes(lengths, 100, boundaries))
    assert plan.batches_per_epoch == len(batches)
    assert len(batches) < 500 // 32 if drop else len(batches) > 500 // 32 + 1
    if boundaries:  # lengths past the last configured boundary go to a max_seq_length bucket
        assert {int(x["input_ids"].shape[1]) for x, _ in batches} == {16, 32, 100}


def test_max_steps_sets_the_epochs_and_the_schedule_length():
    plan = BatchPlan(num_examples=4096, per_replica_batch_size=32, max_steps=128, bucket_sizes=(2000, 1000, 1096))
    assert plan.batches_per_epoch == 63 + 32 + 35
    assert plan.total_optimizer_steps == 128 and plan.epochs == 1 and plan.steps_per_epoch_for_fit == 128
    longer = BatchPlan(num_examples=100, per_replica_batch_size=10, gradient_accumulation_steps=2, max_steps=12)
    assert (longer.epochs, longer.total_micro_steps, longer.total_optimizer_steps) == (3, 24, 12)


def test_max_length_padding_is_static_and_drops_remainder():
    split = _ragged_split([5, 9, 3, 7, 2])
    dataset = make_dataset(split, batch_size=2, padding="max_length", max_seq_length=16, drop_remainder=True)
    assert dataset.element_spec[0]["input_ids"].shape.as_list() == [2, 16]
    assert len(list(dataset)) == 2


def test_dynamic_padding_pads_to_longest():
    split = _ragged_split([5, 9, 3])
    (features, _), = list(make_dataset(split, batch_size=3, padding="dynamic"))
    assert features["input_ids"].shape == (3, 9)


def test_select_rows_reorders():
    split = _ragged_split([2, 3, 1])
    picked = select_rows(split, np.array([2, 0]))
    values, splits = picked.features["input_ids"]
    assert values.tolist() == [1, 1, 2] and splits.tolist() == [0, 1, 3]
    assert picked.labels.tolist() == [2, 0]


def test_evaluation_reports_the_training_loss(tiny_config):
    """Each task has one loss: the evaluation report's equals Keras' on the same split."""
    from tfbert.run.experiment import build_experiment

    experiment = build_experiment(tiny_config("model.classifier_dropout=0"))
    report = experiment.evaluate_split("validation")
    keras = experiment.model.evaluate(experiment.datasets["validation"], verbose=0, return_dict=True)["loss"]
    assert report["metrics"]["loss"] == pytest.approx(keras, rel=1e-5)


def test_max_train_samples_trains_on_a_seeded_subset(tiny_config):
    from tfbert.config import load_config
    from tfbert.errors import ConfigError
    from tfbert.run.experiment import build_experiment

    full = build_experiment(tiny_config())
    every = full.data.splits["train"]
    subsets = [build_experiment(tiny_config("data.max_train_samples=10", f"training.seed={seed}")).data.splits["train"]
               for seed in (42, 42, 7)]
    assert [len(s) for s in subsets] == [10, 10, 10]
    ids = [s.features["input_ids"][0].tolist() for s in subsets]
    assert ids[0] == ids[1] and ids[0] != ids[2]  # drawn with training.seed
    rows = {tuple(every.features["input_ids"][0][a:b]) for a, b in zip(every.features["input_ids"][1],
                                                                       every.features["input_ids"][1][1:])}
    values, splits = subsets[0].features["input_ids"]
    assert all(tuple(values[a:b]) in rows for a, b in zip(splits, splits[1:]))  # rows of the training split
    assert len(subsets[0].labels) == 10
    assert len(build_experiment(tiny_config(f"data.max_train_samples={len(every) + 5}")).data.splits["train"]) == len(every)
    with pytest.raises(ConfigError, match="data.max_train_samples"):
        load_config(None, ["data.max_train_samples=0"])


def test_several_train_files_are_read_in_order_and_errors_name_the_file(tmp_path, tokenizer):
    first, second = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    first.write_text("ham\thello there\nspam\tWIN a prize\n")
    second.write_text("spam\tclaim now\nham\tsee you\nham\tok\n")
    data = load_classification_data(DataConfig(train_file=[str(first), str(second)], has_header=False,
                                               column_names=["label", "text"]), tokenizer, seed=0)
    assert data.label_names == ["ham", "spam"]
    assert list(data.splits["train"].labels) == [0, 1, 1, 0, 0]
    assert data.extras["train"][0] == ["hello there", "WIN a prize", "claim now", "see you", "ok"]
    second.write_text("spam\tclaim now\n\tno label\n")
    with pytest.raises(DataError, match=r"dev.tsv, row 2"):
        load_classification_data(DataConfig(train_file=[str(first), str(second)], has_header=False,
                                            column_names=["label", "text"]), tokenizer, seed=0)


def test_train_files_whose_label_columns_read_differently_are_joined_as_text(tmp_path, tokenizer):
    numbers, words = tmp_path / "numbers.tsv", tmp_path / "words.tsv"
    numbers.write_text("label\ttext\n0\tfirst text\n1\tsecond text\n")
    words.write_text("label\ttext\nspam\tthird text\n0\tfourth text\n")
    data = load_classification_data(DataConfig(train_file=[str(numbers), str(words)]), tokenizer, seed=0)
    assert data.label_names == ["0", "1", "spam"]
    assert list(data.splits["train"].labels) == [0, 1, 2, 0]
    listed = tmp_path / "listed.jsonl"
    listed.write_text('{"label": 1, "text": ["not", "a", "string"]}\n')
    with pytest.raises(DataError, match=r"listed.jsonl, row 1: .*column 'text'"):
        load_classification_data(DataConfig(train_file=[str(numbers), str(listed)]), tokenizer, seed=0)


def test_train_files_that_cannot_be_joined_are_named():
    import datasets

    from tfbert.data.readers import concatenate_tables

    text = datasets.Dataset.from_dict({"text": ["a"], "labels": ["joy,love"]})
    lists = datasets.Dataset.from_dict({"text": ["b"], "labels": [["joy", "love"]]})
    with pytest.raises(DataError, match=r"data.train_file: the files' columns cannot be joined \(a.tsv: .*; b.jsonl: "):
        concatenate_tables([text, lists], ["a.tsv", "b.jsonl"])
