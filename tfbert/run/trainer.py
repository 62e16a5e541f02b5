"""One training run end to end: start or resume, build, fit, evaluate, save, export, write the model card."""
from __future__ import annotations

import contextlib
import copy
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert import distribute
from tfbert.distribute import choose_strategy
from tfbert.errors import ConfigError, TfbertError
from tfbert.run.experiment import Experiment, build_experiment
from tfbert.run.start import StartPoint, plan_start
from tfbert.model_card import render_model_card
from tfbert.modeling.saving import save_pretrained
from tfbert.rundir import ARTEFACTS, RunDir
from tfbert.training import backup as backup_lib
from tfbert.training.precision import resolve_policy
from tfbert.training.seed import set_seed
from tfbert.utils.files import write_json, write_text


def _check_plan(start: StartPoint, experiment: Experiment) -> None:
    """The same global batch and schedule: another strategy or replica count would change both."""
    state, plan = start.state, experiment.plan
    differences = [f"{name} {state[key]} -> {now}" for name, key, now in (
        ("optimizer steps", "total_steps", plan.total_optimizer_steps),
        ("steps per epoch", "steps_per_epoch", experiment.steps_per_epoch),
        ("batches per update", "batches_per_update", plan.batches_per_update),
    ) if state.get(key) != now]
    if differences:
        raise ConfigError(f"config key 'training.resume': cannot resume {start.backup}: the batch plan differs "
                          f"({'; '.join(differences)}); resume with the strategy and replicas it ran with")


def _open_output_dir(config: ExperimentConfig, start: StartPoint) -> Path:
    """Create (or clear) the output directory once data and model have loaded."""
    out = Path(config.training.output_dir)
    try:
        return _prepare_output_dir(out, start)
    except OSError as exc:
        raise ConfigError(f"config key 'training.output_dir': cannot write to {out} ({exc.strerror or exc})") from None


def _prepare_output_dir(out: Path, start: StartPoint) -> Path:
    if start.clear:
        for name in ARTEFACTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    backup_lib.remove_stale_temporaries(out)
    if start.resuming:
        source_run = start.source_run
        best = RunDir(source_run).best_dir
        if source_run.resolve() != out.resolve() and best.is_dir():
            shutil.copytree(best, RunDir(out).best_dir, dirs_exist_ok=True)
    return out


@contextlib.contextmanager
def _sigterm_flag() -> Iterator[backup_lib.SigtermFlag]:
    """Turn SIGTERM into a flag the backup callback reads between steps (main thread only)."""
    flag = backup_lib.SigtermFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, flag.set)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(config: ExperimentConfig, strategy_name: Optional[str] = None, log=print) -> dict:
    """Train as configured on `strategy_name` (default: ``distribution.strategy``); returns a summary.

    Rerunning on an unfinished run's ``training.output_dir`` resumes it from its latest backup
    (``training.resume``). Under multiworker every worker runs the whole run and resumes from the
    chief's backup, but only the chief writes into ``training.output_dir``.

    Args:
        config: a validated experiment config (`tfbert.load_config`).
        strategy_name: ``default``, ``mirrored``, ``multiworker``, ``tpu``, ``ipu`` or ``auto``.
        log: where progress lines go.

    Examples:
        >>> import tfbert  # doctest: +SKIP
        >>> config = tfbert.load_config("configs/sms_spam_minilm.yaml")  # doctest: +SKIP
        >>> summary = tfbert.train(config)  # doctest: +SKIP
    """
    strategy = choose_strategy(strategy_name, config.distribution, log=log)
    kind = distribute.strategy_kind(strategy)
    if config.distribution.strategy != kind:
        config = copy.deepcopy(config)
        config.distribution.strategy = kind  # config.yaml records what actually ran
    precision = resolve_policy(config.precision.policy, kind)
    if config.precision.policy != precision.policy:
        config = copy.deepcopy(config)
        config.precision.policy = precision.policy  # auto: config.yaml, the card and a resume see the choice
    if not distribute.is_chief(strategy):
        log = lambda *_: None  # noqa: E731 - the chief reports; the others would repeat it
    # Decided on the chief's directory by every worker, before anyone writes: all resume together.
    start = plan_start(config)
    with distribute.writer_config(config, strategy) as config, _sigterm_flag() as sigterm:
        started = time.perf_counter()
        experiment = build_experiment(config, strategy)
        if start.resuming:
            _check_plan(start, experiment)
        out = _open_output_dir(config, start)
        log(f"plan: {experiment.plan.describe()}")
        log(f"precision: {precision.describe()}")
        if start.resuming:
            backup_lib.restore(experiment.model, start.backup)
            state = start.state
            # Dropout after a resume draws from (seed, step): statistically, not bitwise, the same run.
            set_seed((config.training.seed + int(state["global_step"])) % 2**32)
            log(f"resuming at step {state['global_step']} of {experiment.plan.total_optimizer_steps} "
                f"(epoch {state['epoch'] + 1}, batch {state['batch_in_epoch']}) from {start.backup}")
        write_text(RunDir(out).config_file, config.to_yaml())
        _fit(experiment, start, sigterm)
        train_seconds = time.perf_counter() - started
        summary = finish_run(experiment, log)
        summary["train_seconds"] = round(train_seconds, 1)
        write_json(RunDir(out).summary_file, summary)
        # No worker may leave (and tear down its collective runtime) while another still works.
        distribute.barrier(strategy)
    return summary


def _fit(experiment: Experiment, start: StartPoint, sigterm: backup_lib.SigtermFlag) -> None:
    try:
        experiment.fit(resume_state=start.state, sigterm=sigterm)
    except tf.errors.OpError as exc:
        if experiment.plan.strategy != "multiworker":
            raise
        # A worker that died (preemption, kill) aborts every collective of the others.
        latest = backup_lib.latest_backup(experiment.output_dir)
        raise WorkerFailure(
            f"multiworker training stopped: {str(exc).strip().splitlines()[0]}; latest backup: {latest or 'none'}; "
            "rerun the same command to resume") from None


class WorkerFailure(TfbertError):
    """Another worker of a multiworker run failed; this one stops too (and resumes with it)."""

    exit_code = 1


def finish_run(experiment: Experiment, log=print) -> dict:
    """Evaluate the (best) model, save it, export the SavedModel and write the model card."""
    config, out = experiment.config, experiment.output_dir
    run = RunDir(out)
    summary: dict = {"output_dir": str(out)}
    splits = experiment.data.splits
    split = ("test" if config.training.do_predict and "test" in splits
             else "validation" if "validation" in splits else None)
    evaluation = None
    if split:
        evaluation = experiment.evaluate_split(split)
        evaluation["split"] = split
        warning = degenerate_warning(experiment.task, evaluation, split)
        if warning:
            evaluation["warning"] = summary["warning"] = warning
        write_json(run.eval_results_file, evaluation)
        summary["eval"] = {"split": split, **evaluation["metrics"]}
        log(f"{split}: {experiment.task.summary(evaluation)}")
        if warning:
            log(f"warning: {warning}")
    # The saved and exported model is the standard one (an IPU-pipelined model shares its variables).
    model = distribute.serving_model(experiment.model)
    model_dir = save_pretrained(run.model_dir, model, experiment.tokenizer, config, experiment.label_names)
    summary["model_dir"] = str(model_dir)
    if config.export.at_end:
        export_dir = experiment.task.export(model, experiment.tokenizer, experiment.label_names,
                                            out / config.export.dir_name, config)
        summary["saved_model"] = str(export_dir)
        log(f"SavedModel: {export_dir}")
    history = run.read_metrics()
    card = render_model_card(config, experiment.plan, history, evaluation, experiment.label_names,
                             model_name=out.name, evaluated_on=split or "")
    write_text(run.card_file, card)
    # The model directory's card too: the Hub shows it when the directory is pushed as it is.
    write_text(model_dir / "README.md", card)
    summary["plan"] = plan_summary(experiment)
    steps = run.read_steps()
    slots = sum(r.get("token_slots", 0) for r in steps)
    if slots:
        # Measured on the batches trained on: padding, or packing once batches are packed.
        summary["padding_efficiency"] = round(sum(r.get("real_tokens", 0) for r in steps) / slots, 4)
    if distribute.is_chief(experiment.strategy):
        _write_report(out, summary, log)
    return summary


def degenerate_warning(task, evaluation: dict, split: str) -> Optional[str]:
    """One line when the evaluated model is no better than a constant guess (one class for every
    example, no entity, no answer), else None: the check the recipe tests use, for every run.

    Args:
        task: the run's `tfbert.tasks.Task` (its ``degenerate_reason`` says what a constant scores).
        evaluation: its report on `split` (``eval_results.json``).
        split: the split evaluated.
    """
    reason = task.degenerate_reason(evaluation)
    if reason is None:
        return None
    return (f"the model is no better than a constant guess on the {split} split: {reason}; check "
            "optimizer.learning_rate (too high or too low), train longer (training.num_train_epochs) "
            "and the data's labels")


def plan_summary(experiment: Experiment) -> dict:
    """The batch plan as run_summary.json and the report record it."""
    plan = experiment.plan
    return {"describe": plan.describe(), "strategy": plan.strategy, "num_replicas": plan.num_replicas,
            "per_replica_batch_size": plan.per_replica_batch_size,
            "gradient_accumulation_steps": plan.gradient_accumulation_steps,
            "effective_batch_size": plan.effective_batch_size, "batches_per_epoch": plan.batches_per_epoch,
            "updates_per_epoch": experiment.steps_per_epoch / plan.batches_per_update,
            "total_optimizer_steps": plan.total_optimizer_steps,
            "precision": experiment.config.precision.policy}


def _write_report(out: Path, summary: dict, log=print) -> None:
    """RUN/report.html and its figures; a report that cannot be drawn never fails the run."""
    try:
        from tfbert.reporting import write_report

        path = write_report([out], summary=summary)
    except Exception as exc:  # noqa: BLE001 - the run's results are written; the report is extra
        log(f"report: not written ({type(exc).__name__}: {exc}); retry with tools/report.py {out}")
        return
    summary["report"] = str(path)
    log(f"report: {path}")

