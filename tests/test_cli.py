"""Command-line tools: bad input stops with one clear line and exit code 2, nothing half-written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfbert.cli import common
from tfbert.cli import evaluate as evaluate_cli
from tfbert.cli import train as train_cli

ROOT = Path(__file__).resolve().parents[1]


def run_cli(main, argv, capsys):
    code = common.run(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def base_args(tiny_model_dir, train_file, out):
    return ["--set", f"model.name_or_path={tiny_model_dir}", "--set", f"data.train_file={train_file}",
            "--set", "data.has_header=false", "--set", "data.column_names=[label, text]",
            "--set", "training.num_train_epochs=1", "--set", "training.per_device_train_batch_size=8",
            "--set", "training.verbose=0", "--set", "training.tensorboard=false",
            "--set", f"training.output_dir={out}", "--set", "data.max_seq_length=16"]


@pytest.mark.parametrize("case,pattern", [
    ("missing_file", r"^error: .*nope\.tsv: data file not found$"),
    ("missing_column", r"^error: .*spam\.tsv: no column 'sentence'; the file has columns \['label', 'text'\]$"),
    ("empty_text", r"^error: .*bad\.tsv, row 2: empty text in column 'text'$"),
    ("undecodable", r"^error: .*bad\.tsv, line 1: not valid UTF-8 \(byte 0xe9 at column 8\); re-encode the file as UTF-8$"),
    ("unknown_key", r"^error: unknown config key 'training.epochs' \(did you mean 'num_train_epochs'\?\)"),
    ("unknown_label", r"^error: .*test\.tsv, row 1: unknown label 'eggs' in column 'label'; expected one of \['ham', 'spam'\]$"),
    ("num_labels", r"^error: config key 'task.num_labels': 3 disagrees with the 2 labels found in"),
])
def test_train_bad_input(case, pattern, tiny_model_dir, spam_file, tmp_path, capsys):
    out = tmp_path / "run"
    args = base_args(tiny_model_dir, spam_file, out)
    bad = tmp_path / "bad.tsv"
    if case == "missing_file":
        args += ["--set", f"data.train_file={tmp_path / 'nope.tsv'}"]
    elif case == "missing_column":
        args += ["--set", "data.text_column=sentence"]
    elif case == "empty_text":
        bad.write_text("ham\thello\nspam\t\n")
        args += ["--set", f"data.train_file={bad}"]
    elif case == "undecodable":
        bad.write_bytes("ham\tcaf".encode() + b"\xe9 au lait\n")
        args += ["--set", f"data.train_file={bad}"]
    elif case == "unknown_key":
        args += ["--set", "training.epochs=3"]
    elif case == "unknown_label":
        test = tmp_path / "test.tsv"
        test.write_text("eggs\thello\n")
        args += ["--set", f"data.test_file={test}"]
    elif case == "num_labels":
        args += ["--set", "task.num_labels=3"]
    code, err = run_cli(train_cli.main, args, capsys)
    assert code == 2
    assert len(err) == 1, err
    import re
    assert re.search(pattern, err[0]), err[0]
    assert not (out / "checkpoints").exists() and not (out / "saved_model").exists()


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tmp_path_factory):
    from tests.conftest import write_spam_tsv

    tmp = tmp_path_factory.mktemp("cli-run")
    data = write_spam_tsv(tmp / "spam.tsv")
    out = tmp / "run"
    args = base_args(tiny_model_dir, data, out) + ["--set", "data.validation_split=0.25", "--set", "export.at_end=false"]
    assert common.run(train_cli.main, args) == 0
    return out


def test_evaluate_writes_json_and_checks_labels(trained_run, tmp_path, capsys):
    import json

    test = tmp_path / "held.tsv"
    test.write_text("ham\tsee you at lunch\nspam\tWIN a FREE prize now\n")
    code = common.run(evaluate_cli.main, ["--model", str(trained_run / "model"), "--file", str(test)])
    assert code == 0
    report = json.loads((trained_run / "eval_held.json").read_text())
    assert report["num_examples"] == 2 and "confusion_matrix" in report
    code, err = run_cli(evaluate_cli.main, ["--model", str(trained_run / "model"), "--file", str(test),
                                            "--set", "task.num_labels=3"], capsys)
    assert code == 2 and len(err) == 1 and "3 disagrees with the checkpoint" in err[0]


def test_continue_from_checkpoint_with_wrong_labels(trained_run, spam_file, tmp_path, capsys):
    args = base_args(trained_run / "model", spam_file, tmp_path / "again") + ["--set", "data.labels=[a, b, c]"]
    code, err = run_cli(train_cli.main, args, capsys)
    assert code == 2 and len(err) == 1 and "'data.labels'" in err[0] and "disagrees with the checkpoint" in err[0]


def test_interrupted_export_leaves_nothing(trained_run, tmp_path, monkeypatch):
    import tensorflow as tf

    from tfbert.cli import export as export_cli

    def broken_save(module, path, signatures=None):
        Path(path, "saved_model.pb").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    target = tmp_path / "export"
    assert common.run(export_cli.main, ["--model", str(trained_run / "model"), "--output", str(target)]) == 130
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]


def test_interrupted_training_keeps_finished_checkpoints(tiny_config):
    import tf_keras

    from tfbert.run.experiment import build_experiment

    class Interrupt(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    experiment = build_experiment(tiny_config("training.num_train_epochs=3"))
    with pytest.raises(KeyboardInterrupt):
        experiment.fit(callbacks=experiment.callbacks() + [Interrupt()])
    from tfbert.rundir import read_state
    from tfbert.training.backup import list_backups

    backups = list_backups(experiment.output_dir)
    assert len(backups) == 1 and read_state(backups[0])["epoch"] == 1  # the end of epoch 1, complete
    assert sorted(p.name for p in backups[0].iterdir()) == ["ckpt.data-00000-of-00001", "ckpt.index",
                                                            "trainer_state.json"]
    assert not list((experiment.output_dir / "checkpoints").glob(".*"))


def test_tools_script_exit_code_in_a_real_process(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--config", str(tmp_path / "none.yaml")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'none.yaml'}: config file not found"
    assert "Traceback" not in result.stderr


def test_help_and_config_errors_never_import_tensorflow(tmp_path):
    """Every tool's --help, and train's config errors and refused output directories, answer before
    TensorFlow, tf_keras or transformers load."""
    code = (
        "import runpy, sys\n"
        "tool, args = sys.argv[1], sys.argv[2:]\n"
        "sys.argv = [tool, *args]\n"
        "try:\n"
        "    runpy.run_path(tool, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        "print(status, sorted(m for m in ('tensorflow', 'tf_keras', 'transformers') if m in sys.modules))\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochs: 3\n")
    runs = [(tool, ["--help"], "0") for tool in
            ("train", "evaluate", "export", "predict", "search", "make_tfrecords", "report")]
    finished = tmp_path / "finished"  # a finished run's directory: refused from its files alone
    finished.mkdir()
    (finished / "config.yaml").write_text("{}\n")
    (finished / "run_summary.json").write_text("{}\n")
    runs += [("train", ["--config", str(bad)], "2"), ("train", ["--set", "optimizer.learning_rate=-1"], "2"),
             ("train", ["--set", f"training.output_dir={finished}"], "2")]
    for tool, args, status in runs:
        result = subprocess.run([sys.executable, "-c", code, str(ROOT / "tools" / f"{tool}.py"), *args],
                                capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert result.stdout.strip().splitlines()[-1] == f"{status} []", (tool, args, result.stdout[-500:],
                                                                           result.stderr[-2000:])
        if status == "2":
            assert result.stderr.strip().splitlines()[-1].startswith("error: "), result.stderr
