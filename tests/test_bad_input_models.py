"""Model directories a user can get wrong: exit code 2, one `error:` line naming the path, no traceback."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfbert.cli import common
from tfbert.cli import evaluate as evaluate_cli
from tfbert.cli import export as export_cli
from tfbert.cli import train as train_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finetuned(tiny_model_dir, tmp_path_factory) -> Path:
    """A fine-tuned (format 2) model directory of the tiny model, sequence classification."""
    from tests.conftest import write_spam_tsv
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment
    from tfbert.modeling.saving import save_pretrained

    tmp = tmp_path_factory.mktemp("bad-models")
    data = write_spam_tsv(tmp / "spam.tsv")
    config = load_config(None, [f"model.name_or_path={tiny_model_dir}", f"data.train_file={data}",
                                "data.has_header=false", "data.column_names=[label, text]", "data.max_seq_length=16",
                                "model.pooling=pooler", f"training.output_dir={tmp / 'run'}",
                                "training.metric_for_best_model=loss"])
    experiment = build_experiment(config)
    return save_pretrained(tmp / "run" / "model", experiment.model, experiment.tokenizer, config,
                           experiment.label_names)


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _train_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["--set", f"model.name_or_path={model}", "--set", f"data.train_file={data}",
            "--set", "data.has_header=false", "--set", "data.column_names=[label, text]",
            "--set", "training.verbose=0", "--set", "training.tensorboard=false", "--set", "data.max_seq_length=16",
            "--set", f"training.output_dir={out}"]


def _check(code: int, err: str, path: Path, pattern: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(path) in lines[0], lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err


CASES = ["missing_dir", "pickle_only", "truncated_weights", "truncated_h5_only", "wrong_shape_weights",
         "missing_tokenizer", "num_labels_disagree", "broken_config_json", "truncated_head_file", "not_a_tfbert_dir"]


@pytest.mark.parametrize("case", CASES)
def test_bad_model_directories(case, finetuned, tiny_model_dir, spam_file, tmp_path, capsys):
    out = tmp_path / "run"
    if case == "missing_dir":  # evaluate / export of a model that is not there
        path = tmp_path / "no-such-model"
        code = common.run(evaluate_cli.main, ["--model", str(path)])
        _check(code, capsys.readouterr().err, path, r"model directory not found$")
    elif case == "pickle_only":  # a PyTorch pickle is never loaded, as a backbone or otherwise
        path = tmp_path / "pickle"
        path.mkdir()
        (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
        (path / "pytorch_model.bin").write_bytes(b"\x80\x02not really")
        code = common.run(train_cli.main, _train_args(path, spam_file, out))
        _check(code, capsys.readouterr().err, path, r"only pickle weights .* never unpickles")
    elif case in ("truncated_weights", "truncated_h5_only"):  # an interrupted copy of a fine-tuned model
        path = _copy(finetuned, tmp_path / "truncated")
        # The loader reads model.safetensors first; a directory without one falls back to tf_model.h5.
        weights = path / ("model.safetensors" if case == "truncated_weights" else "tf_model.h5")
        if case == "truncated_h5_only":
            (path / "model.safetensors").unlink()
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
        code = common.run(export_cli.main, ["--model", str(path), "--output", str(tmp_path / "sm")])
        _check(code, capsys.readouterr().err, weights, r": cannot read the weights \(.+\)$")
        assert not (tmp_path / "sm").exists()
    elif case == "wrong_shape_weights":  # tf_model.h5 of a wider model than config.json describes
        path = _copy(tiny_model_dir, tmp_path / "wrong-shape")
        assert not (path / "model.safetensors").exists()  # so tf_model.h5 is the file read
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps(dict(config, hidden_size=64, intermediate_size=128)))
        code = common.run(train_cli.main, _train_args(path, spam_file, out))
        hidden = config["hidden_size"]
        _check(code, capsys.readouterr().err, path / "tf_model.h5",
               rf"tf_model\.h5: embeddings\.word_embeddings\.weight has shape \[{config['vocab_size']}, {hidden}\], "
               rf"but config\.json \(bert, hidden_size 64\) needs \[{config['vocab_size']}, 64\]")
    elif case == "missing_tokenizer":
        path = _copy(finetuned, tmp_path / "no-tokenizer")
        for name in ("tokenizer.json", "vocab.txt"):
            (path / name).unlink()
        code = common.run(evaluate_cli.main, ["--model", str(path), "--file", str(spam_file)])
        _check(code, capsys.readouterr().err, path, r"no tokenizer files")
    elif case == "num_labels_disagree":  # continue fine-tuning a 2-label model as a 3-label one
        code = common.run(train_cli.main, _train_args(finetuned, spam_file, out) + ["--set", "task.num_labels=3"])
        _check(code, capsys.readouterr().err, finetuned, r"'task.num_labels': 3 disagrees with .*2 labels")
    elif case == "broken_config_json":
        path = _copy(finetuned, tmp_path / "broken-config")
        (path / "config.json").write_text("{not json")
        code = common.run(export_cli.main, ["--model", str(path), "--output", str(tmp_path / "sm")])
        _check(code, capsys.readouterr().err, path / "config.json", r"not valid JSON")
    elif case == "truncated_head_file":  # a tfbert-only head whose weights file was cut short
        path = _copy(finetuned, tmp_path / "head")
        manifest = json.loads((path / "tfbert_model.json").read_text())
        (path / "tfbert_model.json").write_text(json.dumps(dict(manifest, head="tfbert")))
        (path / "tfbert_head.safetensors").write_bytes(b"\x10\x00\x00")
        code = common.run(export_cli.main, ["--model", str(path), "--output", str(tmp_path / "sm")])
        _check(code, capsys.readouterr().err, path / "tfbert_head.safetensors", r"head weights")
    elif case == "not_a_tfbert_dir":  # a plain pretrained model is no fine-tuned model to evaluate
        code = common.run(evaluate_cli.main, ["--model", str(tiny_model_dir)])
        _check(code, capsys.readouterr().err, tiny_model_dir, r"not a tfbert model directory")
    assert not (out / "checkpoints").exists()


def test_tools_start_quietly_unless_verbose():
    """No TensorFlow start-up lines (oneDNN, CUDA drivers, cuInit) on stderr unless --verbose."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('common', {str(ROOT / 'tfbert/cli/common.py')!r})\n"
        "common = importlib.util.module_from_spec(spec); spec.loader.exec_module(common)\n"
        "assert 'tensorflow' not in sys.modules  # --help and config errors answer before TensorFlow loads\n"
        "common.quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "tf.config.list_physical_devices(); print(float(tf.constant(1.0) + 1))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFBERT_VERBOSE")}
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "2.0", quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", script, "--verbose"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert loud.returncode == 0 and loud.stderr.strip(), "--verbose should show TensorFlow's own lines"
