"""Integration: fine-tune the bundled all-MiniLM-L6-v2 on real data.

The demo's recipe runs on the SMS Spam Collection the repository ships (``data/sms_spam``), so it
is checked on every machine; SST-2 needs ``../shared/data`` and is split into whole held-out
sentences by ``scripts/prepare_sst2.py`` (a random row split would put phrases of the test
sentences into training).
"""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BUNDLED_SMS, ROOT, SHARED_DATA
from tfbert.config import load_config
from tfbert.run.trainer import train

SST2 = SHARED_DATA / "sst2" / "train.tsv"


def _sst2_sentence_split(tmp_path: Path, n_train: int, seed: int = 0) -> tuple[Path, Path]:
    """`scripts/prepare_sst2.py`'s split; `n_train` of its training rows drawn with `seed`."""
    spec = importlib.util.spec_from_file_location("prepare_sst2", ROOT / "scripts" / "prepare_sst2.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    out = tmp_path / "sst2"
    assert prepare.main(["--input", str(SST2), "--output", str(out)]) == 0
    with open(out / "train.tsv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    chosen = np.random.default_rng(seed).permutation(len(rows))[:n_train]
    sample = tmp_path / "sst2_train_sample.tsv"
    sample.write_text("sentence\tlabel\n" + "".join(f"{rows[i][0]}\t{rows[i][1]}\n" for i in chosen), encoding="utf-8")
    return sample, out / "validation.tsv"


@pytest.mark.slow
@pytest.mark.skipif(not SST2.is_file(), reason=f"{SST2} is absent")
def test_minilm_learns_sst2_sentiment_on_unseen_sentences(tmp_path):
    """3,000 SST-2 training rows, 2 epochs: accuracy on 1,000 held-out whole sentences well above chance."""
    train_file, test_file = _sst2_sentence_split(tmp_path, 3000)
    config = load_config(None, [
        f"data.train_file={train_file}", f"data.test_file={test_file}", "data.text_column=sentence",
        "data.validation_split=0.1", "data.max_seq_length=64",
        "optimizer.learning_rate=1e-4", "optimizer.warmup_ratio=0.1", "optimizer.weight_decay=0.01",
        "training.num_train_epochs=2", "training.verbose=0", "training.tensorboard=false",
        f"training.output_dir={tmp_path / 'run'}", "export.at_end=false",
    ])
    summary = train(config, log=lambda *_: None)
    assert summary["eval"]["split"] == "test" and summary["eval"]["num_examples"] == 1000
    # Measured 0.849 (AMD EPYC, 2 cores); the full recipe reaches 0.911 on the same held-out sentences.
    assert summary["eval"]["accuracy"] >= 0.80, summary


def test_demo_recipe_meets_the_bar_and_serves_raw_text(tmp_path):
    """The README demo's recipe on the bundled SMS spam data: accuracy >= 0.98, spam F1 >= 0.92, SavedModel agrees.

    One of the recipe's two epochs (the schedule fitted to it): the real-model run of the default
    suite, where training is most of the suite's longest test; the whole recipe is what
    `./scripts/demo.sh` runs (README figures) and `tests/test_recipes.py` trains briefly.
    """
    config = load_config(ROOT / "configs" / "sms_spam_minilm.yaml", [
        f"data.train_file={BUNDLED_SMS}", f"training.output_dir={tmp_path / 'run'}", "training.verbose=0",
        "training.tensorboard=false", "training.num_train_epochs=1",
    ])
    summary = train(config, log=lambda *_: None)
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert report["num_examples"] == 1115  # stratified 20% of 5,574
    # Measured after this one epoch: accuracy 0.987, spam F1 0.952 (AMD EPYC, float32); a constant
    # "ham" scores 0.866 and spam F1 0. The floors leave about five test messages of margin.
    assert report["accuracy"] >= 0.98, report
    assert report["per_class"]["spam"]["f1"] >= 0.92, report
    assert "warning" not in report and "warning" not in summary

    unseen = (ROOT / "data" / "sms_spam" / "unseen.txt").read_text(encoding="utf-8").splitlines()
    # Loaded here: a fresh process without tfbert loads SavedModels in tests/test_export.py.
    import tensorflow as tf

    from tfbert.serving.base import load_saved_model

    out = load_saved_model(summary["saved_model"]).signatures["serving_default"](text=tf.constant(unseen))
    labels = [b.decode() for b in out["label"].numpy()]
    assert labels == ["ham", "spam", "ham", "spam", "ham"]
