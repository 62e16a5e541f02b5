"""Token classification: readers, tag schemes, subword alignment, windows, metrics, training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfbert.data.conll import TaggedSentence, check_tags, read_tagged
from tfbert.data.encoding import IGNORE_INDEX
from tfbert.data.token_alignment import encode_tagged, word_predictions
from tfbert.errors import DataError
from tfbert.evaluation.ner_metrics import entity_metrics


@pytest.fixture(scope="module")
def tokenizer(bundled_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundled_dir))


CONLL = "-DOCSTART-\tO\n\nEmpire\tB-location\nState\tI-location\nrocks\tO\n\nHello  O\nTranssiberian B-product\n"


def test_conll_tab_and_space_columns(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text(CONLL)
    sentences = read_tagged(path, "auto")
    assert [s.words for s in sentences] == [["Empire", "State", "rocks"], ["Hello", "Transsiberian"]]
    assert [s.tags for s in sentences] == [["B-location", "I-location", "O"], ["O", "B-product"]]
    assert sentences[1].line == 7


def test_jsonl_tokens_and_tags(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"tokens": ["Paris", "is", "big"], "tags": ["S-LOC", "O", "O"]}) + "\n")
    sentences = read_tagged(path, "auto")
    check_tags(sentences, path, "bioes")
    with pytest.raises(DataError, match=r"tag 'S-LOC' is not valid in the IOB2 scheme"):
        check_tags(sentences, path, "iob2")
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(DataError, match=r"x.jsonl, row 1: 'tokens' and 'tags' must be lists of equal length"):
        read_tagged(path, "auto")


def test_bad_conll_line_is_named(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Hello\tO\nlonely\n")
    with pytest.raises(DataError, match=r"bad.conll, line 2: expected 'token<TAB>tag'"):
        read_tagged(path, "conll")


def test_first_subword_labelled_rest_ignored(tokenizer):
    sentence = TaggedSentence(["Transsiberian", "railway", "rocks"], ["B-product", "I-product", "O"], 1)
    label2id = {"O": 0, "B-product": 1, "I-product": 2}
    split, windows = encode_tagged([sentence], tokenizer, label2id, max_seq_length=32)
    ids, _ = split.features["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids.tolist())
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    labels = split.labels.values.tolist()
    first = [p for p in range(1, len(pieces) - 1) if not pieces[p].startswith("##")]
    assert [labels[p] for p in first] == [1, 2, 0]
    assert all(labels[p] == IGNORE_INDEX for p in range(len(pieces)) if p not in first)
    all_split, _ = encode_tagged([sentence], tokenizer, label2id, max_seq_length=32, label_all_subwords=True)
    all_labels = all_split.labels.values.tolist()
    assert all_labels[first[0] + 1] == 2  # continuation of B-product labelled I-product
    assert all_labels[0] == all_labels[-1] == IGNORE_INDEX


def test_long_sentence_is_windowed_at_word_boundaries_not_cut(tokenizer):
    words = [f"word{i}" for i in range(100)]  # each "wordN" is several pieces
    tags = ["B-x" if i % 7 == 0 else "O" for i in range(100)]
    sentence = TaggedSentence(words, tags, 1)
    label2id = {"O": 0, "B-x": 1, "I-x": 2}
    split, windows = encode_tagged([sentence], tokenizer, label2id, max_seq_length=32)
    assert len(windows.sentence_index) > 1 and set(windows.sentence_index) == {0}
    covered = [w for tw in windows.token_word for w in tw if w >= 0]
    assert sorted(set(covered)) == list(range(100))  # every word in some window
    for tw in windows.token_word:
        assert len(tw) <= 32
    # predicting the gold labels per token gives back the gold tags per word
    gold = [split.labels.values[s:e] for s, e in zip(split.labels.row_splits[:-1], split.labels.row_splits[1:])]
    predicted = [np.where(g == IGNORE_INDEX, 0, g) for g in gold]
    assert word_predictions(predicted, windows, [sentence], ["O", "B-x", "I-x"]) == [tags]


def test_entity_metrics_hand_worked():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    report = entity_metrics(true, pred)
    # entities: gold {PER, LOC, ORG} = 3, predicted {PER, ORG, LOC(wrong place)} = 3, correct 2
    assert report["precision"] == pytest.approx(2 / 3) and report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)
    assert report["per_class"]["LOC"]["f1"] == 0.0 and report["per_class"]["PER"]["f1"] == 1.0
    assert report["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)
    assert report["token_accuracy"] == pytest.approx(4 / 6)


def test_bioes_strict():
    true = [["S-PER", "O", "B-LOC", "E-LOC"]]
    assert entity_metrics(true, true, "bioes")["f1"] == 1.0
    # strict BIOES: B-LOC I-LOC without E-LOC is no entity, so P = 1/1, R = 1/2, F1 = 2/3
    report = entity_metrics(true, [["S-PER", "O", "B-LOC", "I-LOC"]], "bioes")
    assert (report["precision"], report["recall"]) == (1.0, 0.5) and report["f1"] == pytest.approx(2 / 3)


def test_masked_loss_ignores_unlabelled_positions():
    import tensorflow as tf

    from tfbert.modeling.losses import MaskedAccuracy, MaskedSparseCategoricalCrossentropy

    logits = tf.constant([[[2.0, 0.0], [0.0, 5.0], [9.0, -9.0]]])
    labels = tf.constant([[0, 1, IGNORE_INDEX]])
    loss = MaskedSparseCategoricalCrossentropy()(labels, logits)
    expected = np.mean([np.log(1 + np.exp(-2.0)), np.log(1 + np.exp(-5.0))])
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    metric = MaskedAccuracy()
    metric.update_state(tf.constant([[1, 1, IGNORE_INDEX]]), logits)
    assert float(metric.result()) == pytest.approx(0.5)


def test_tiny_model_trains_and_evaluates(tiny_model_dir, tmp_path):
    from tfbert.config import load_config
    from tfbert.run.trainer import train

    rows = []
    for i in range(24):
        city = ["Paris", "Berlin", "Tokyo"][i % 3]
        rows.append({"tokens": ["I", "love", city, "so", "much"], "tags": ["O", "O", "B-LOC", "O", "O"]})
    path = tmp_path / "ner.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=token_classification", f"data.train_file={path}",
        f"data.validation_file={path}", "data.max_seq_length=16", "training.num_train_epochs=2",
        "training.per_device_train_batch_size=8", "training.metric_for_best_model=val_f1", "training.verbose=0",
        "training.tensorboard=false", f"training.output_dir={tmp_path / 'run'}", "export.at_end=false",
        "optimizer.learning_rate=1e-3",
    ])
    summary = train(config, log=lambda *_: None)
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert set(report["metrics"]) == {"loss", "precision", "recall", "f1", "macro_f1", "token_accuracy"}
    assert report["num_examples"] == 24 and np.isfinite(report["loss"])
    assert summary["eval"]["split"] == "validation"
    labels = json.loads((tmp_path / "run" / "model" / "labels.json").read_text())["id2label"]
    assert labels == ["O", "B-LOC", "I-LOC"]


def test_several_train_files_are_concatenated_and_errors_name_the_file(tokenizer, tmp_path):
    from tfbert.config import load_config
    from tfbert.tasks import get_task

    train, dev = tmp_path / "train.conll", tmp_path / "dev.conll"
    train.write_text("I\tO\nlove\tO\nParis\tB-LOC\n\nBob\tB-PER\nran\tO\n")
    dev.write_text("Tokyo\tB-LOC\nrocks\tO\n")
    task = get_task("token_classification")

    def load(*overrides):
        return task.load_data(load_config(None, ["task.type=token_classification", "data.format=conll",
                                                 f"data.train_file=[{train}, {dev}]", *overrides]), tokenizer, seed=0)

    data = load()
    assert [s.words for s in data.extras["train"]["sentences"]] == [["I", "love", "Paris"], ["Bob", "ran"],
                                                                    ["Tokyo", "rocks"]]
    assert data.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    dev.write_text("Tokyo\tB-LOC\nrocks\tO\n\nIBM\tB-ORG\n")
    with pytest.raises(DataError, match=r"dev.conll, line 4 \('IBM'\): unknown tag 'B-ORG'"):
        load("data.labels=[O, B-LOC, I-LOC, B-PER, I-PER]")
