"""Config: YAML + overrides in a fixed order, typed validation with errors naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from tfbert.config import ExperimentConfig, config_from_dict, load_config, parse_override
from tfbert.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_follow_hugging_face_names():
    config = ExperimentConfig()
    assert config.optimizer.learning_rate == 5e-5
    assert config.training.per_device_train_batch_size == 32
    assert config.training.gradient_accumulation_steps == 1
    assert config.data.max_seq_length == 128


def test_yaml_then_overrides_in_order(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("optimizer:\n  learning_rate: 1.0e-4\ntraining:\n  seed: 7\n")
    config = load_config(path, ["optimizer.learning_rate=3e-5", "optimizer.learning_rate=2e-5",
                                "data.column_names=[label, text]", "training.load_best_model_at_end=false"])
    assert config.optimizer.learning_rate == pytest.approx(2e-5)  # last override wins
    assert config.training.seed == 7  # from YAML
    assert config.data.column_names == ["label", "text"]
    assert config.training.load_best_model_at_end is False


@pytest.mark.parametrize("text,value", [("a.b=3e-5", 3e-5), ("a.b=32", 32), ("a.b=true", True),
                                        ("a.b=null", None), ("a.b=[1, 2]", [1, 2]), ("a.b=x=y", "x=y")])
def test_parse_override_values(text, value):
    assert parse_override(text) == ("a.b", value)


def test_unknown_key_names_key_and_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'optimizer.lerning_rate'.*did you mean 'learning_rate'"):
        load_config(None, ["optimizer.lerning_rate=1e-4"])
    path = tmp_path / "bad.yaml"
    path.write_text("trainig:\n  seed: 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'trainig'.*did you mean 'training'"):
        load_config(path)


def test_literal_values_list_allowed():
    with pytest.raises(ConfigError, match=r"'precision.policy'.*'float16'.*'float32', 'mixed_float16', 'mixed_bfloat16'"):
        load_config(None, ["precision.policy=float16"])


@pytest.mark.parametrize("override,key", [
    ("training.per_device_train_batch_size=0", "training.per_device_train_batch_size"),
    ("training.per_device_train_batch_size=abc", "training.per_device_train_batch_size"),
    ("optimizer.warmup_ratio=1.5", "optimizer.warmup_ratio"),
    ("training.gradient_accumulation_steps=0", "training.gradient_accumulation_steps"),
    ("data.validation_split=1.2", "data.validation_split"),
    ("training.freeze=bottom", "training.freeze_layers"),
    ("data.has_header=false", "data.column_names"),
    ("training.load_best_model_at_end=maybe", "training.load_best_model_at_end"),
    ("data.bucket_boundaries=[64, 32]", "data.bucket_boundaries"),
    ("training.metric_for_best_model=val_f2", "training.metric_for_best_model"),
])
def test_invalid_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, [override])


def test_adam_with_weight_decay_is_rejected():
    with pytest.raises(ConfigError, match="optimizer.weight_decay"):
        load_config(None, ["optimizer.name=adam", "optimizer.weight_decay=0.01"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_round_trip_through_dict():
    config = load_config(None, ["training.seed=3", "data.labels=[a, b]"])
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    from tfbert.tasks.registry import task_types

    config = load_config(path)
    # Each recipe trains into a directory of its own name: two recipes never share (or refuse) a run.
    assert config.training.output_dir == f"runs/{path.stem}"
    assert config.task.type in task_types()
    assert config_from_dict(config.to_dict()) == config  # what config.yaml saves loads back the same


def test_task_keys_live_in_the_tasks_config_and_old_keys_still_load():
    qa = load_config(None, ["data.doc_stride=16", "task.type=question_answering", "data.max_seq_length=64",
                            "data.max_query_length=16", "task.n_best_size=5"])
    assert (qa.data.doc_stride, qa.task.n_best_size) == (16, 5)  # set before task.type: still applied
    classifier = load_config(None)
    assert not hasattr(classifier.task, "n_best_size") and not hasattr(classifier.data, "doc_stride")
    # A config saved before the keys moved lists every task's keys: those of other tasks are ignored.
    saved = classifier.to_dict()
    saved["task"]["n_best_size"] = 20
    saved["data"]["tag_scheme"] = "iob2"
    assert config_from_dict(saved) == classifier
    with pytest.raises(ConfigError, match="unknown config key 'task.n_best_sise'"):
        load_config(None, ["task.n_best_sise=3"])
    with pytest.raises(ConfigError, match="config key 'task.type': 'regression' is not allowed"):
        load_config(None, ["task.type=regression"])


@pytest.mark.parametrize("overrides,pattern", [
    (["data.train_file=[]"], r"'data.train_file': an empty list"),
    (["data.train_file=[a.tsv, a.tsv]"], r"'data.train_file': lists a file twice"),
    (["data.train_file={a: 1}"], r"'data.train_file': \{'a': 1\} is not allowed; expected a string or a list of strings"),
    (["task.type=question_answering", "data.train_file=[a.json, b.json]", "data.train_articles=0-3"],
     r"'data.train_articles': selects articles of one file"),
])
def test_train_file_lists_are_checked(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, overrides)


def test_train_file_takes_one_file_or_a_list():
    assert load_config(None, ["data.train_file=a.tsv"]).data.train_files() == ["a.tsv"]
    config = load_config(None, ["data.train_file=[a.tsv, b.tsv]"])
    assert config.data.train_files() == ["a.tsv", "b.tsv"] and config.data.train_file_label() == "a.tsv + b.tsv"


def test_model_backbone_key_defaults_to_auto_and_is_checked():
    assert load_config(None).model.backbone == "auto"
    for value in ("tfbert", "transformers"):
        assert load_config(None, [f"model.backbone={value}"]).model.backbone == value
    with pytest.raises(ConfigError, match=r"'model.backbone': 'keras' is not allowed; expected one of 'auto', "
                                          r"'tfbert', 'transformers'"):
        load_config(None, ["model.backbone=keras"])


def test_apply_values_sets_dotted_keys_with_the_configs_checks():
    from tfbert.config import apply_values, validate

    config = load_config(None)
    # task.type first, wherever it is: QA's keys exist once the type is known.
    apply_values(config, {"data.doc_stride": 16, "task.type": "question_answering", "data.max_seq_length": 64,
                          "data.max_query_length": 16, "optimizer.learning_rate": "3e-5"})
    validate(config)
    assert (config.task.type, config.data.doc_stride, config.optimizer.learning_rate) == ("question_answering", 16, 3e-5)
    with pytest.raises(ConfigError, match=r"unknown config key 'optimizer.lerning_rate'.*did you mean 'learning_rate'"):
        apply_values(config, {"optimizer.lerning_rate": 1e-4})
    with pytest.raises(ConfigError, match=r"'training.seed': expected an integer, got 'x'"):
        apply_values(config, {"training.seed": "x"})


@pytest.mark.parametrize("split", ["validation", "test"])
def test_a_split_comes_from_its_file_or_a_fraction_not_both(split):
    with pytest.raises(ConfigError, match=rf"'data.{split}_split': data.{split}_file is set too"):
        load_config(None, [f"data.{split}_file=x.tsv", f"data.{split}_split=0.1"])


def test_load_config_imports_no_model_code():
    """Every shipped recipe loads (and a config error is raised) without TensorFlow, tf_keras or transformers."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tfbert.config import load_config\n"
        "from tfbert.errors import ConfigError\n"
        "for path in sys.argv[1:]:\n"
        "    load_config(path)\n"
        "try:\n"
        "    load_config(None, ['task.type=token_classification', 'training.epochs=3'])\n"
        "except ConfigError:\n"
        "    pass\n"
        "else:\n"
        "    sys.exit('no ConfigError')\n"
        "print(sorted(m for m in ('tensorflow', 'tf_keras', 'transformers') if m in sys.modules))\n"
    )
    recipes = [str(p) for p in sorted((ROOT / "configs").glob("*.yaml"))]
    result = subprocess.run([sys.executable, "-c", code, *recipes], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout
