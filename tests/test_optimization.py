"""Schedule, optimizers, weight-decay exclusions, clipping, gradient accumulation."""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfbert.config import OptimizerConfig
from tfbert.modeling.task_model import TaskModel
from tfbert.training.batch_plan import BatchPlan
from tfbert.errors import ConfigError
from tfbert.training.optimization import WarmupPolynomialDecay, make_optimizer, make_schedule


def test_linear_warmup_then_linear_decay():
    schedule = make_schedule(OptimizerConfig(learning_rate=1.0, warmup_ratio=0.1), total_steps=100)
    values = [float(schedule(s)) for s in (0, 5, 10, 55, 100, 150)]
    assert values == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])


def test_polynomial_power_and_end_rate_and_warmup_steps():
    config = OptimizerConfig(learning_rate=1.0, lr_scheduler_type="polynomial", power=2.0, lr_end=0.1, warmup_steps=10)
    schedule = make_schedule(config, total_steps=110)
    assert float(schedule(60)) == pytest.approx(0.9 * 0.25 + 0.1)
    assert float(schedule(110)) == pytest.approx(0.1)


def test_constant_schedule_and_serialization():
    schedule = make_schedule(OptimizerConfig(learning_rate=2e-5, lr_scheduler_type="constant", warmup_steps=4), 100)
    assert float(schedule(2)) == pytest.approx(1e-5) and float(schedule(90)) == pytest.approx(2e-5)
    again = WarmupPolynomialDecay.from_config(schedule.get_config())
    assert float(again(2)) == pytest.approx(1e-5)


def _toy_variables():
    return [tf.Variable(np.ones((2, 2), np.float32), name="dense/kernel"),
            tf.Variable(np.ones(2, np.float32), name="dense/bias"),
            tf.Variable(np.ones(2, np.float32), name="LayerNorm/gamma")]


def test_adamw_skips_layernorm_and_bias():
    optimizer = make_optimizer(OptimizerConfig(learning_rate=0.1, weight_decay=0.5, lr_scheduler_type="constant"), 10)
    variables = _toy_variables()
    optimizer.apply_gradients(zip([tf.zeros_like(v) for v in variables], variables))
    kernel, bias, gamma = (v.numpy() for v in variables)
    assert (kernel < 1).all()  # decayed by lr * wd even with zero gradient
    assert (bias == 1).all() and (gamma == 1).all()


def test_adam_betas_epsilon_and_global_clipping():
    config = OptimizerConfig(name="adam", learning_rate=0.1, adam_beta1=0.8, adam_beta2=0.99, adam_epsilon=1e-6,
                             max_grad_norm=1.0, lr_scheduler_type="constant")
    optimizer = make_optimizer(config, 10)
    assert isinstance(optimizer, tf_keras.optimizers.Adam) and not isinstance(optimizer, tf_keras.optimizers.AdamW)
    assert optimizer.beta_1 == 0.8 and optimizer.beta_2 == 0.99 and optimizer.epsilon == 1e-6
    assert optimizer.global_clipnorm == 1.0
    assert isinstance(make_optimizer(config, 10, mixed_float16=True), tf_keras.mixed_precision.LossScaleOptimizer)


def _toy_model(accumulation: int, seed: int = 0) -> TaskModel:
    tf_keras.utils.set_random_seed(seed)
    inputs = tf_keras.Input(shape=(4,))
    hidden = tf_keras.layers.Dense(8, activation="tanh")(inputs)
    outputs = tf_keras.layers.Dense(3)(hidden)
    model = TaskModel(inputs=inputs, outputs=outputs, gradient_accumulation_steps=accumulation)
    return model


def _train(accumulation: int, batch_size: int, optimizer, x, y, epochs=1):
    model = _toy_model(accumulation)
    model.compile(optimizer=optimizer, loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("make_opt", [
    lambda: tf_keras.optimizers.SGD(learning_rate=0.5),
    lambda: make_optimizer(OptimizerConfig(learning_rate=0.01, weight_decay=0.01, warmup_steps=1), 4),
], ids=["sgd", "adamw-schedule-clipping"])
def test_accumulation_equals_large_batch(make_opt):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=32)
    big = _train(1, 16, make_opt(), x, y, epochs=2)        # 4 updates of 16
    small = _train(4, 4, make_opt(), x, y, epochs=2)       # 4 updates of 4 micro-batches x 4
    assert big.optimizer.iterations.numpy() == small.optimizer.iterations.numpy() == 4
    for a, b in zip(big.get_weights(), small.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    untouched = _toy_model(1)
    assert not np.allclose(untouched.get_weights()[0], big.get_weights()[0])


def test_accumulation_applies_only_every_n_micro_batches():
    x = np.ones((6, 4), np.float32)
    y = np.zeros(6, np.int64)
    model = _train(4, 1, tf_keras.optimizers.SGD(0.1), x, y)
    assert model.optimizer.iterations.numpy() == 1  # 6 micro-batches -> one update, 2 waiting


def test_batch_plan_arithmetic_and_errors():
    plan = BatchPlan(num_examples=1000, per_replica_batch_size=8, num_replicas=2, gradient_accumulation_steps=4,
                     num_train_epochs=3)
    assert plan.global_batch_size == 16 and plan.effective_batch_size == 64
    assert plan.batches_per_epoch == 63 and plan.total_optimizer_steps == 47
    assert plan.steps_per_epoch_for_fit is None
    half = BatchPlan(num_examples=100, per_replica_batch_size=10, num_train_epochs=1.5)
    assert half.epochs == 2 and half.steps_per_epoch_for_fit == 8
    with pytest.raises(ConfigError, match="larger than the 10 training examples"):
        BatchPlan(num_examples=10, per_replica_batch_size=32, drop_remainder=True)
    with pytest.raises(ConfigError, match="steps_per_execution"):
        BatchPlan(num_examples=10, per_replica_batch_size=5, steps_per_execution=4)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_adam_update_matches_tf_keras(name):
    """The fused dense update (a speed fix) changes no result beyond float rounding."""
    from tfbert.training.optimization import NO_DECAY_NAMES, FusedAdam, FusedAdamW

    config = OptimizerConfig(name=name, learning_rate=1e-2, weight_decay=0.01 if name == "adamw" else 0.0)
    fused = make_optimizer(config, total_steps=10)
    assert isinstance(fused, FusedAdamW if name == "adamw" else FusedAdam)
    stock_cls = tf_keras.optimizers.AdamW if name == "adamw" else tf_keras.optimizers.Adam
    extra = {"weight_decay": config.weight_decay} if name == "adamw" else {}
    stock = stock_cls(learning_rate=make_schedule(config, 10), global_clipnorm=config.max_grad_norm,
                      beta_1=config.adam_beta1, beta_2=config.adam_beta2, epsilon=config.adam_epsilon,
                      jit_compile=False, **extra)
    if name == "adamw":
        stock.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    init = np.random.default_rng(0).normal(size=(20, 6)).astype("float32")
    results = []
    for optimizer in (fused, stock):
        dense, table = tf.Variable(init), tf.Variable(init)
        rng = np.random.default_rng(1)

        @tf.function
        def step(g, rows, opt=optimizer, dense=dense, table=table):
            opt.apply_gradients([(g, dense), (tf.IndexedSlices(rows, tf.constant([1, 4, 4])), table)])

        for _ in range(5):
            step(tf.constant(rng.normal(size=(20, 6)).astype("float32")),
                 tf.constant(rng.normal(size=(3, 6)).astype("float32")))
        results.append((dense.numpy(), table.numpy()))
    assert np.abs(results[1][0] - init).max() > 1e-2  # it trained
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-6)


@pytest.mark.parametrize("weight_decay,decays", [(0.0, False), (0.01, True)])
def test_zero_weight_decay_costs_no_pass_over_the_weights(weight_decay, decays):
    """tf_keras' AdamW multiplies and rewrites every weight each step even when the decay is 0."""
    optimizer = make_optimizer(OptimizerConfig(name="adamw", weight_decay=weight_decay), total_steps=10)
    variable = tf.Variable(np.ones((4, 3), "float32"), name="dense/kernel")
    optimizer.build([variable])

    @tf.function
    def decay():
        optimizer._apply_weight_decay([variable])
        return tf.constant(0)

    ops = {op.type for op in decay.get_concrete_function().graph.get_operations()}
    assert bool(ops & {"AssignVariableOp", "AssignSubVariableOp"}) == decays


# ---------------------------------------------------------------- layer-wise decay and head rate

def _expected_rate(name: str, base: float, decay: float, head: float, num_layers: int = 2) -> float:
    """The rate the issue asks for: head (and pooler) at `head`, layer i at base·d^(L-i), embeddings base·d^(L+1)."""
    block = re.search(r"/layer_(?:\._)?(\d+)/", name)  # tfbert's layer_N, transformers' layer_._N
    if block:
        return base * decay ** (num_layers - int(block.group(1)))
    if "/embeddings/" in name:
        return base * decay ** (num_layers + 1)
    return head


def test_layer_depths_and_multipliers_by_name():
    from tfbert.training.optimization import layer_depth, learning_rate_multipliers

    names = ["bert/embeddings/word_embeddings:0", "bert/layer_3/qkv/kernel:0", "bert/pooler/dense/bias:0",
             "tf_bert_model/bert/embeddings/word_embeddings/weight:0",
             "tf_electra_model/electra/embeddings_project/kernel:0",
             "tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0",
             "tf_distil_bert_model/distilbert/transformer/layer_._5/ffn/lin1/bias:0",
             "tf_bert_model/bert/pooler/dense/kernel:0", "classifier/kernel:0"]
    assert [layer_depth(n, 6) for n in names] == [0, 4, 7, 0, 0, 1, 6, 7, 7]
    # Only names matter: objects with a `name` stand in for the variables.
    fake = [type("V", (), {"name": n})() for n in names]
    factors = [m for _, m in learning_rate_multipliers(
        fake, OptimizerConfig(learning_rate=1e-4, layerwise_lr_decay=0.5, head_learning_rate=1e-3))]
    assert factors == pytest.approx([0.5 ** 7, 0.5 ** 3, 10.0, 0.5 ** 7, 0.5 ** 7, 0.5 ** 6, 0.5, 10.0, 10.0])


def test_multiplier_scales_adam_step_weight_decay_and_sparse_rows():
    config = OptimizerConfig(name="adamw", learning_rate=0.1, weight_decay=0.5, lr_scheduler_type="constant",
                             max_grad_norm=None, head_learning_rate=0.4)
    kernel = tf.Variable(np.ones((2, 2), np.float32))
    table = tf.Variable(np.ones((5, 2), np.float32))
    optimizer = make_optimizer(config, 10, variables=[])
    optimizer.set_learning_rate_multipliers([(kernel, 0.25), (table, 2.0)])
    sparse = tf.IndexedSlices(tf.ones((2, 2)), tf.constant([1, 3]))
    optimizer.apply_gradients([(tf.zeros_like(kernel), kernel), (sparse, table)])
    # Zero gradient: only decoupled decay moves the kernel, by lr·factor·wd.
    np.testing.assert_allclose(kernel.numpy(), 1 - 0.1 * 0.25 * 0.5, rtol=1e-6)
    # Touched rows: decay, then an Adam step of lr·factor; untouched rows: decay only.
    decayed = 1 - 0.1 * 2.0 * 0.5
    np.testing.assert_allclose(table.numpy()[[1, 3]], decayed - 0.2, rtol=1e-5)
    np.testing.assert_allclose(table.numpy()[[0, 2, 4]], decayed, rtol=1e-6)
    with pytest.raises(ValueError, match="variables"):
        make_optimizer(OptimizerConfig(layerwise_lr_decay=0.8), 10)


@pytest.mark.parametrize("variant", ["default", "accumulation", "mixed_float16", "mirrored", "freeze_bottom"])
def test_each_bert_variable_gets_its_rate(variant, tiny_config):
    """One real Adam update of the tiny BERT: each variable moves by its own rate (Adam's first step
    is lr·g/(|g|+ε), so the largest change in a variable is its learning rate)."""
    from tfbert.run.experiment import build_experiment

    base, decay, head = 1e-2, 0.5, 4e-2
    overrides = [f"optimizer.learning_rate={base}", f"optimizer.layerwise_lr_decay={decay}",
                 f"optimizer.head_learning_rate={head}", "optimizer.lr_scheduler_type=constant",
                 "optimizer.name=adamw", "model.pooling=pooler", "model.classifier_dropout=0.0",
                 # A random tiny BERT's gradients can be ~1e-6: keep ε far below them.
                 "optimizer.adam_epsilon=1e-15", "optimizer.max_grad_norm=null"]
    if variant == "accumulation":
        overrides.append("training.gradient_accumulation_steps=2")
    if variant == "mixed_float16":
        overrides.append("precision.policy=mixed_float16")
    if variant == "freeze_bottom":
        overrides += ["training.freeze=bottom", "training.freeze_layers=1"]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"]) if variant == "mirrored" else None
    experiment = build_experiment(tiny_config(*overrides), strategy)
    model = experiment.model
    inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    before = {v.name: v.numpy() for v in model.weights}
    micro = 2 if variant == "accumulation" else 1
    # A float16 step whose scaled gradient overflows is skipped (and the scale halved): go on
    # until exactly one update has been applied.
    for _ in range(6):
        before = {v.name: v.numpy() for v in model.weights}
        model.fit(experiment.train_dataset.repeat(), steps_per_epoch=micro, epochs=1, verbose=0)
        if int(inner.iterations.numpy()) == 1:
            break
    assert int(inner.iterations.numpy()) == 1
    checked = 0
    for variable in model.weights:
        if variable.dtype != tf.float32 or "/key/bias" in variable.name:
            continue  # softmax ignores a bias shared by all keys: its gradient is rounding noise
        change = float(np.abs(variable.numpy() - before[variable.name]).max())
        frozen = variant == "freeze_bottom" and ("/embeddings/" in variable.name or "/layer_0/" in variable.name)
        expected = 0.0 if frozen else _expected_rate(variable.name, base, decay, head)
        assert change == pytest.approx(expected, rel=0.02, abs=1e-7), variable.name
        checked += 1
    assert checked > 30


@pytest.mark.parametrize("override,message", [
    ("optimizer.layerwise_lr_decay=0", "config key 'optimizer.layerwise_lr_decay': must be in (0, 1]"),
    ("optimizer.layerwise_lr_decay=1.2", "config key 'optimizer.layerwise_lr_decay': must be in (0, 1]"),
    ("optimizer.head_learning_rate=-1e-3", "config key 'optimizer.head_learning_rate': must be > 0 or null"),
    ("optimizer.head_learning_rate=fast", "config key 'optimizer.head_learning_rate'"),
])
def test_llrd_and_head_rate_are_validated(override, message):
    from tfbert.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)


def test_model_card_records_llrd_and_head_rate():
    from tfbert.config import load_config
    from tfbert.model_card import hyperparameters

    plain = hyperparameters(load_config(None, []), None)
    assert "layerwise_lr_decay" not in plain and "head_learning_rate" not in plain
    tuned = hyperparameters(load_config(None, ["optimizer.layerwise_lr_decay=0.8",
                                               "optimizer.head_learning_rate=1e-3"]), None)
    assert tuned["layerwise_lr_decay"].startswith("0.8 ") and tuned["head_learning_rate"].startswith("0.001 ")


def test_lazy_embedding_updates_touch_only_the_batch_rows():
    """LazyAdam semantics: rows in the gradient get exactly Adam's update; other rows and their moments
    stay; the dense path (the default) moves every row with momentum."""
    config = OptimizerConfig(name="adam", learning_rate=0.1, lr_scheduler_type="constant", max_grad_norm=None)
    lazy_config = dataclasses.replace(config, lazy_embedding_updates=True)
    start = np.arange(10, dtype=np.float32).reshape(5, 2)
    tables = {}
    for name, cfg in (("dense", config), ("lazy", lazy_config)):
        table = tf.Variable(start.copy())
        optimizer = make_optimizer(cfg, 10)
        first = tf.IndexedSlices(tf.constant([[1.0, -2.0], [0.5, 0.5]]), tf.constant([1, 3]), tf.constant([5, 2]))
        second = tf.IndexedSlices(tf.constant([[3.0, 1.0]]), tf.constant([0]), tf.constant([5, 2]))
        optimizer.apply_gradients([(first, table)])
        optimizer.apply_gradients([(second, table)])
        tables[name] = table.numpy()
    lazy, dense = tables["lazy"], tables["dense"]
    np.testing.assert_array_equal(lazy[[2, 4]], start[[2, 4]])  # never in a batch
    # Rows 1 and 3 moved once (first step: lr * sign), and not again in step 2.
    np.testing.assert_allclose(lazy[[1, 3]], start[[1, 3]] - 0.1 * np.sign([[1.0, -2.0], [0.5, 0.5]]), rtol=1e-5)
    # Row 0's first gradient comes at the optimizer's step 2: its moments start from zero, the bias
    # correction is the global step's (as TensorFlow Addons' LazyAdam).
    g = np.array([3.0, 1.0])
    m, v = 0.1 * g, 0.001 * g ** 2
    step = 0.1 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(lazy[0], start[0] - step, rtol=1e-5)
    assert not np.allclose(dense[[1, 3]], lazy[[1, 3]])  # dense Adam keeps moving them on momentum
