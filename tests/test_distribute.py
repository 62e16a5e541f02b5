"""Strategy choice, batch arithmetic per strategy, hardware errors, and IPU construction on a stand-in SDK.

Graphcore's SDK cannot be installed here, so the IPU tests inject a minimal stand-in for
``tensorflow.python.ipu`` that records what tfbert asks of it; real fits under Mirrored and
MultiWorker are in test_distribute_runs.py.
"""
from __future__ import annotations

import enum
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from tfbert import distribute
from tfbert.cli import common
from tfbert.cli import train as train_cli
from tfbert.config import DistributionConfig, load_config
from tfbert.errors import ConfigError, HardwareError
from tfbert.training.batch_plan import BatchPlan


# --------------------------------------------------------------------------- strategy choice and errors


def test_default_and_auto_choose_one_device(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name in ("TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert distribute.choose_strategy("default") is tf.distribute.get_strategy()
    assert distribute.resolve_strategy_name("auto", DistributionConfig()) == "default"
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}')
    assert distribute.resolve_strategy_name("auto", DistributionConfig()) == "multiworker"
    assert distribute.strategy_kind(tf.distribute.get_strategy()) == "default"
    with pytest.raises(ConfigError, match="'nope' is not available"):
        distribute.choose_strategy("nope")


def _cli(args, capsys):
    code = common.run(train_cli.main, args)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("strategy,overrides,pattern", [
    ("tpu", [], r"^error: --strategy tpu: no TPU found; set distribution.tpu .* or the TPU_NAME environment variable$"),
    ("tpu", ["distribution.tpu=local"], r"^error: --strategy tpu: distribution.tpu is 'local' but this machine has no TPU"),
    ("ipu", [], r"^error: --strategy ipu: Graphcore's Poplar SDK is not installed \(no module tensorflow.python.ipu\)"),
    ("multiworker", [], r"^error: --strategy multiworker: TF_CONFIG is not set"),
])
def test_missing_hardware_is_one_line_and_exit_2(strategy, overrides, pattern, tiny_model_dir, spam_file, tmp_path,
                                                  capsys, monkeypatch):
    import re

    for name in ("TPU_NAME", "COLAB_TPU_ADDR", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    args = ["--strategy", strategy, "--set", f"model.name_or_path={tiny_model_dir}",
            "--set", f"data.train_file={spam_file}", "--set", f"training.output_dir={out}"]
    for override in overrides:
        args += ["--set", override]
    code, err = _cli(args, capsys)
    assert code == 2 and len(err) == 1, err
    assert re.search(pattern, err[0]), err[0]
    assert not out.exists()  # the strategy is chosen before anything is written


def test_chief_and_tf_config(monkeypatch):
    from tfbert.distribute import cluster

    def worker(task_type, task_id, jobs):
        spec = types.SimpleNamespace(jobs=jobs)
        resolver = types.SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: spec)
        return types.SimpleNamespace(cluster_resolver=resolver)

    assert cluster.is_chief(tf.distribute.get_strategy())
    assert cluster.is_chief(worker("worker", 0, ["worker"])) and not cluster.is_chief(worker("worker", 1, ["worker"]))
    assert cluster.is_chief(worker("chief", 0, ["chief", "worker"]))
    assert not cluster.is_chief(worker("worker", 0, ["chief", "worker"]))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(HardwareError, match="TF_CONFIG: not valid JSON"):
        cluster.read_tf_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "chief", "index": 0}}')
    assert cluster.cluster_size(cluster.read_tf_config()) == 3


def test_distribution_config_is_checked():
    with pytest.raises(ConfigError, match="2 pipeline stages need distribution.ipus_per_replica = 2"):
        load_config(None, ["distribution.pipeline_splits=[3]"])
    with pytest.raises(ConfigError, match="powers of two; ipus_per_replica x replication_factor = 3"):
        load_config(None, ["distribution.replication_factor=3"])
    with pytest.raises(ConfigError, match="only when pipelined"):
        load_config(None, ["distribution.ipus_per_replica=2"])
    with pytest.raises(ConfigError, match="'distribution.strategy': 'gpu' is not allowed"):
        load_config(None, ["distribution.strategy=gpu"])
    config = load_config(None, ["distribution.strategy=mirrored", "distribution.devices=[/gpu:0, /gpu:1]"])
    assert config.distribution.devices == ["/gpu:0", "/gpu:1"]


# --------------------------------------------------------------------------- batch plan per strategy


def test_plan_splits_global_batches_on_tf_strategies_and_feeds_micro_batches_on_ipu():
    mirrored = BatchPlan(num_examples=1000, per_replica_batch_size=8, num_replicas=2, gradient_accumulation_steps=4,
                         strategy="mirrored")
    assert mirrored.dataset_batch_size == 16 and mirrored.batches_per_update == 4
    assert mirrored.batches_per_epoch == 63 and mirrored.total_optimizer_steps == 15
    # The seed recipe: batch 1, accumulation 64, one replica.
    seed = BatchPlan(num_examples=64 * 50, per_replica_batch_size=1, gradient_accumulation_steps=64,
                     drop_remainder=True, strategy="ipu")
    assert seed.dataset_batch_size == 1 and seed.effective_batch_size == 64
    assert seed.steps_per_execution == 64  # derived: 1 would be rejected by the SDK
    assert seed.batches_per_epoch == 3200 and seed.total_optimizer_steps == 50
    replicated = BatchPlan(num_examples=4096, per_replica_batch_size=2, num_replicas=4, gradient_accumulation_steps=8,
                           steps_per_execution=256, drop_remainder=True, strategy="ipu", num_train_epochs=2)
    assert replicated.dataset_batch_size == 2 and replicated.global_batch_size == 8
    assert replicated.effective_batch_size == 64 and replicated.batches_per_epoch == 2048
    assert replicated.total_optimizer_steps == 2 * 4096 // 64
    # An IPU runs whole executions: an epoch of 63982 micro-batches becomes 999 x 64, 46 left out
    # (other ones each epoch, as the data is reshuffled).
    cut = BatchPlan(num_examples=63982, per_replica_batch_size=1, gradient_accumulation_steps=64,
                    steps_per_execution=64, drop_remainder=True, strategy="ipu", num_train_epochs=10)
    assert (cut.dataset_batches_per_epoch, cut.batches_per_epoch, cut.dropped_batches_per_epoch) == (63982, 63936, 46)
    assert cut.total_optimizer_steps == 9990 and "46 batches/epoch left out" in cut.describe()
    assert int(cut.limit_epoch(tf.data.Dataset.range(63982)).cardinality()) == 63936
    assert mirrored.limit_epoch(tf.data.Dataset.range(5)).cardinality() == 5


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(strategy="tpu"), r"'data.padding': --strategy tpu compiles for static shapes"),
    (dict(strategy="ipu"), r"'data.padding': --strategy ipu compiles for static shapes"),
    (dict(strategy="ipu", drop_remainder=True, gradient_accumulation_steps=4, num_replicas=2, steps_per_execution=12),
     r"multiple of gradient accumulation x replicas = 8, got 12"),
    (dict(strategy="ipu", drop_remainder=True, gradient_accumulation_steps=4, steps_per_execution=104),
     r"'training.steps_per_execution': 104 exceeds the 100 batches in an epoch"),
    (dict(strategy="ipu", drop_remainder=True, gradient_accumulation_steps=101),
     r"one update needs 101 batches \(accumulation 101 x 1 replicas\) but an epoch has 100"),
    (dict(strategy="ipu", drop_remainder=True, gradient_accumulation_steps=6, pipeline_stages=2),
     r"'training.gradient_accumulation_steps': a grouped pipeline of 2 stages needs a multiple of 4"),
    (dict(strategy="ipu", drop_remainder=True, gradient_accumulation_steps=4, num_train_epochs=1.5),
     r"'training.num_train_epochs': 1.5 epochs give 75 batches per fit epoch"),
])
def test_plan_rejects_impossible_combinations(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        BatchPlan(num_examples=100, per_replica_batch_size=1, **kwargs)


# --------------------------------------------------------------------------- IPU on a stand-in SDK


class _Schedule(enum.Enum):
    Grouped = 0
    Interleaved = 1
    Sequential = 2


def _stand_in_ipu(calls: list) -> types.ModuleType:
    """The parts of ``tensorflow.python.ipu`` tfbert uses, recording every call."""
    ipu = types.ModuleType("tensorflow.python.ipu")

    class IPUConfig:
        def __init__(self):
            self.auto_select_ipus = []
            self.select_ipus = []

        def configure_ipu_system(self):
            calls.append(("configure_ipu_system", self.auto_select_ipus, self.select_ipus))

    class IPUStrategy:
        """Runs on the default strategy; named like Graphcore's class, as tfbert recognises it by name."""

        num_replicas_in_sync = 1

        def scope(self):
            return tf.distribute.get_strategy().scope()

    ipu.config = types.SimpleNamespace(IPUConfig=IPUConfig)
    ipu.ipu_strategy = types.SimpleNamespace(IPUStrategy=IPUStrategy)
    ipu.ops = types.SimpleNamespace(pipelining_ops=types.SimpleNamespace(PipelineSchedule=_Schedule))
    return ipu


class _Assignment:
    """Graphcore's FunctionalLayerPipelineStageAssignment: one per layer invocation."""

    def __init__(self, layer):
        self.layer, self.node_index, self.pipeline_stage = layer, 0, None


@pytest.fixture
def stand_in_ipu(monkeypatch):
    """Install the stand-in SDK and the methods it would add to Keras models created in its scope."""
    from tfbert.modeling.task_model import TaskModel

    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorflow.python.ipu", _stand_in_ipu(calls))

    def record(name):
        def method(self, **kwargs):
            calls.append((name, kwargs))
        return method

    def get_assignment(self):
        return [_Assignment(layer) for layer in self.layers if type(layer).__name__ != "InputLayer"]

    def set_assignment(self, assignments):
        calls.append(("set_pipeline_stage_assignment", [(a.layer.name, a.pipeline_stage) for a in assignments]))

    monkeypatch.setattr(TaskModel, "set_gradient_accumulation_options", record("set_gradient_accumulation_options"), raising=False)
    monkeypatch.setattr(TaskModel, "set_pipelining_options", record("set_pipelining_options"), raising=False)
    monkeypatch.setattr(TaskModel, "get_pipeline_stage_assignment", get_assignment, raising=False)
    monkeypatch.setattr(TaskModel, "set_pipeline_stage_assignment", set_assignment, raising=False)
    return calls


def test_ipu_config_fields(stand_in_ipu):
    from tfbert.distribute.ipu import import_ipu, make_ipu_config

    ipu = import_ipu()
    auto = make_ipu_config(ipu, DistributionConfig(replication_factor=4))
    assert auto.auto_select_ipus == 4 and auto.select_ipus == []
    pipelined = make_ipu_config(ipu, DistributionConfig(ipus_per_replica=2, replication_factor=2, pipeline_splits=[3]))
    assert pipelined.auto_select_ipus == 4
    chosen = make_ipu_config(ipu, DistributionConfig(auto_select_ipus=False, select_ipus=5))
    assert chosen.select_ipus == 5 and chosen.auto_select_ipus == []
    strategy = distribute.choose_strategy("ipu", DistributionConfig(replication_factor=2), log=lambda *_: None)
    assert distribute.strategy_kind(strategy) == "ipu"
    assert stand_in_ipu[-1] == ("configure_ipu_system", 2, [])
    assert distribute.num_replicas(strategy, DistributionConfig(replication_factor=2)) == 2


def test_ipu_experiment_uses_sdk_accumulation_and_static_micro_batches(stand_in_ipu, tiny_config):
    from tfbert.run.experiment import build_experiment

    config = tiny_config("data.padding=max_length", "training.per_device_train_batch_size=2",
                         "training.gradient_accumulation_steps=3", "distribution.replication_factor=2")
    strategy = distribute.choose_strategy("ipu", config.distribution, log=lambda *_: None)
    experiment = build_experiment(config, strategy)
    plan = experiment.plan
    # 36 examples in micro-batches of 2 per replica; an update takes 3 x 2 replicas = 6 batches.
    assert (plan.dataset_batch_size, plan.batches_per_epoch, plan.steps_per_execution) == (2, 18, 6)
    assert plan.effective_batch_size == 12 and plan.total_optimizer_steps == 3
    assert experiment.model.gradient_accumulation_steps == 1  # tfbert's own accumulation is off
    assert int(experiment.model._steps_per_execution.numpy()) == 6
    assert ("set_gradient_accumulation_options",
            {"gradient_accumulation_steps_per_replica": 3, "gradient_accumulation_reduction_method": "mean"}) in stand_in_ipu
    features, labels = experiment.train_dataset.element_spec
    assert all(spec.shape.as_list() == [2, 32] for spec in features.values()) and labels.shape.as_list() == [2]


def test_ipu_options_are_set_again_on_a_loaded_model(stand_in_ipu, tiny_config):
    """The SDK's options are not saved with a model: apply_ipu_options after every load."""
    from tfbert.distribute.ipu import apply_ipu_options
    from tfbert.run.experiment import build_experiment
    from tfbert.modeling.saving import load_pretrained, save_pretrained

    config = tiny_config("training.gradient_accumulation_steps=4")
    experiment = build_experiment(config)
    path = save_pretrained(experiment.output_dir / "model", experiment.model, experiment.tokenizer, config,
                           experiment.label_names)
    loaded = load_pretrained(path).model
    apply_ipu_options(loaded, 4, DistributionConfig())
    assert stand_in_ipu[-1] == ("set_gradient_accumulation_options",
                                {"gradient_accumulation_steps_per_replica": 4, "gradient_accumulation_reduction_method": "mean"})


def test_ipu_pipelining_assigns_embeddings_encoder_layers_and_head(stand_in_ipu, tiny_config):
    from tfbert.run.experiment import build_experiment

    config = tiny_config("data.padding=max_length", "training.per_device_train_batch_size=3",
                         "training.gradient_accumulation_steps=4", "distribution.ipus_per_replica=2",
                         "distribution.pipeline_splits=[1]", "distribution.pipeline_schedule=interleaved")
    strategy = distribute.choose_strategy("ipu", config.distribution, log=lambda *_: None)
    experiment = build_experiment(config, strategy)
    pipelined, standard = experiment.model, distribute.serving_model(experiment.model)
    assert pipelined is not standard and standard.name == "sequence_classifier"
    # The unrolled model computes the standard model's logits with the same variables.
    features, _ = next(iter(experiment.train_dataset))
    np.testing.assert_allclose(pipelined(features, training=False), standard(features, training=False), atol=1e-5)
    assert {id(v) for v in pipelined.trainable_variables} == {id(v) for v in standard.trainable_variables}

    stages = dict(next(c[1] for c in stand_in_ipu if c[0] == "set_pipeline_stage_assignment"))
    assert stages["embeddings"] == 0 and stages["layer_0"] == 0 and stages["layer_1"] == 1
    assert stages["classifier_dropout"] == stages["classifier"] == 1
    ordered = [s for _, s in next(c[1] for c in stand_in_ipu if c[0] == "set_pipeline_stage_assignment")]
    assert ordered == sorted(ordered)  # stages never go backwards along the graph
    options = next(c[1] for c in stand_in_ipu if c[0] == "set_pipelining_options")
    assert options == {"gradient_accumulation_steps_per_replica": 4, "device_mapping": [0, 1],
                       "pipeline_schedule": _Schedule.Interleaved, "gradient_accumulation_reduction_method": "mean"}
    assert experiment.plan.steps_per_execution == 4 and experiment.plan.batches_per_epoch == 12


def test_ipu_pipelining_refuses_a_task_without_a_pooled_head(stand_in_ipu, tiny_config, tmp_path):
    """NER has layers named like the classifier's, but no pooled vector to unroll: one line, before building."""
    from tfbert.run.experiment import build_experiment

    conll = tmp_path / "ner.conll"
    conll.write_text("Alice\tB-PER\nlives\tO\nin\tO\nParis\tB-LOC\n\nBob\tB-PER\nsmiles\tO\n\n", encoding="utf-8")
    config = tiny_config("task.type=token_classification", f"data.train_file={conll}", "data.format=conll",
                         "data.validation_split=0", "data.padding=max_length", "training.metric_for_best_model=loss",
                         "distribution.ipus_per_replica=2", "distribution.pipeline_splits=[1]",
                         "training.gradient_accumulation_steps=4", "data.column_names=null", "data.has_header=true")
    strategy = distribute.choose_strategy("ipu", config.distribution, log=lambda *_: None)
    with pytest.raises(ConfigError, match=r"task.type token_classification cannot be pipelined"):
        build_experiment(config, strategy)
