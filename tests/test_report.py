"""Step-level logging (steps.jsonl, gradient norm, real tokens/s) and the run report (figures, HTML)."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT

RUN_FIGURES = ["loss", "validation", "optimizer", "throughput", "confusion_matrix", "per_class"]


def _not_blank(path: Path) -> float:
    """Standard deviation of the image's pixels: ~0 for a blank (one-colour) image."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3]
    return float(pixels.std())


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_step_log_counts_every_real_token_and_logs_the_gradient_norm(tiny_config, accumulation):
    import tfbert

    config = tiny_config("training.logging_steps=1", f"training.gradient_accumulation_steps={accumulation}",
                         "optimizer.max_grad_norm=1.0")
    experiment = tfbert.build_experiment(config)
    experiment.fit()
    records = _records(experiment.output_dir / "steps.jsonl")
    updates = experiment.plan.total_optimizer_steps
    assert [r["step"] for r in records] == list(range(1, updates + 1))
    for record in records:
        assert math.isfinite(record["loss"]) and record["loss"] > 0
        assert record["grad_norm"] > 0 and math.isfinite(record["grad_norm"])
        assert 0 < record["padding_efficiency"] <= 1 and record["tokens_per_second"] > 0
        assert record["learning_rate"] > 0
    if accumulation == 1:
        # Every batch of the epoch was logged: its real tokens are exactly the split's tokens.
        assert sum(r["real_tokens"] for r in records) == int(experiment.data.splits["train"].lengths.sum())
    assert (experiment.output_dir / "steps.csv").read_text().splitlines()[0].startswith("step,epoch,learning_rate")


def test_gradient_norm_is_the_norm_that_clipping_sees(tiny_config):
    """The logged norm of one update equals the global norm of that update's gradient."""
    import tensorflow as tf
    import tf_keras
    import tfbert

    config = tiny_config("training.logging_steps=1", "optimizer.max_grad_norm=1.0", "model.classifier_dropout=0.0")
    experiment = tfbert.build_experiment(config)
    model = experiment.model
    batch = next(iter(experiment.train_dataset))
    x, y, _ = tf_keras.utils.unpack_x_y_sample_weight(batch)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=False))
    expected = float(tf.linalg.global_norm([tf.convert_to_tensor(g) for g in
                                            tape.gradient(loss, model.trainable_variables) if g is not None]))
    # One update on that batch, without dropout (inference-mode layers give the same forward pass).
    for layer in model.submodules:
        if isinstance(layer, tf_keras.layers.Dropout):
            layer.rate = 0.0
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    assert model.take_step_stats()["grad_norm"] == pytest.approx(expected, rel=1e-3)


def test_step_log_keeps_only_records_up_to_the_backup():
    from tfbert.training.callbacks import StepLog

    state = {"fit_steps_done": 8, "steps": [{"step": s} for s in range(1, 7)]}
    log = StepLog("unused", logging_steps=1, steps_per_epoch=10, batches_per_update=2, total_steps=20, state=state)
    assert [r["step"] for r in log.steps_state()] == [1, 2, 3, 4]


def test_step_log_estimates_the_run_from_steady_steps(monkeypatch):
    """The first fit step (tracing) is left out of the estimate and the ETA."""
    from tfbert.training import callbacks

    clock = iter([0.0, 30.0, 30.0, 32.0, 32.0, 34.0, 34.0, 36.0])  # begin/end pairs: 30 s, then 2 s steps
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    log = callbacks.StepLog("unused", logging_steps=100, steps_per_epoch=400, batches_per_update=2, total_steps=200)
    assert log._seconds_per_fit_step() is None
    for batch in range(4):
        log.on_train_batch_begin(batch)
        log.on_train_batch_end(batch)
    assert log._seconds_per_fit_step() == pytest.approx(2.0)
    line = log.estimate_line(step=2)
    # 200 updates x 2 batches x 2 s = 800 s; 198 updates left = 792 s.
    assert line.startswith("estimated training time: 13m20s for 200 updates (4.00 s per update") and "13m12s left" in line


def test_resumed_run_logs_each_step_once(tiny_config, tiny_nodrop_model_dir, tmp_path):
    from tfbert.config import load_config
    from tfbert.run.trainer import train

    # Without dropout (backbone and classifier) a resumed run makes exactly the uninterrupted run's updates.
    first = tiny_config("training.logging_steps=1", "training.save_steps=3", "training.save_total_limit=20",
                        "training.num_train_epochs=2", "export.at_end=false",
                        f"model.name_or_path={tiny_nodrop_model_dir}", "model.classifier_dropout=0.0")
    train(first, log=lambda *_: None)
    whole = _records(Path(first.training.output_dir) / "steps.jsonl")
    backup = Path(first.training.output_dir) / "checkpoints" / "step-3"
    assert backup.is_dir() and [r["step"] for r in json.loads((backup / "trainer_state.json").read_text())["steps"]] == [1, 2, 3]
    resumed = load_config(None, [f"{k}={v}" for k, v in _flat(first.to_dict()).items() if v is not None] + [
        f"training.resume={backup}", f"training.output_dir={tmp_path / 'resumed'}"])
    train(resumed, log=lambda *_: None)
    again = _records(tmp_path / "resumed" / "steps.jsonl")
    assert [r["step"] for r in again] == [r["step"] for r in whole]
    assert again[:3] == whole[:3]  # the backup's records, carried over as they were
    # Same batches after the resume (the same real tokens), and the same updates on them: the same losses.
    assert [r["real_tokens"] for r in again] == [r["real_tokens"] for r in whole]
    np.testing.assert_allclose([r["loss"] for r in again], [r["loss"] for r in whole], rtol=1e-5, atol=0)


def _flat(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[f"{prefix}{key}"] = "[" + ", ".join(map(str, value)) + "]"
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_run_writes_a_report_with_every_figure(tiny_config, tmp_path):
    from tfbert.run.trainer import train

    config = tiny_config("training.logging_steps=2", "training.num_train_epochs=2", "data.test_split=0.25")
    lines: list[str] = []
    summary = train(config, log=lines.append)
    out = Path(config.training.output_dir)
    assert summary["report"] == str(out / "report.html") and f"report: {out / 'report.html'}" in lines
    for name in RUN_FIGURES:
        assert _not_blank(out / "figures" / f"{name}.png") > 0.02, name
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == len(RUN_FIGURES)
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    assert "plan: 24 examples" in page and "optimizer.max_grad_norm" in page
    saved = json.loads((out / "run_summary.json").read_text())
    assert saved["plan"]["effective_batch_size"] == 4 and 0 < saved["padding_efficiency"] <= 1


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          check=True, capture_output=True, text=True, timeout=120)


def _coloured_pixels(page: Path, shot: Path) -> int:
    import matplotlib.image

    _chromium("--window-size=1200,5000", f"--screenshot={shot}", page.resolve().as_uri())
    pixels = matplotlib.image.imread(str(shot))[..., :3]
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    return int((saturation > 0.25).sum())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium(tiny_config, tmp_path):
    from tfbert.run.trainer import train

    config = tiny_config("training.logging_steps=2", "export.at_end=false")
    train(config, log=lambda *_: None)
    page = Path(config.training.output_dir) / "report.html"
    html = page.read_text(encoding="utf-8")
    # Every figure decodes: a script run after load writes how many images have pixels.
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", "<script>window.addEventListener('load', () => {"
                                  "document.body.dataset.decoded = [...document.images]"
                                  ".filter(i => i.naturalWidth > 0).length;});</script></body>"), encoding="utf-8")
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri()).stdout
    assert f'data-decoded="{len(RUN_FIGURES)}"' in dom, dom[:300]
    # And they are drawn: the figures are the page's coloured pixels (text and tables are grey), so
    # the page holds far more of them than the same page with its images taken out.
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r'<img [^>]*>', "", html), encoding="utf-8")
    with_figures = _coloured_pixels(page, tmp_path / "page.png")
    without = _coloured_pixels(bare, tmp_path / "bare.png")
    assert with_figures > 10 * without + len(RUN_FIGURES) * 1000, (with_figures, without)


def _fake_run(directory: Path, task: str, evaluation: dict, epochs: list[dict], steps: list[dict] = ()) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump({
        "task": {"type": task}, "training": {"metric_for_best_model": "val_f1", "logging_steps": 10},
        "optimizer": {"learning_rate": 5e-5, "max_grad_norm": 1.0}}))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    (directory / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    (directory / "eval_results.json").write_text(json.dumps(evaluation))
    return directory


def test_ner_and_qa_figures(tmp_path):
    from tfbert.reporting import write_report

    per_type = {"PER": {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 40},
                "LOC": {"precision": 0.6, "recall": 0.5, "f1": 0.55, "support": 25}}
    ner = _fake_run(tmp_path / "ner", "token_classification",
                    {"split": "test", "num_examples": 50, "f1": 0.7, "per_class": per_type},
                    [{"epoch": 1, "loss": 0.5, "val_loss": 0.4, "val_f1": 0.6}, {"epoch": 2, "loss": 0.3, "val_f1": 0.7}])
    qa = _fake_run(tmp_path / "qa", "question_answering", {
        "split": "validation", "num_examples": 3, "exact_match": 33.3, "f1": 50.0,
        "predictions": {"a": {"text": "Paris"}, "b": {"text": "the red house"}, "c": {"text": "1990"}},
        "references": {"a": ["Paris"], "b": ["a big red house on the hill"], "c": ["in 1991"]}},
        [{"epoch": 1, "loss": 2.0, "val_exact_match": 20.0, "val_f1": 30.0},
         {"epoch": 2, "loss": 1.0, "val_exact_match": 33.3, "val_f1": 50.0}])
    write_report([ner])
    assert _not_blank(ner / "figures" / "per_entity.png") > 0.02
    write_report([qa])
    assert _not_blank(qa / "figures" / "qa_answer_lengths.png") > 0.02
    page = (qa / "report.html").read_text()
    # No step records: those figures are left out with the reason, the page still written.
    assert "Learning rate and gradient norm</b>: left out" in page and "logging_steps" in page


def test_answer_lengths_flags_exact_matches():
    from tfbert.reporting.evaluation_figures import answer_lengths

    lengths, exact = answer_lengths({"predictions": {"a": {"text": "The Paris"}, "b": {"text": "x"}},
                                     "references": {"a": ["Paris", "in Paris"], "b": ["two words"]}})
    assert lengths.tolist() == [1, 2] and exact.tolist() == [True, False]


def test_no_validation_split_leaves_the_figure_out_with_a_note(tmp_path):
    from tfbert.reporting import write_report

    run = _fake_run(tmp_path / "run", "sequence_classification", {},
                    [{"epoch": 1, "loss": 0.6, "accuracy": 0.7}],
                    [{"step": 10, "epoch": 0.5, "loss": 0.7, "learning_rate": 1e-5, "grad_norm": 2.0,
                      "tokens_per_second": 900.0, "real_tokens": 900, "token_slots": 1000,
                      "padding_efficiency": 0.9, "seconds": 1.0}])
    page = write_report([run]).read_text()
    assert "Validation metrics per epoch</b>: left out — no validation split" in page
    assert (run / "figures" / "loss.png").is_file() and not (run / "figures" / "validation.png").exists()


def test_a_figure_that_fails_to_draw_becomes_a_note(tmp_path, monkeypatch):
    from tfbert.reporting import figures, write_report

    run = _fake_run(tmp_path / "run", "sequence_classification", {}, [{"epoch": 1, "loss": 0.6, "val_f1": 0.5}])

    def broken(runs):
        raise RuntimeError("boom")

    monkeypatch.setattr(figures, "FIGURES", [("loss", "Training loss", "", broken)] + figures.FIGURES[1:])
    page = write_report([run]).read_text()
    assert "Training loss</b>: left out — could not be drawn (RuntimeError: boom)" in page


def test_report_failure_never_fails_the_run(tiny_config, monkeypatch):
    from tfbert.reporting import html
    from tfbert.run.trainer import train

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(html, "render_html", broken)
    config = tiny_config("export.at_end=false")
    lines: list[str] = []
    summary = train(config, log=lines.append)
    out = Path(config.training.output_dir)
    assert (out / "run_summary.json").is_file() and "report" not in summary
    assert any(line.startswith("report: not written (RuntimeError: no fonts)") for line in lines)


def test_report_tool_compares_runs_and_refuses_a_non_run(tmp_path, capsys):
    from tfbert.cli import common
    from tfbert.cli.report import main

    epochs = [{"epoch": 1, "loss": 0.6, "val_loss": 0.5, "val_f1": 0.5}]
    a = _fake_run(tmp_path / "a", "token_classification", {}, epochs)
    b = _fake_run(tmp_path / "b", "token_classification", {}, epochs)
    yaml_b = yaml.safe_load((b / "config.yaml").read_text())
    yaml_b["optimizer"]["learning_rate"] = 3e-5
    (b / "config.yaml").write_text(yaml.safe_dump(yaml_b))
    assert common.run(main, [str(a), str(b)]) == 0
    page = (tmp_path / "compare-a-b" / "report.html").read_text()
    assert "a vs b" in page and '<tr class="differs"><th>optimizer.learning_rate</th>' in page
    assert common.run(main, [str(tmp_path / "nothing")]) == 2
    assert "error: " in capsys.readouterr().err


def test_progress_mode_and_logging_steps_key():
    from tfbert.config import load_config
    from tfbert.errors import ConfigError
    from tfbert.training.callbacks import progress_mode

    assert progress_mode(2, is_terminal=True) == (1, False)  # Keras' progress bar with ETA
    assert progress_mode(2, is_terminal=False) == (2, True)  # a line per logging_steps
    assert progress_mode(0, is_terminal=False) == (0, False)
    with pytest.raises(ConfigError, match="training.logging_steps"):
        load_config(None, ["training.logging_steps=0"])


def test_demo_pipeline_line_works_on_a_trained_model_directory(tiny_config):
    """The one-liner scripts/demo.sh prints, on a directory written by training."""
    from tfbert.run.trainer import train

    config = tiny_config("export.at_end=false")
    train(config, log=lambda *_: None)
    model = Path(config.training.output_dir) / "model"
    # The line as the script echoes it (and the README shows it), run on this directory: transformers
    # 4's TF classes need use_safetensors=False beside a PyTorch-format model.safetensors.
    echoed = re.search(r'^echo "  \.venv/bin/python -c \\"(.+)\\""$', (ROOT / "scripts" / "demo.sh").read_text(), re.M)
    assert echoed, "scripts/demo.sh no longer prints the pipeline line"
    template = echoed.group(1)
    assert template.replace("$RUN", "runs/sms_spam_minilm") in (ROOT / "README.md").read_text()
    code = template.replace("$RUN/model", str(model))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    import ast

    from tfbert.modeling.saving import load_pretrained

    # transformers' pipeline answers what tfbert's own model answers: same label, same probability.
    answer = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    loaded = load_pretrained(model)
    logits = loaded.model.predict(dict(loaded.tokenizer(["WIN a FREE phone"], return_tensors="np")), verbose=0)
    probabilities = np.exp(logits[0] - logits[0].max()) / np.exp(logits[0] - logits[0].max()).sum()
    assert len(answer) == 1 and answer[0]["label"] == loaded.label_names[int(probabilities.argmax())]
    assert answer[0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-4)


def test_many_classes_are_listed_down_the_page(tmp_path):
    """28 classes (GoEmotions): one row per class, names readable, the figure no wider than a few classes'."""
    from tfbert.reporting.evaluation_figures import MAX_VERTICAL_BARS, per_class_figure
    from tfbert.reporting.runs import load_run

    names = [f"label_{i}" for i in range(28)]
    per_class = {n: {"precision": 0.5, "recall": i / 28, "f1": 0.4, "support": 10 + i} for i, n in enumerate(names)}
    run = load_run(_fake_run(tmp_path / "many", "multi_label_classification",
                             {"split": "test", "num_examples": 100, "per_class": per_class},
                             [{"epoch": 1, "loss": 0.5}]))
    fig = per_class_figure([run])
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == [f"{n} (n={10 + i})" for i, n in enumerate(names)]  # in order, first at the top
    assert fig.axes[0].get_ylim()[0] > fig.axes[0].get_ylim()[1]
    assert [b.get_width() for b in fig.axes[1].patches] == pytest.approx([i / 28 for i in range(28)])
    assert fig.get_size_inches()[0] == 12.0
    few = {n: per_class[n] for n in names[:MAX_VERTICAL_BARS]}
    vertical = per_class_figure([load_run(_fake_run(tmp_path / "few", "sequence_classification",
                                                    {"split": "test", "num_examples": 100, "per_class": few},
                                                    [{"epoch": 1, "loss": 0.5}]))])
    assert len(vertical.axes[0].get_xticklabels()) == MAX_VERTICAL_BARS
