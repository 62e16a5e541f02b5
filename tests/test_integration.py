"""Integration: fine-tune the bundled all-MiniLM-L6-v2 on real data from ../shared/data."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SHARED_DATA
from tfbert.config import load_config
from tfbert.training.trainer import train

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not beside the project")


def _sst2_sample(tmp_path: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[Path, Path]:
    with open(SHARED_DATA / "sst2" / "train.tsv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    order = np.random.default_rng(seed).permutation(len(rows))
    paths = []
    for name, index in (("train", order[:n_train]), ("test", order[n_train:n_train + n_test])):
        path = tmp_path / f"sst2_{name}.tsv"
        path.write_text("sentence\tlabel\n" + "".join(f"{rows[i][0]}\t{rows[i][1]}\n" for i in index), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def test_minilm_learns_sst2_sentiment(tmp_path):
    """3,000 SST-2 sentences, 2 epochs: held-out accuracy well above chance (0.5)."""
    train_file, test_file = _sst2_sample(tmp_path, 3000, 1000)
    config = load_config(None, [
        f"data.train_file={train_file}", f"data.test_file={test_file}", "data.text_column=sentence",
        "data.validation_split=0.1", "data.max_seq_length=64",
        "optimizer.learning_rate=1e-4", "optimizer.warmup_ratio=0.1", "optimizer.weight_decay=0.01",
        "training.num_train_epochs=2", "training.verbose=0", "training.tensorboard=false",
        f"training.output_dir={tmp_path / 'run'}", "export.at_end=false",
    ])
    summary = train(config, log=lambda *_: None)
    assert summary["eval"]["split"] == "test"
    assert summary["eval"]["accuracy"] >= 0.80, summary


def test_demo_recipe_meets_the_bar_and_serves_raw_text(tmp_path):
    """The README demo's recipe on SMS spam: accuracy >= 0.985, spam F1 >= 0.94, SavedModel agrees."""
    config = load_config(ROOT / "configs" / "sms_spam_minilm.yaml", [
        f"data.train_file={SHARED_DATA / 'sms_spam' / 'SMSSpamCollection'}",
        f"training.output_dir={tmp_path / 'run'}", "training.verbose=0", "training.tensorboard=false",
    ])
    summary = train(config, log=lambda *_: None)
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert report["num_examples"] == 1115  # stratified 20% of 5,574
    assert report["accuracy"] >= 0.985, report
    assert report["per_class"]["spam"]["f1"] >= 0.94, report

    unseen = (ROOT / "data" / "sms_spam" / "unseen.txt").read_text(encoding="utf-8").splitlines()
    script = (
        "import json, sys, tensorflow_text, tensorflow as tf\n"
        f"m = tf.saved_model.load({summary['saved_model']!r})\n"
        "out = m.signatures['serving_default'](text=tf.constant(json.loads(sys.argv[1])))\n"
        "print(json.dumps([b.decode() for b in out['label'].numpy()]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, json.dumps(unseen)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    labels = json.loads(result.stdout.strip().splitlines()[-1])
    assert labels == ["ham", "spam", "ham", "spam", "ham"]
