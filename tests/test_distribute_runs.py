"""Real `fit` runs under MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy (2 local
workers), each compared with a single-device run of the same global batch.

Runs use a tiny BERT without dropout (dropout masks differ per replica) and static shapes, with
gradient accumulation 2, so the comparison also covers accumulation under each strategy.
Tolerance: per-epoch training and validation losses agree to 1e-5 (observed: equal to ~1e-7).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, write_spam_tsv

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_nodrop_model_dir):
    """`--set` overrides shared by every run: tiny dropout-free BERT, spam data, accumulation 2."""
    tmp = tmp_path_factory.mktemp("dist")
    model_dir = tiny_nodrop_model_dir
    data = write_spam_tsv(tmp / "spam.tsv")
    return tmp, [
        f"model.name_or_path={model_dir}", f"data.train_file={data}", "data.has_header=false",
        "data.column_names=[label, text]", "data.validation_split=0.25", "data.max_seq_length=32",
        "data.padding=max_length", "model.classifier_dropout=0", "training.num_train_epochs=2",
        "training.gradient_accumulation_steps=2", "optimizer.learning_rate=1e-3", "training.verbose=0",
    ]


def losses(run_dir: Path) -> dict[str, list[float]]:
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {key: [h[key] for h in history] for key in ("loss", "val_loss")}


@pytest.fixture(scope="module")
def single_device(recipe) -> dict[str, list[float]]:
    """The reference: one device, global batch 8 (2 replicas x 4 in the distributed runs)."""
    from tfbert.config import load_config
    from tfbert.run.trainer import train

    tmp, overrides = recipe
    out = tmp / "single"
    train(load_config(None, overrides + ["training.per_device_train_batch_size=8", "export.at_end=false",
                                         "training.tensorboard=false", f"training.output_dir={out}"]),
          log=lambda *_: None)
    return losses(out)


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    # Losses are compared across runs and workers: deterministic kernels (runs seed themselves).
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", TF_DETERMINISTIC_OPS="1", **extra)
    return env


def _args(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


def test_mirrored_on_two_logical_cpus_matches_one_device(recipe, single_device):
    # Logical CPU devices must exist before TensorFlow starts: a fresh process, as tools/train.py is.
    tmp, overrides = recipe
    out = tmp / "mirrored"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), "--strategy", "mirrored", *_args(overrides + [
            "distribution.devices=[/cpu:0, /cpu:1]", "training.per_device_train_batch_size=4",
            "export.at_end=false", "training.tensorboard=false", f"training.output_dir={out}"])],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "micro-batch 4 x 2 replica(s) x 2 accumulation = 16 per update on mirrored" in result.stdout
    mirrored = losses(out)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(mirrored[key], single_device[key], atol=TOLERANCE, rtol=0, err_msg=key)


def test_two_local_workers_match_one_device_and_only_the_chief_writes(recipe, single_device):
    tmp, overrides = recipe
    out = tmp / "multiworker"
    scratch = tmp / "worker-tmp"  # where non-chief workers put (and must remove) their scratch output
    scratch.mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "launch_local.py"), "--workers", "2", "--", *_args(overrides + [
            "training.per_device_train_batch_size=4", "training.tensorboard=true", f"training.output_dir={out}"])],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env(TMPDIR=str(scratch)),
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "[worker 0] plan:" in result.stdout and "[worker 1] plan:" not in result.stdout
    assert "stopped sending heartbeats" not in result.stdout  # the final barrier keeps teardown clean
    multiworker = losses(out)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(multiworker[key], single_device[key], atol=TOLERANCE, rtol=0, err_msg=key)
    # One writer: two epochs logged once, each checkpoint once, one model and export, scratch gone.
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-2", "step-4"]
    assert (out / "saved_model" / "saved_model.pb").is_file() and (out / "model" / "labels.json").is_file()
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    assert not [p for p in scratch.iterdir() if p.name.startswith("tfbert-worker")]
    assert json.loads((out / "run_summary.json").read_text())["output_dir"] == str(out)


@pytest.mark.slow  # kill and resume are checked on one device (tests/test_resume.py) and with a killed
# multiworker worker below (two replicas); this adds MirroredStrategy's two replicas in one process.
def test_mirrored_run_killed_mid_epoch_resumes_to_the_same_losses(recipe, single_device):
    tmp, overrides = recipe
    out = tmp / "mirrored-killed"
    command = [sys.executable, str(ROOT / "tests" / "kill_driver.py"), "--strategy", "mirrored", *_args(overrides + [
        "distribution.devices=[/cpu:0, /cpu:1]", "training.per_device_train_batch_size=4", "training.save_steps=1",
        "export.at_end=false", "training.tensorboard=false", f"training.output_dir={out}"])]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env(KILL_AT="step:7"))
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # 4 batches per epoch, 2 per update: the last backup before micro-batch 7 is update 3
    assert "resuming at step 3 of 4 (epoch 2, batch 2)" in resumed.stdout
    for key in ("loss", "val_loss"):
        got = losses(out)[key]
        # the interrupted epoch's training loss averages only the batches after the resume
        compare = got[:1] if key == "loss" else got
        np.testing.assert_allclose(compare, single_device[key][:len(compare)], atol=TOLERANCE, rtol=0, err_msg=key)


def test_killed_worker_stops_the_other_and_both_resume_from_the_same_step(recipe, single_device):
    tmp, overrides = recipe
    out = tmp / "multiworker-killed"
    scratch = tmp / "worker-tmp-killed"
    scratch.mkdir()
    command = [sys.executable, str(ROOT / "tools" / "launch_local.py"), "--workers", "2",
               "--script", str(ROOT / "tests" / "kill_driver.py"), "--", *_args(overrides + [
                   "training.per_device_train_batch_size=4", "training.save_steps=1", "export.at_end=false",
                   f"training.output_dir={out}"])]
    killed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env=_env(KILL_AT="step:6", KILL_WORKER="1", TMPDIR=str(scratch)))
    assert killed.returncode != 0
    # the survivor says why it stops, in one line, instead of a collective-ops traceback
    assert "[worker 0] error: multiworker training stopped:" in killed.stdout, killed.stdout[-3000:]
    assert "[worker 0] Traceback" not in killed.stdout
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                             env=_env(TMPDIR=str(scratch)))
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert "[worker 0] resuming at step 3 of 4 (epoch 2, batch 2)" in resumed.stdout
    assert json.loads((out / "run_summary.json").read_text())["output_dir"] == str(out)
    assert [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    np.testing.assert_allclose(losses(out)["val_loss"], single_device["val_loss"], atol=TOLERANCE, rtol=0)
    assert not [p for p in scratch.iterdir() if p.name.startswith("tfbert-worker")]
