"""Guards for users: a diverged run stops, a useless model is flagged, a finished run is never overwritten.

- Divergence (`tfbert.training.callbacks.DivergenceGuard`): a loss that explodes and stays up
  stops the run like a NaN does, with one ``error:`` line naming the step and what to try (exit 2).
- Degenerate model (`tfbert.run.trainer.degenerate_warning`): a model that answers one class
  for every evaluated example ends with one ``warning:`` line in the log, in ``eval_results.json``
  and at the top of ``report.html``.
- Overwrite (`tfbert.utils.files.refuse_to_replace_finished_run`): the library's export refuses
  to replace a finished run's files unless told to (the example script writing to its own
  directory is `tests/test_training.py::test_library_example_runs`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT


# ------------------------------------------------------------------------------------- divergence rule

def feed(guard, batch_losses: list[float]) -> None:
    """Call `guard` as `fit` does: per epoch, per batch, with Keras' running mean of the epoch's losses."""
    batches_per_epoch = guard.steps_per_epoch
    for epoch in range(-(-len(batch_losses) // batches_per_epoch)):
        guard.on_epoch_begin(epoch)
        losses = batch_losses[epoch * batches_per_epoch:(epoch + 1) * batches_per_epoch]
        for batch, _ in enumerate(losses):
            guard.on_train_batch_begin(batch)
            guard.on_train_batch_end(batch, {"loss": float(np.mean(losses[:batch + 1]))})


def guard_for(tmp_path, steps_per_epoch: int, batches_per_update: int = 1, state=None):
    from tfbert.training.callbacks import DivergenceGuard

    return DivergenceGuard(steps_per_epoch, batches_per_update, tmp_path, state=state)


def test_a_loss_that_stays_ten_times_above_the_first_update_stops_at_the_fifth_update(tmp_path):
    from tfbert.training.backup import TrainingDiverged
    from tfbert.training.callbacks import DIVERGENCE_FACTOR, DIVERGENCE_FLOOR, DIVERGENCE_PATIENCE

    assert (DIVERGENCE_FACTOR, DIVERGENCE_FLOOR, DIVERGENCE_PATIENCE) == (10.0, 1.0, 5)
    guard = guard_for(tmp_path, steps_per_epoch=4)
    # First update 0.69 (ln 2): the threshold is 10 x max(0.69, 1.0) = 10. Updates 4-8 are above it.
    with pytest.raises(TrainingDiverged) as raised:
        feed(guard, [0.69, 0.6, 0.5, 50.0, 3e3, 1e5, 1e8, 1e8, 1e8])
    assert guard.reference == pytest.approx(0.69) and guard.threshold == pytest.approx(10.0)
    message = str(raised.value)
    assert message.startswith("training loss diverged at step 8 (epoch 2, batch 4): 1e+08, above 10x the first "
                              "update's loss (0.69, floor 1) at every step since 4; try a lower "
                              "optimizer.learning_rate"), message
    assert "\n" not in message and "training.overwrite_output_dir=true" in message


@pytest.mark.parametrize("losses", [
    [0.69] + [0.5] * 30,                               # healthy
    [0.69, 0.5, 40.0, 40.0, 40.0, 40.0, 0.4, 0.3],     # a spike of four updates recovers: not divergence
    [0.69, 0.5, 9.9, 9.9, 9.9, 9.9, 9.9, 9.9],         # under 10 x max(0.69, 1.0)
    [0.05, 0.04, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0],        # 180x a tiny first loss, but under the 10-nat floor
], ids=["healthy", "short-spike", "under-threshold", "floor"])
def test_losses_that_are_not_divergence_never_stop_a_run(losses, tmp_path):
    feed(guard_for(tmp_path, steps_per_epoch=3), losses)


def test_accumulation_judges_whole_updates_and_a_resume_takes_the_first_logged_loss(tmp_path):
    from tfbert.training.backup import TrainingDiverged

    # Two micro-batches per update: update 1 = mean(0.7, 0.9) = 0.8; then five updates of mean 20.
    guard = guard_for(tmp_path, steps_per_epoch=10, batches_per_update=2)
    with pytest.raises(TrainingDiverged, match=r"at step 6 \(epoch 2, batch 2\): 20, .*since 2;"):
        feed(guard, [0.7, 0.9] + [30.0, 10.0] * 5)
    assert guard.reference == pytest.approx(0.8)
    # A resumed run compares with the first logged window of its backup's step records (steps.jsonl).
    state = {"steps": [{"step": 10, "loss": 2.5}, {"step": 20, "loss": 0.3}]}
    resumed = guard_for(tmp_path, steps_per_epoch=4, state=state)
    assert resumed.reference == 2.5 and resumed.threshold == 25.0
    feed(resumed, [24.0] * 8)  # under 25: goes on
    resumed = guard_for(tmp_path, steps_per_epoch=5, state=state)
    with pytest.raises(TrainingDiverged, match="above 10x the first logged window's loss"):
        feed(resumed, [26.0] * 5)


def test_an_exploding_loss_stops_a_run_before_its_step_is_backed_up(tiny_config, monkeypatch, capsys):
    """A finite loss 10,000x too high from the 4th batch: five updates later, one line and exit 2."""
    import tensorflow as tf

    from tfbert.cli import common
    from tfbert.tasks.sequence_classification import task as sequence_classification
    from tfbert.training.backup import list_backups
    from tfbert.run.trainer import train

    config = tiny_config("training.save_steps=1", "export.at_end=false", "optimizer.max_grad_norm=1.0")
    out = Path(config.training.output_dir)
    compile_args = sequence_classification.SequenceClassification.compile_args

    def exploding(self):
        args = compile_args(self)
        loss, calls = args["loss"], tf.Variable(0, trainable=False)

        def times_ten_thousand_from_the_4th_batch(y_true, y_pred):
            value = loss(y_true, y_pred)
            return tf.where(calls.assign_add(1) >= 4, value * 1e4, value)

        args["loss"] = times_ten_thousand_from_the_4th_batch
        return args

    monkeypatch.setattr(sequence_classification.SequenceClassification, "compile_args", exploding)
    code = common.run(lambda _: train(config, log=lambda *_: None) and 0, [])
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert errors[0].startswith("error: training loss diverged at step 8 (epoch 1, batch 8): "), errors[0]
    assert "at every step since 4; try a lower optimizer.learning_rate" in errors[0]
    # Steps 1-7 were backed up; the step that tripped the rule was not, and the run is not finished.
    assert [p.name for p in list_backups(out)][-1] == "step-7"
    assert not (out / "run_summary.json").exists()


@pytest.mark.parametrize("learning_rate, message", [
    # Issue 23's command: the loss overflows to NaN at step 5 here (on the MiniLM too, with this tree).
    ("1e6", r"error: training loss (became nan|diverged) at step \d+ "),
    # A thousand times lower it stays finite (about 1e4 from step 3 or 4), stopped by the explosion rule
    # after five steps in a row above it; which step that is depends on the seeded run's dropout.
    ("1e3", r"error: training loss diverged at step (\d+) \(epoch 1, batch \1\): .* at every step since (\d+); "),
])
def test_the_issues_huge_learning_rate_run_exits_2_with_one_line(learning_rate, message, tiny_model_dir, spam_file,
                                                                 tmp_path, capsys):
    """The demo recipe at a huge learning rate without clipping (issue 23), on the tiny BERT and a small file."""
    from tfbert.cli import common
    from tfbert.cli import train as train_cli

    argv = ["--config", str(ROOT / "configs" / "sms_spam_minilm.yaml")]
    for pair in (f"optimizer.learning_rate={learning_rate}", "optimizer.max_grad_norm=null", "training.max_steps=20",
                 f"model.name_or_path={tiny_model_dir}", f"data.train_file={spam_file}", "data.max_seq_length=32",
                 "training.per_device_train_batch_size=4", f"training.output_dir={tmp_path / 'run'}",
                 "training.verbose=0", "training.tensorboard=false"):
        argv += ["--set", pair]
    code = common.run(train_cli.main, argv)
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    match = re.match(message, errors[0])
    assert match and "try a lower optimizer.learning_rate" in errors[0], errors[0]
    if match.lastindex == 2:
        assert int(match[1]) - int(match[2]) == 4 and int(match[1]) < 20, errors[0]
    assert not (tmp_path / "run" / "run_summary.json").exists() and not (tmp_path / "run" / "saved_model").exists()


# ------------------------------------------------------------------------------------- degenerate model

def test_a_model_that_answers_one_class_ends_with_one_warning_everywhere(tiny_config):
    """Learning rate 1e-9: the seeded tiny BERT answers one class for every validation message."""
    from tfbert.run.trainer import train

    config = tiny_config("optimizer.learning_rate=1e-9", "export.at_end=false")
    lines: list[str] = []
    summary = train(config, log=lines.append)
    out = Path(config.training.output_dir)
    evaluation = json.loads((out / "eval_results.json").read_text())
    expected = re.fullmatch(
        r"the model is no better than a constant guess on the validation split: predicts (ham|spam) for every "
        r"example \(12 of 12\); check optimizer\.learning_rate \(too high or too low\), train longer "
        r"\(training\.num_train_epochs\) and the data's labels", evaluation["warning"])
    assert expected, evaluation["warning"]
    expected = expected.group(0)
    assert summary["warning"] == expected
    assert [line for line in lines if line.startswith("warning:")] == [f"warning: {expected}"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<p class="warning">') == 1 and "predicts " in page.split('<p class="warning">')[1]


def test_a_model_that_learned_has_no_warning(tiny_config):
    from tfbert.run.trainer import degenerate_warning
    from tfbert.tasks import get_task

    task = get_task("sequence_classification")
    good = {"confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[960, 6], [10, 139]]}}
    assert degenerate_warning(task, good, "test") is None
    constant = {"confusion_matrix": {"labels": ["ham", "spam"], "matrix": [[966, 0], [149, 0]]}}
    assert degenerate_warning(task, constant, "test").startswith(
        "the model is no better than a constant guess on the test split: predicts ham for every example (1115 of 1115)")


# ------------------------------------------------------------------------------------- no silent overwrite

def finished_run(directory: Path) -> Path:
    """A directory shaped like a finished run: a summary, a model and a SavedModel."""
    (directory / "saved_model").mkdir(parents=True)
    (directory / "saved_model" / "saved_model.pb").write_bytes(b"the demo's export")
    (directory / "model").mkdir()
    (directory / "model" / "tf_model.h5").write_bytes(b"the demo's weights")
    (directory / "run_summary.json").write_text("{}")
    return directory


def test_export_refuses_to_replace_a_finished_runs_saved_model(tmp_path, monkeypatch):
    import tfbert
    from tfbert.errors import OutputExistsError
    from tfbert.tasks import get_task_class

    run = finished_run(tmp_path / "runs" / "sms_spam_minilm")
    with pytest.raises(OutputExistsError) as raised:
        tfbert.export_saved_model(None, None, ["ham", "spam"], run / "saved_model", max_seq_length=32)
    assert str(raised.value) == (f"{run / 'saved_model'}: refusing to replace saved_model/ of the finished run {run} "
                                 "(it has run_summary.json); write to another directory or pass overwrite=True")
    assert (run / "saved_model" / "saved_model.pb").read_bytes() == b"the demo's export"

    exported = []
    cls = get_task_class("sequence_classification")
    monkeypatch.setattr(cls, "export", lambda self, model, tokenizer, labels, directory, config:
                        exported.append(directory) or directory)
    # Told to overwrite, or writing a new directory beside the run's: the export goes ahead.
    tfbert.export_saved_model(None, None, ["ham", "spam"], run / "saved_model", max_seq_length=32, overwrite=True)
    tfbert.export_saved_model(None, None, ["ham", "spam"], run / "another_export", max_seq_length=32)
    # An unfinished run's own export (tfbert.train exports before writing run_summary.json).
    (run / "run_summary.json").unlink()
    tfbert.export_saved_model(None, None, ["ham", "spam"], run / "saved_model", max_seq_length=32)
    assert exported == [run / "saved_model", run / "another_export", run / "saved_model"]
