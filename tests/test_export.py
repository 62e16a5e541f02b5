"""Export: raw-string SavedModel, both signatures, same predictions in a fresh process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from tfbert.run.experiment import build_experiment
from tfbert.serving.export import SIGNATURE_IDS, SIGNATURE_TEXT, export_saved_model

TEXTS = [
    "WINNER!! You have won a FREE prize, call 09061701461 now",
    "Ok lar... Joking wif u oni...",
    "Café naïve Ångström — μ ≤ ≥ ÷ ± 10°C",
    "zero\u200bwidth and soft\u00adhyphen and BOM\ufeff",
    "中文字符 and 日本語 mixed with English",
    "emoji 😀👍🏽 👨‍👩‍👧 here",
    "UPPER lower MiXeD ﬁnance ß",
    "x" * 300,
    " ".join(["long"] * 400),
    "?",
]

LOAD_AND_RUN = """
import json, sys
import numpy as np
import tensorflow_text  # registers the tokenizer ops before loading
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
args = json.loads(sys.argv[2])
serve = model.signatures["serving_default"]
out = serve(**{k: tf.constant(v) for k, v in args.items()})
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "label": [b.decode() for b in out["label"].numpy()]}))
"""


def python_side_probabilities(experiment, texts, pairs=None):
    """The Python path: Hugging Face tokenizer -> Keras model -> softmax."""
    import tensorflow as tf

    enc = experiment.tokenizer(texts, pairs, truncation=True, max_length=experiment.config.data.max_seq_length,
                               padding=True, return_tensors="np")
    inputs = {k: enc[k].astype(np.int32) for k in experiment.model.input_names}
    return tf.nn.softmax(experiment.model(inputs, training=False)).numpy()


def run_fresh(export_dir: Path, args: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(export_dir), json.dumps(args)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    from tests.conftest import write_spam_tsv
    from tfbert.config import load_config

    tmp = tmp_path_factory.mktemp("export")
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", f"data.train_file={write_spam_tsv(tmp / 'spam.tsv')}",
        "data.has_header=false", "data.column_names=[label, text]", "data.max_seq_length=48",
        f"training.output_dir={tmp / 'run'}",
    ])
    experiment = build_experiment(config)
    from tfbert.tasks.sequence_classification.serving import ClassifierServingModule as Module

    # The serving methods run in Python only while a signature is traced: their calls count traces.
    with mock.patch.object(Module, "serve_text", autospec=True, side_effect=Module.serve_text) as text, \
            mock.patch.object(Module, "serve_token_ids", autospec=True, side_effect=Module.serve_token_ids) as ids:
        path = export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names,
                                  tmp / "saved_model", max_seq_length=48)
    return experiment, path, {"serve_text": text.call_count, "serve_token_ids": ids.call_count}


def test_saved_model_cli_lists_both_signatures(exported):
    _, path, _ = exported
    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run([str(cli), "show", "--dir", str(path), "--all"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"signature_def['{SIGNATURE_TEXT}']" in result.stdout
    assert f"signature_def['{SIGNATURE_IDS}']" in result.stdout
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING" in result.stdout
    assert "outputs['probabilities']" in result.stdout and "outputs['label']" in result.stdout


def test_fresh_process_matches_python_side(exported):
    experiment, path, _ = exported
    served = run_fresh(path, {"text": TEXTS})
    expected = python_side_probabilities(experiment, TEXTS)
    np.testing.assert_allclose(np.array(served["probabilities"]), expected, atol=1e-4)
    names = experiment.label_names
    assert served["label"] == [names[i] for i in expected.argmax(axis=1)]


def test_token_id_signature_matches(exported):
    import tensorflow as tf

    from tfbert.serving.export import load_saved_model

    experiment, path, traces = exported
    enc = experiment.tokenizer(TEXTS[:4], truncation=True, max_length=48, padding=True, return_tensors="np")
    loaded = load_saved_model(path)
    out = loaded.signatures[SIGNATURE_IDS](**{k: tf.constant(enc[k].astype(np.int32))
                                              for k in experiment.model.input_names})
    np.testing.assert_allclose(out["probabilities"].numpy(), python_side_probabilities(experiment, TEXTS[:4]),
                               atol=1e-4)
    assert (path / "assets.extra" / "labels.txt").read_text().split() == experiment.label_names
    # The export holds the signatures and the model's weights once, not the Keras model's object graph.
    assert not hasattr(loaded, "model")
    assert sorted(v.name for v in loaded.model_variables) == sorted(v.name for v in experiment.model.variables)
    # Each signature was traced once: a tf.function the module tracks is traced again by the save.
    assert traces == {"serve_text": 1, "serve_token_ids": 1}


def test_pair_task_serves_string_pairs(tiny_model_dir, tmp_path):
    from tfbert.config import load_config

    data = tmp_path / "pairs.jsonl"
    rows = [{"premise": f"the cat sat on mat {i}", "hypothesis": f"a cat is {'sitting' if i % 2 else 'flying'}",
             "label": "entailment" if i % 2 else "contradiction"} for i in range(16)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", f"data.train_file={data}", "data.text_column=premise",
        "data.text_pair_column=hypothesis", "data.max_seq_length=16", f"training.output_dir={tmp_path / 'run'}",
    ])
    experiment = build_experiment(config)
    path = export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names, tmp_path / "sm",
                              max_seq_length=16, text_pairs=True)
    premises = [r["premise"] + " and a much longer tail of words" * (i % 3) for i, r in enumerate(rows[:6])]
    hypotheses = [r["hypothesis"] for r in rows[:6]]
    served = run_fresh(path, {"text": premises, "text_pair": hypotheses})
    np.testing.assert_allclose(np.array(served["probabilities"]),
                               python_side_probabilities(experiment, premises, hypotheses), atol=1e-4)
