"""A killed run resumes where it stopped and ends as the uninterrupted run would.

Real kills: `tests/kill_driver.py` runs `tools/train.py` in a subprocess and sends itself SIGKILL
(or SIGTERM) at a chosen step or inside a backup write. The model is the tiny BERT without
dropout, so an uninterrupted run and a killed-and-resumed one must reach the same weights; the
final backups (model and optimizer at the last update) are compared variable by variable.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, write_spam_tsv
from tfbert.rundir import read_state

TOLERANCE = 1e-5
EPOCHS = 3
STEPS_PER_EPOCH = 11  # 36 training examples (48 - 25% validation) in batches of 4, bucketed


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_nodrop_model_dir):
    tmp = tmp_path_factory.mktemp("resume")
    model_dir = tiny_nodrop_model_dir
    data = write_spam_tsv(tmp / "spam.tsv")
    return tmp, [
        f"model.name_or_path={model_dir}", f"data.train_file={data}", "data.has_header=false",
        "data.column_names=[label, text]", "data.validation_split=0.25", "data.max_seq_length=32",
        "model.classifier_dropout=0", f"training.num_train_epochs={EPOCHS}", "training.per_device_train_batch_size=4",
        "optimizer.learning_rate=1e-3", "optimizer.warmup_ratio=0.1", "training.save_steps=2",
        "training.early_stopping_patience=5", "export.at_end=false", "training.verbose=0",
    ]


def run(overrides: list[str], kill_at: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "KILL_AT")}
    # The runs' weights are compared to 1e-5: deterministic kernels (they seed themselves: training.seed).
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", TF_DETERMINISTIC_OPS="1")
    if kill_at:
        env["KILL_AT"] = kill_at
    args = [a for o in overrides for a in ("--set", o)]
    return subprocess.run([sys.executable, str(ROOT / "tests" / "kill_driver.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def final_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """Model and optimizer variables of the run's newest backup (the state after the last update)."""
    import tensorflow as tf

    backups = sorted((run_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    reader = tf.train.load_checkpoint(str(backups[-1] / "ckpt"))
    names = [n for n, _ in tf.train.list_variables(str(backups[-1] / "ckpt")) if n.startswith(("model/", "optimizer/"))]
    return {n: reader.get_tensor(n) for n in names}


def tensorboard_epochs(run_dir: Path) -> list[int]:
    import tensorflow as tf

    steps = []
    for path in sorted((run_dir / "logs" / "train").glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            steps += [event.step for value in event.summary.value if value.tag == "epoch_loss"]
    return sorted(set(steps)), len(steps)


@pytest.fixture(scope="module")
def reference(recipe):
    """Uninterrupted runs (accumulation 1 and 2): the weights every resumed run must reach."""
    tmp, overrides = recipe
    weights = {}
    for accumulation in (1, 2):
        out = tmp / f"reference-acc{accumulation}"
        result = run(overrides + [f"training.gradient_accumulation_steps={accumulation}", f"training.output_dir={out}"])
        assert result.returncode == 0, result.stderr[-3000:]
        weights[accumulation] = final_weights(out)
    return weights


@pytest.mark.parametrize("kill_at,accumulation,expected_step", [
    # epoch 2, batch 6: the last backup is from 2 updates earlier. `slow`: mid-accumulation below is
    # also a kill in the middle of epoch 2, and the other two cases resume without accumulation.
    pytest.param("step:17", 1, 15, marks=pytest.mark.slow, id="mid-epoch"),
    pytest.param("step:15", 2, 6, id="mid-accumulation"),   # 15 micro-batches = 7.5 updates
    pytest.param("write:3", 1, 4, id="during-checkpoint-write"),  # SIGKILL inside the 3rd backup write: no step-6
    pytest.param("step:11", 1, 10, id="end-of-epoch"),   # on the epoch's last batch, before validation ran
])
def test_killed_run_resumes_to_the_same_weights(recipe, reference, kill_at, accumulation, expected_step):
    tmp, overrides = recipe
    out = tmp / f"killed-{kill_at.replace(':', '')}-acc{accumulation}"
    config = overrides + [f"training.gradient_accumulation_steps={accumulation}", f"training.output_dir={out}"]
    killed = run(config, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "run_summary.json").exists()

    resumed = run(config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    total = EPOCHS * STEPS_PER_EPOCH // accumulation
    line = next(l for l in resumed.stdout.splitlines() if l.startswith("resuming at step"))
    assert line.startswith(f"resuming at step {expected_step} of {total} ")
    expected = reference[accumulation]
    got = final_weights(out)
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, atol=TOLERANCE, rtol=0, err_msg=name)
    # each epoch logged once, in order; TensorBoard has a point for every epoch
    history = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    assert len((out / "metrics.csv").read_text().splitlines()) == EPOCHS + 1
    assert tensorboard_epochs(out)[0] == list(range(EPOCHS))
    # nothing half-written is left behind
    assert not list((out / "checkpoints").glob(".*"))
    assert json.loads((out / "run_summary.json").read_text())["output_dir"] == str(out)


def test_sigterm_writes_a_backup_and_the_rerun_finishes_the_same(recipe, reference):
    tmp, overrides = recipe
    out = tmp / "sigterm"
    config = overrides + ["training.save_steps=epoch", f"training.output_dir={out}"]
    stopped = run(config, "term:14")
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    err = [l for l in stopped.stderr.splitlines() if l.startswith("error:")]
    assert err == [f"error: stopped by SIGTERM at step 14 of 33; backup written to {out}/checkpoints/step-14; "
                   "rerun the same command to resume"]
    assert "Traceback" not in stopped.stderr
    resumed = run(config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at step 14 of 33 (epoch 2, batch 3)" in resumed.stdout
    for name, value in reference[1].items():
        np.testing.assert_allclose(final_weights(out)[name], value, atol=TOLERANCE, rtol=0, err_msg=name)


def test_finished_run_refuses_and_changed_config_refuses(recipe, reference):
    tmp, overrides = recipe
    finished = tmp / "reference-acc1"
    again = run(overrides + ["training.gradient_accumulation_steps=1", f"training.output_dir={finished}"])
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"error: config key 'training.output_dir': {finished} already holds a finished run; choose another "
        "directory or set training.overwrite_output_dir=true")

    out = tmp / "changed"
    config = overrides + [f"training.output_dir={out}"]
    assert run(config, "step:9").returncode == -signal.SIGKILL
    changed = run(config + ["optimizer.learning_rate=5e-4", "training.per_device_train_batch_size=2",
                            "training.save_total_limit=3"])
    assert changed.returncode == 2
    line = changed.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: config key 'training.resume': cannot resume {out}: the config differs in "
                           "optimizer.learning_rate, training.per_device_train_batch_size (")
    never = run(config + ["training.resume=never"])
    assert never.returncode == 2 and "holds an unfinished run (backup step-8)" in never.stderr
    # an explicit backup continues into a new directory
    elsewhere = tmp / "elsewhere"
    moved = run(overrides + [f"training.output_dir={elsewhere}", f"training.resume={out}/checkpoints/step-8"])
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "resuming at step 8 of 33 (epoch 1, batch 8)" in moved.stdout
    for name, value in reference[1].items():
        np.testing.assert_allclose(final_weights(elsewhere)[name], value, atol=TOLERANCE, rtol=0, err_msg=name)


# ---------------------------------------------------------------------------- in-process units


def test_config_differences_ignore_where_and_how_a_run_reports(tiny_config):
    from tfbert.run.start import config_differences

    a = tiny_config()
    b = tiny_config("training.output_dir=/elsewhere", "training.verbose=2", "training.save_steps=7",
                    "export.at_end=false", "distribution.strategy=mirrored")
    assert config_differences(a, b) == []
    c = tiny_config("training.seed=1", "data.max_seq_length=24")
    assert config_differences(a, c) == ["data.max_seq_length", "training.seed"]


def test_unfinished_run_without_backup_starts_again_and_foreign_dirs_are_refused(tiny_config, tmp_path):
    from tfbert.errors import ConfigError
    from tfbert.run.start import plan_start

    config = tiny_config()
    out = Path(config.training.output_dir)
    out.mkdir()
    (out / "config.yaml").write_text(config.to_yaml())
    assert plan_start(config).clear and not plan_start(config).resuming
    foreign = tiny_config(f"training.output_dir={tmp_path / 'mine'}")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    with pytest.raises(ConfigError, match="holds files that are not a tfbert run"):
        plan_start(foreign)


def test_disk_full_during_a_backup_is_one_line_and_keeps_the_last_good_backup(tiny_config, monkeypatch, capsys):
    import errno

    import tensorflow as tf

    from tfbert.cli import common
    from tfbert.training import backup
    from tfbert.run.trainer import train

    config = tiny_config("training.save_steps=2", "training.num_train_epochs=2", "export.at_end=false")
    out = Path(config.training.output_dir)
    writes = {"n": 0}
    original = tf.train.Checkpoint.write

    def full_disk(self, prefix, *args, **kwargs):
        writes["n"] += 1
        if writes["n"] == 3:
            original(self, prefix, *args, **kwargs)  # partly written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, prefix, *args, **kwargs)

    monkeypatch.setattr(tf.train.Checkpoint, "write", full_disk)
    code = common.run(lambda _: train(config, log=lambda *_: None) and 0, [])
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in stderr
    assert err == [f"error: {out}/checkpoints/step-6: could not write a backup (No space left on device); the last "
                   f"good backup is {out}/checkpoints/step-4; free space and rerun the same command to resume"]
    assert [p.name for p in backup.list_backups(out)] == ["step-2", "step-4"]
    assert not list((out / "checkpoints").glob(".*"))
    assert read_state(out / "checkpoints" / "step-4")["global_step"] == 4


def test_nan_loss_stops_at_that_step_and_keeps_the_last_good_backup(tiny_config, monkeypatch, capsys):
    import tensorflow as tf

    from tfbert.cli import common
    from tfbert.tasks.sequence_classification import task as sequence_classification
    from tfbert.run.trainer import train

    config = tiny_config("training.save_steps=1", "export.at_end=false")
    out = Path(config.training.output_dir)
    compile_args = sequence_classification.SequenceClassification.compile_args

    def poisoned(self):
        args = compile_args(self)
        loss = args["loss"]
        calls = tf.Variable(0, trainable=False)

        def nan_from_the_4th_batch(y_true, y_pred):
            value = loss(y_true, y_pred)
            return tf.where(calls.assign_add(1) >= 4, tf.constant(np.nan, value.dtype), value)

        args["loss"] = nan_from_the_4th_batch
        return args

    monkeypatch.setattr(sequence_classification.SequenceClassification, "compile_args", poisoned)
    code = common.run(lambda _: train(config, log=lambda *_: None) and 0, [])
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and "Traceback" not in stderr
    assert err[0].startswith(f"error: training loss became nan at step 4 (epoch 1, batch 4); last good backup: "
                             f"{out}/checkpoints/step-3; try a lower optimizer.learning_rate")
    assert read_state(out / "checkpoints" / "step-3")["global_step"] == 3


def test_float16_overflow_is_absorbed_by_the_loss_scale(tiny_config, monkeypatch):
    import tf_keras

    from tfbert.training import optimization
    from tfbert.run.trainer import train

    made = {}
    original = optimization.make_optimizer

    def huge_initial_scale(*args, **kwargs):
        optimizer = original(*args, **kwargs)
        # 2**40 overflows float16 gradients on the first steps: those updates are skipped and the
        # scale halves each time, but the run goes on.
        assert isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
        optimizer._loss_scale._current_loss_scale.assign(2.0 ** 40)
        made["optimizer"] = optimizer
        return optimizer

    monkeypatch.setattr("tfbert.training.compile.make_optimizer", huge_initial_scale)
    config = tiny_config("precision.policy=mixed_float16", "export.at_end=false")
    summary = train(config, log=lambda *_: None)
    assert np.isfinite(summary["eval"]["loss"])
    assert float(made["optimizer"].loss_scale) < 2.0 ** 40
