"""ONNX export (`tools/export.py --format onnx`): ONNX Runtime's logits equal TensorFlow's for every task.

Each task's tiny model is exported once (session fixture, shared with `tests/test_litert_export.py`);
the ONNX model is then run on batches the Hugging Face tokenizer makes (padded, with pairs and QA
windows) and compared with the Keras model, and `tools/predict.py` runs the export like a SavedModel.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_spam_tsv
from tests.test_question_answering import CONTEXT, squad_file
from tests.test_task_exports import NER_TEXTS

TEXTS = ["WIN a FREE phone now!!!", "Are we still on for dinner at 7?", "", "ok",
         " ".join(f"w{i}" for i in range(60))]  # longer than max_seq_length: truncated
PAIRS = ["second segment", "", "and a much longer second segment with more words", "x", "y z"]
QUESTIONS = ["Where is the tower?", "Who designed it?", "When?"]
CONTEXTS = [CONTEXT, "Gustave Eiffel's company — in Paris, 1889.", "It was completed in 1889."]
TASKS = ("classification", "pair", "multi_label", "ner", "qa")


def _config(name: str, tiny_model_dir: Path, tmp: Path):
    from tfbert.config import load_config

    common = [f"model.name_or_path={tiny_model_dir}", f"training.output_dir={tmp / 'run'}", "training.verbose=0",
              "training.tensorboard=false"]
    if name in ("classification", "pair"):
        data = write_spam_tsv(tmp / "spam.tsv")
        if name == "pair":
            lines = data.read_text(encoding="utf-8").splitlines()
            data.write_text("".join(f"{line}\t{line.split(chr(9))[1][::-1]}\n" for line in lines), encoding="utf-8")
        columns = "[label, text, text_b]" if name == "pair" else "[label, text]"
        return load_config(None, common + [f"data.train_file={data}", "data.has_header=false",
                                           f"data.column_names={columns}", "data.max_seq_length=32"]
                           + (["data.text_pair_column=text_b"] if name == "pair" else []))
    if name == "multi_label":
        from tests.test_multi_label import config_for, write_rows

        return config_for(tiny_model_dir, write_rows(tmp / "ml.tsv"), tmp)
    if name == "ner":
        rows = [{"tokens": ["I", "love", c, "so", "much"], "tags": ["O", "O", "B-LOC", "O", "O"]}
                for c in ["Paris", "Berlin", "New York"]] * 4
        path = tmp / "ner.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return load_config(None, common + ["task.type=token_classification", f"data.train_file={path}",
                                           "data.max_seq_length=24", "training.metric_for_best_model=loss"])
    return load_config(None, common + [
        "task.type=question_answering", f"data.train_file={squad_file(tmp / 'squad.json')}", "data.max_seq_length=48",
        "data.doc_stride=12", "data.max_query_length=12", "task.max_answer_length=8",
        "training.metric_for_best_model=loss"])


@pytest.fixture(scope="session")
def task_experiments(tiny_model_dir, tmp_path_factory) -> dict:
    """Each task's untrained tiny model (`build_experiment`), built once for both runtime test files."""
    from tfbert.run.experiment import build_experiment

    return {name: build_experiment(_config(name, tiny_model_dir, tmp_path_factory.mktemp(f"deploy-{name}")))
            for name in TASKS}


def text_inputs(name: str) -> dict[str, list[str]]:
    """``serving_default``'s inputs for the task."""
    if name == "pair":
        return {"text": TEXTS, "text_pair": PAIRS}
    if name == "qa":
        return {"question": QUESTIONS, "context": CONTEXTS}
    return {"text": NER_TEXTS if name == "ner" else TEXTS}


def token_batches(name: str, experiment) -> list[dict[str, np.ndarray]]:
    """Padded token-id batches as the Hugging Face tokenizer makes them: several texts, and one alone."""
    tokenizer, length = experiment.tokenizer, experiment.config.data.max_seq_length
    names = [n for n in tokenizer.model_input_names if n in experiment.model.input_names]
    inputs = text_inputs(name)
    first, second = (inputs["question"], inputs["context"]) if name == "qa" else (inputs["text"], inputs.get("text_pair"))
    truncation = "only_second" if name == "qa" else True
    batches = []
    for rows in (slice(None), slice(0, 1)):
        enc = tokenizer(first[rows], second[rows] if second else None, truncation=truncation, max_length=length,
                        padding=True, return_tensors="np")
        batches.append({n: enc[n] for n in names})
    return batches


def keras_outputs(experiment, features) -> dict[str, np.ndarray]:
    out = experiment.model({k: v.astype(np.int32) for k, v in features.items()}, training=False)
    return {k: np.asarray(v) for k, v in (out.items() if isinstance(out, dict) else [("logits", out)])}


@pytest.fixture(scope="session")
def onnx_exports(task_experiments, tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from tfbert.deploy.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx")
    return {name: export_onnx(e.model, e.tokenizer, e.config, e.label_names, out / name)
            for name, e in task_experiments.items()}


def assert_runtime_equals_keras(name: str, experiment, path: Path) -> None:
    """ONNX Runtime on `path` gives the Keras model's outputs (1e-4) on the task's padded and single batches."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    assert outputs == (["end_logits", "start_logits"] if name == "qa" else ["logits"])
    for features in token_batches(name, experiment):
        got = dict(zip(outputs, session.run(outputs, {k: v.astype(np.int64) for k, v in features.items()})))
        want = keras_outputs(experiment, features)
        assert set(got) == set(want)
        for key in want:
            assert got[key].shape == want[key].shape
            np.testing.assert_allclose(got[key], want[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", TASKS)
def test_onnx_runtime_logits_equal_tensorflow(name, task_experiments, onnx_exports):
    import onnx

    experiment, path = task_experiments[name], onnx_exports[name]
    model = onnx.load(str(path))
    # Token ids in as int64 [batch, sequence], both axes dynamic and named.
    for value in model.graph.input:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert not {n.op_type for n in model.graph.node} & {"Erfc"}
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx.ml"}  # standard ops only by default
    assert_runtime_equals_keras(name, experiment, path)
    for name_ in ("tokenizer.json", "vocab.txt", "tfbert_config.yaml", "labels.json", "tfbert_deploy.json"):
        assert (path.parent / name_).is_file()


def test_onnx_graph_is_rewritten_into_fused_ops(task_experiments, onnx_exports):
    """tf2onnx alone leaves LayerNorm as ~15 ops and cannot convert TF 2.21's Erfc GELU at all."""
    import onnx

    ops = [n.op_type for n in onnx.load(str(onnx_exports["classification"])).graph.node]
    layers = 2  # the tiny BERT
    assert ops.count("LayerNormalization") == 2 * layers + 1  # per block, plus the embeddings'
    assert ops.count("Erf") == layers and "ReduceMean" not in ops and "GlobalAveragePool" not in ops


@pytest.mark.parametrize("name", TASKS)
def test_fused_attention_gives_the_same_outputs(name, task_experiments, onnx_exports, tmp_path):
    """--optimize: each attention block becomes one com.microsoft.Attention; outputs stay the Keras model's."""
    import onnx

    from tfbert.deploy.onnx_fusion import fuse_attention
    from tfbert.modeling.encoder.layers import MASKED

    model = onnx.load(str(onnx_exports[name]))
    plain_nodes = len(model.graph.node)
    # The tiny BERT has 2 layers; a [CLS] head's last layer computes one query per row (not fused).
    fused = 2 if name in ("ner", "qa") else 1
    assert fuse_attention(model, masked_value=MASKED) == fused
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Attention") == fused and ops.count("Softmax") == 2 - fused
    assert len(ops) <= plain_nodes - 6 * fused  # about 11 nodes per block become 2, plus 3 shared
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "fused.onnx"))
    assert_runtime_equals_keras(name, task_experiments[name], tmp_path / "fused.onnx")


def test_fusion_leaves_a_block_it_does_not_recognise(onnx_exports):
    """The mask must come from the attention_mask input: named otherwise, nothing is fused or changed."""
    import onnx

    from tfbert.deploy.onnx_fusion import fuse_attention

    model = onnx.load(str(onnx_exports["classification"]))
    before = model.SerializeToString()
    assert fuse_attention(model, mask_input="token_type_ids") == 0
    assert fuse_attention(model, mask_input="no_such_input") == 0
    assert model.SerializeToString() == before


def test_predict_runs_the_onnx_export_like_the_saved_model(task_experiments, tmp_path, capsys):
    """tools/export.py --format onnx --optimize on a model directory, then tools/predict.py on the export."""
    pytest.importorskip("tf2onnx")
    import tfbert
    from tfbert.cli import export, predict
    from tfbert.modeling.saving import save_pretrained

    experiment = task_experiments["classification"]
    model_dir = save_pretrained(tmp_path / "model", experiment.model, experiment.tokenizer, experiment.config,
                                experiment.label_names)
    assert export.main(["--model", str(model_dir), "--format", "onnx", "--optimize",
                        "--output", str(tmp_path / "onnx")]) == 0
    assert json.loads((tmp_path / "onnx" / "tfbert_deploy.json").read_text())["fused_attention_blocks"] == 1
    with pytest.raises(SystemExit) as stop:
        export.main(["--model", str(model_dir), "--format", "litert", "--optimize", "--output", str(tmp_path / "x")])
    assert stop.value.code == 2 and not (tmp_path / "x").exists()
    saved = tfbert.export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names,
                                      tmp_path / "sm", config=experiment.config)
    capsys.readouterr()
    runs = {}
    for label, path in (("saved_model", saved), ("onnx", tmp_path / "onnx"), ("file", tmp_path / "onnx" / "model.onnx")):
        assert predict.main(["--model", str(path), "--json", *TEXTS[:3]]) == 0
        runs[label] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for a, b in zip(runs["saved_model"], runs["onnx"]):
        assert a["label"] == b["label"] and a["text"] == b["text"]
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)
    assert runs["onnx"] == runs["file"]


def test_missing_converter_is_one_line(task_experiments, tmp_path, monkeypatch):
    import sys

    from tfbert.deploy.onnx import export_onnx
    from tfbert.errors import ModelError

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    experiment = task_experiments["classification"]
    with pytest.raises(ModelError, match=r"^ONNX export needs the 'tf2onnx' package: pip install -r "
                                         r"requirements-export.txt"):
        export_onnx(experiment.model, experiment.tokenizer, experiment.config, experiment.label_names, tmp_path / "x")
    assert not (tmp_path / "x").exists()
