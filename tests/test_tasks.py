"""Every task fact lives in its task: specs and classes agree, a task from outside tfbert registers, the
model card and TFRecords ask the task, packed losses wrap the task's loss, and the split keys mean
the same for every task."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_multi_label import write_rows
from tests.test_question_answering import squad_file


def test_every_registered_task_declares_its_facts_once():
    from tfbert.serving.base import ServingModule
    from tfbert.tasks import get_task, get_task_class, task_specs

    specs = task_specs()
    assert len(specs) >= 4
    for spec in specs:
        cls = get_task_class(spec.type)
        assert spec.names_class(cls) and cls.spec is spec
        assert (cls.type, cls.config_class, cls.data_config_class) == (spec.type, spec.config_class,
                                                                       spec.data_config_class)
        assert (cls.metric_names, cls.train_metric_names) == (spec.metric_names, spec.train_metric_names)
        # The model card lists each metric under a Hub type, or keeps it out on purpose: none is forgotten.
        assert set(cls.hub_metrics) == set(spec.metric_names), spec.type
        assert cls.record_label_dtype in ("int64", "float32")
        assert issubclass(get_task(spec.type).serving_module_class(), ServingModule)
    assert get_task_class("question_answering").output_names == ("start_logits", "end_logits")
    assert not get_task("question_answering").one_output_per_label and get_task("token_classification").one_output_per_label


def test_a_task_defined_outside_tfbert_registers_with_register_task(monkeypatch):
    from dataclasses import dataclass

    from tfbert.config import DataConfig, TaskConfig, load_config
    from tfbert.errors import ConfigError
    from tfbert.tasks import get_task_class, registry, task_types
    from tfbert.tasks.sequence_classification.task import SequenceClassification

    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))

    @dataclass
    class ScoreConfig(TaskConfig):
        scale: float = 5.0

    @registry.register_task
    class Scoring(SequenceClassification):
        spec = None
        type = "my_scoring"
        config_class = ScoreConfig
        data_config_class = DataConfig
        metric_names = ("loss", "pearson")

    assert "my_scoring" in task_types() and get_task_class("my_scoring") is Scoring
    config = load_config(None, ["task.type=my_scoring", "task.scale=1.5", "training.metric_for_best_model=val_pearson"])
    assert config.task.scale == 1.5 and type(config.task) is ScoreConfig
    with pytest.raises(TypeError, match="registered twice"):
        registry.register_task(type("Other", (Scoring,), {}))
    with pytest.raises(ConfigError, match="'task.type': 'my_scorin' is not allowed"):
        load_config(None, ["task.type=my_scorin"])


def test_the_model_card_lists_the_metrics_the_task_names():
    import yaml

    from tfbert.config import load_config
    from tfbert.model_card import front_matter

    def index(task_type: str, metrics: dict) -> dict:
        config = load_config(None, [f"task.type={task_type}", "data.train_file=data/goemotions/train.tsv",
                                    "data.max_seq_length=384", "training.metric_for_best_model=loss"])
        text = front_matter(config, {"metrics": metrics}, "m", "test")
        results = yaml.safe_load(text.strip().strip("-"))["model-index"][0]["results"]
        return {m["name"]: m["type"] for r in results for m in r["metrics"]}

    listed = index("multi_label_classification", {"loss": 0.2, "micro_f1": 0.5, "macro_f1": 0.4,
                                                  "subset_accuracy": 0.3, "hamming": 0.1})
    # micro F1 and subset accuracy used to be dropped; a metric the task does not name is listed as itself.
    assert listed == {"Micro F1": "f1", "Macro F1": "f1", "Subset Accuracy": "accuracy", "Hamming": "hamming"}
    assert index("question_answering", {"loss": 1.0, "exact_match": 50.0, "f1": 60.0, "start_accuracy": 0.5,
                                        "end_accuracy": 0.5}) == {"Exact Match": "exact_match", "F1": "f1"}


def test_packed_loss_is_the_tasks_loss_over_labelled_slots():
    import tensorflow as tf

    from tfbert.modeling.losses import MaskedSparseCategoricalCrossentropy
    from tfbert.tasks import get_task
    from tfbert.tasks.losses import LabelledOnly, labelled_only

    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(3, 4, 5)), tf.float32)  # [packs, slots, classes]
    labels = tf.constant([[1, 4, -100, -100], [0, 2, 3, -100], [-100, -100, -100, -100]])
    wrapped = labelled_only(get_task("sequence_classification").loss())
    np.testing.assert_allclose(wrapped(labels, logits).numpy(),
                               MaskedSparseCategoricalCrossentropy()(labels, logits).numpy(), rtol=1e-6)
    gold = np.array([1, 4, 0, 2, 3])
    per_slot = tf.nn.sparse_softmax_cross_entropy_with_logits(gold, tf.gather_nd(
        logits, [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]]))
    np.testing.assert_allclose(wrapped(labels, logits).numpy(), per_slot.numpy().mean(), rtol=1e-6)
    qa = get_task("question_answering")
    packed = qa.packed_compile_args()["loss"]
    assert set(packed) == set(qa.loss()) and all(isinstance(v, LabelledOnly) for v in packed.values())
    assert LabelledOnly.from_config(wrapped.get_config()).get_config() == wrapped.get_config()


def _tokenizer(tiny_model_dir):
    from tfbert.pretrained import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_ner_validation_split_holds_out_sentences(tiny_model_dir, tmp_path):
    from tfbert.config import load_config
    from tfbert.tasks import get_task

    rows = [{"tokens": ["I", "saw", f"City{i}"], "tags": ["O", "O", "B-LOC"]} for i in range(20)]
    path = tmp_path / "ner.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, [f"model.name_or_path={tiny_model_dir}", "task.type=token_classification",
                                f"data.train_file={path}", "data.validation_split=0.25", "data.test_split=0.1"])
    task, tokenizer = get_task(config.task.type), _tokenizer(tiny_model_dir)
    assert task.has_validation(config)
    data = task.load_data(config, tokenizer, seed=3)
    words = {split: [s.words[2] for s in data.extras[split]["sentences"]] for split in data.splits}
    # fractions of the whole file: 25% and 10% of 20 sentences
    assert {split: len(w) for split, w in words.items()} == {"train": 13, "validation": 5, "test": 2}
    assert sorted(sum(words.values(), [])) == sorted(r["tokens"][2] for r in rows)
    assert task.load_data(config, tokenizer, seed=3).extras["validation"]["sentences"][0].words == \
        data.extras["validation"]["sentences"][0].words  # the same seed, the same split


def test_qa_validation_split_holds_out_whole_articles(tiny_model_dir, tmp_path):
    from tfbert.config import load_config
    from tfbert.errors import DataError
    from tfbert.tasks import get_task

    path = squad_file(tmp_path / "squad.json")  # 3 articles of 4 questions
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=question_answering", f"data.train_file={path}",
        "data.validation_split=0.34", "data.max_seq_length=64", "data.doc_stride=16", "data.max_query_length=16"])
    task = get_task(config.task.type)
    assert task.has_validation(config)
    data = task.load_data(config, _tokenizer(tiny_model_dir), seed=0)
    titles = {split: {e.title for e in data.extras[split]["examples"]} for split in data.splits}
    assert len(titles["validation"]) == 1 and len(titles["train"]) == 2
    assert not titles["validation"] & titles["train"]
    assert len(data.extras["validation"]["examples"]) == 4
    config.data.validation_split = 0.1  # a tenth of 3 articles is none
    with pytest.raises(DataError, match=r"'data.validation_split': 0.1 of the articles of .*squad.json rounds to none"):
        task.load_data(config, _tokenizer(tiny_model_dir), seed=0)


def test_multi_label_splits_are_fractions_of_the_whole_file(tiny_model_dir, tmp_path):
    from tfbert.config import load_config
    from tfbert.tasks import get_task

    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=multi_label_classification",
        f"data.train_file={write_rows(tmp_path / 'a.tsv')}", "data.format=tsv", "data.label_column=labels",
        "data.validation_split=0.25", "data.test_split=0.25", "training.metric_for_best_model=val_micro_f1"])
    data = get_task(config.task.type).load_data(config, _tokenizer(tiny_model_dir), seed=0)
    assert {split: len(data.splits[split]) for split in data.splits} == {"train": 12, "test": 6, "validation": 6}
    assert data.splits["test"].labels.shape == (6, 3) and data.splits["test"].labels.dtype == np.float32
