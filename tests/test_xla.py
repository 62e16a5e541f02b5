"""The training step compiles under XLA and computes what the uncompiled step computes.

TPUs (and IPUs) always compile the step with XLA; there is no TPU here, so this is the check of that
path this machine allows: for every registered task type, ``training.jit_compile: true`` on CPU
builds the same experiment (static shapes: ``packed`` where the task packs, and ``max_length``),
trains a few micro-batches (with gradient accumulation, so both the accumulate and the apply
functions compile, and an update happens in between) and must log the same training loss as the
uncompiled run, and leave the same logits behind. float32 must agree to 1e-5; under mixed
precision XLA fuses the element-wise work around the bfloat16/float16 matmuls differently, so the
two runs round differently and agree only to the 16-bit formats' own resolution. Each case
compiles for tens of seconds, so the default suite runs `DEFAULT` (every task type, padding,
precision and accumulation at least once) and the rest with ``--run-slow``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import save_tiny_bert
from tests.test_learning import LEARNING, task_type_of

#: (entry, padding, precision, accumulation) — every task compiles packed (when it packs) and at
#: max_length; each precision policy compiles at least once.
CASES = [
    ("sequence_classification", "packed", "float32", 2),
    ("sequence_classification", "max_length", "mixed_bfloat16", 1),
    ("sequence_classification", "packed", "mixed_float16", 2),
    ("sequence_classification/pairs", "max_length", "float32", 2),
    ("token_classification", "packed", "float32", 2),
    ("token_classification", "max_length", "mixed_bfloat16", 1),
    ("question_answering", "packed", "float32", 2),
    ("question_answering", "max_length", "mixed_bfloat16", 2),
    ("multi_label_classification", "max_length", "float32", 2),
    ("multi_label_classification", "max_length", "mixed_bfloat16", 1),
    ("text_regression", "packed", "float32", 2),
    ("text_regression", "max_length", "mixed_bfloat16", 1),
]
#: The default suite's share: every task type, packed and max_length, each precision policy and
#: accumulation at least once; the other cases are `slow` (./scripts/test.sh --run-slow).
DEFAULT = {
    ("sequence_classification", "packed", "mixed_float16", 2),
    ("token_classification", "packed", "float32", 2),
    ("question_answering", "max_length", "mixed_bfloat16", 2),
    ("multi_label_classification", "max_length", "float32", 2),
    ("text_regression", "packed", "float32", 2),
}
#: float32: the same kernels in another order; 16-bit: the formats' resolution (bfloat16 has 8
#: significant bits, so ~4e-3 relative), measured differences were ~1e-3 on losses near 1.
TOLERANCE = {"float32": 1e-5, "mixed_bfloat16": 2e-2, "mixed_float16": 5e-3}


@pytest.fixture(scope="module")
def nodrop_dir(tmp_path_factory, bundled_dir) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-xla"), bundled_dir, dropout=False, max_position_embeddings=64)


def test_every_task_type_compiles_here():
    from tfbert.tasks.registry import task_types

    assert {task_type_of(name) for name, *_ in CASES} == set(task_types())


def _run(name: str, padding: str, precision: str, accumulation: int, jit: bool, model_dir: Path, directory: Path):
    """(training losses of each micro-batch, logits on a fixed batch afterwards)."""
    import tf_keras

    from tfbert.config import load_config
    from tfbert.data.pipeline import make_dataset
    from tfbert.run.experiment import build_experiment
    from tfbert.modeling.packed import unpacked_model

    case = LEARNING[name]
    directory.mkdir(parents=True)
    config = load_config(None, [
        f"model.name_or_path={model_dir}", *case.data(directory), f"data.padding={padding}",
        f"data.max_seq_length={case.max_seq_length}", "data.max_examples_per_pack=8",
        "training.per_device_train_batch_size=8", f"training.gradient_accumulation_steps={accumulation}",
        "training.max_steps=2", "training.seed=3", "training.verbose=0", "training.tensorboard=false",
        "training.metric_for_best_model=loss", f"training.output_dir={directory / 'run'}",
        # A small rate and a larger epsilon: Adam divides by sqrt(v) + epsilon, so a weight whose
        # gradient is pure rounding noise (the span head's bias: softmax is shift-invariant) would
        # otherwise move by about the learning rate, differently in the two runs.
        "optimizer.learning_rate=1e-3", "optimizer.adam_epsilon=1e-6", "model.classifier_dropout=0.0",
        f"precision.policy={precision}", f"training.jit_compile={str(jit).lower()}",
    ])
    experiment = build_experiment(config)
    losses = []

    class Record(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    steps = 2 * accumulation
    experiment.model.fit(experiment.train_stream(), epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[Record()])
    assert experiment.model.jit_train_step is jit
    batch = next(iter(make_dataset(experiment.data.splits["validation"], batch_size=16, padding="dynamic",
                                   pad_token_id=experiment.tokenizer.pad_token_id)))[0]
    out = unpacked_model(experiment.model)(batch, training=False)
    logits = [np.asarray(out[k]) for k in sorted(out)] if isinstance(out, dict) else [np.asarray(out)]
    return np.array(losses), logits


def test_default_cases_cover_every_task_padding_and_precision():
    from tfbert.tasks.registry import task_types

    assert DEFAULT <= set(CASES)
    assert {task_type_of(name) for name, *_ in DEFAULT} == set(task_types())
    assert {p for _, p, _, _ in DEFAULT} == {"packed", "max_length"}
    assert {q for _, _, q, _ in DEFAULT} == set(TOLERANCE) and any(a > 1 for *_, a in DEFAULT)


@pytest.mark.parametrize("name, padding, precision, accumulation", [
    pytest.param(*case, id="{}-{}-{}-acc{}".format(*case), marks=() if case in DEFAULT else pytest.mark.slow)
    for case in CASES])
def test_compiled_step_equals_uncompiled(name, padding, precision, accumulation, nodrop_dir, tmp_path):
    plain, plain_logits = _run(name, padding, precision, accumulation, False, nodrop_dir, tmp_path / "plain")
    xla, xla_logits = _run(name, padding, precision, accumulation, True, nodrop_dir, tmp_path / "xla")
    tol = TOLERANCE[precision]
    assert np.all(np.isfinite(plain)) and len(plain) == 2 * accumulation
    np.testing.assert_allclose(xla, plain, rtol=tol, atol=tol)
    for a, b in zip(xla_logits, plain_logits):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
