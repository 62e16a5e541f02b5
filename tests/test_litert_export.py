"""LiteRT export (`tools/export.py --format litert`): the same outputs as the SavedModel, for every task.

The ``.tflite`` model takes token ids; `tfbert.deploy.artefact.open_serving_module` wraps it in the
task's serving module, so its ``serve_text`` must give the SavedModel's ``serving_default`` outputs
(labels and probabilities, NER entities, QA answers) for the same raw strings.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_onnx_export import TASKS, TEXTS, keras_outputs, task_experiments, text_inputs, token_batches  # noqa: F401


#: Each conversion takes tens of seconds: the default suite converts one model per serving module
#: kind (labels, entities, answers); the pair and multi-label models convert with --run-slow.
DEFAULT_TASKS = ("classification", "ner", "qa")
CASES = [pytest.param(name, marks=() if name in DEFAULT_TASKS else pytest.mark.slow) for name in TASKS]


class _Exports(dict):
    """(SavedModel, LiteRT export) per task, each made when a test first asks for it."""

    def __init__(self, experiments: dict, out):
        super().__init__()
        self.experiments, self.out = experiments, out

    def __missing__(self, name: str):
        import tfbert
        from tfbert.deploy.litert import export_litert

        e, out = self.experiments[name], self.out / name
        self[name] = (tfbert.export_saved_model(e.model, e.tokenizer, e.label_names, out / "saved_model",
                                                config=e.config),
                      export_litert(e.model, e.tokenizer, e.config, e.label_names, out / "litert"))
        return self[name]


@pytest.fixture(scope="module")
def exports(task_experiments, tmp_path_factory) -> dict:
    return _Exports(task_experiments, tmp_path_factory.mktemp("litert"))


@pytest.mark.parametrize("name", CASES)
def test_litert_logits_with_dynamic_shapes(name, task_experiments, exports):
    from tfbert.deploy.litert import interpreter_class

    experiment, (_, path) = task_experiments[name], exports[name]
    interpreter = interpreter_class()(model_path=str(path))
    runner = interpreter.get_signature_runner()
    # One signature, token ids in with dynamic batch and length: each call below has another shape.
    assert list(interpreter.get_signature_list()) == ["serving_default"]
    for features in token_batches(name, experiment):
        got = runner(**{k: v.astype(np.int32) for k, v in features.items()})
        want = keras_outputs(experiment, features)
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", CASES)
def test_litert_serves_what_the_saved_model_serves(name, exports):
    import tensorflow as tf

    from tfbert.deploy.runtime import open_serving_module
    from tfbert.serving.base import SIGNATURE_TEXT, load_saved_model

    saved, litert = exports[name]
    inputs = {k: tf.constant(v) for k, v in text_inputs(name).items()}
    want = load_saved_model(saved).signatures[SIGNATURE_TEXT](**inputs)
    module = open_serving_module(litert)
    got = module.serve_text(*(inputs[spec.name] for spec in module.text_specs()))
    assert set(got) == set(want)
    for key, value in want.items():
        value, other = value.numpy(), got[key].numpy()
        assert other.shape == value.shape, key
        if value.dtype.kind in "fc":
            np.testing.assert_allclose(other, value, atol=1e-4, rtol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(other, value, err_msg=key)


def test_predict_runs_the_litert_file(task_experiments, exports, capsys):
    from tfbert.cli import predict

    saved, litert = exports["qa"]
    args = ["--json", "--question", QUESTION, "--context", CONTEXT_TEXT]
    runs = []
    for path in (saved, litert):
        assert predict.main(["--model", str(path), *args]) == 0
        runs.append(json.loads(capsys.readouterr().out.strip()))
    assert runs[0]["answer"] == runs[1]["answer"]
    assert (litert.parent / "tokenizer.json").is_file()


QUESTION = "Where is the tower?"
CONTEXT_TEXT = "The Eiffel Tower is a wrought-iron lattice tower in Paris."
