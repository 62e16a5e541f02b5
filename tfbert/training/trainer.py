"""One training run end to end: build, fit, evaluate, save, export, write the model card."""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Optional

from tfbert.config import ExperimentConfig
from tfbert import distribute
from tfbert.distribute import choose_strategy
from tfbert.errors import ConfigError
from tfbert.experiment import Experiment, build_experiment
from tfbert.model_card import render_model_card
from tfbert.modeling.saving import save_pretrained
from tfbert.utils.files import write_json


def prepare_output_dir(config: ExperimentConfig) -> Path:
    """Refuse to mix a new run into an earlier run's files unless asked to overwrite."""
    out = Path(config.training.output_dir)
    if out.exists() and any(out.iterdir()) and not config.training.overwrite_output_dir:
        raise ConfigError(
            f"config key 'training.output_dir': {out} already holds a run; choose another directory "
            "or set training.overwrite_output_dir=true"
        )
    if out.exists() and config.training.overwrite_output_dir:
        for name in ("metrics.csv", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def train(config: ExperimentConfig, strategy_name: Optional[str] = None, log=print) -> dict:
    """Train as configured on `strategy_name` (default: ``distribution.strategy``); returns a summary.

    The strategy is chosen first (it may need TensorFlow untouched). Under multiworker every worker
    runs the whole run, but only the chief writes into ``training.output_dir``.
    """
    strategy = choose_strategy(strategy_name, config.distribution, log=log)
    kind = distribute.strategy_kind(strategy)
    if config.distribution.strategy != kind:
        config = copy.deepcopy(config)
        config.distribution.strategy = kind  # config.yaml records what actually ran
    if not distribute.is_chief(strategy):
        log = lambda *_: None  # noqa: E731 - the chief reports; the others would repeat it
    with distribute.writer_config(config, strategy) as config:
        out = prepare_output_dir(config)
        started = time.perf_counter()
        experiment = build_experiment(config, strategy)
        (out / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        log(f"plan: {experiment.plan.describe()}")
        experiment.fit()
        train_seconds = time.perf_counter() - started
        summary = finish_run(experiment, log)
        summary["train_seconds"] = round(train_seconds, 1)
        write_json(out / "run_summary.json", summary)
        # No worker may leave (and tear down its collective runtime) while another still works.
        distribute.barrier(strategy)
    return summary


def finish_run(experiment: Experiment, log=print) -> dict:
    """Evaluate the (best) model, save it, export the SavedModel and write the model card."""
    config, out = experiment.config, experiment.output_dir
    summary: dict = {"output_dir": str(out)}
    split = "test" if "test" in experiment.data.splits else "validation" if "validation" in experiment.data.splits else None
    evaluation = None
    if split:
        evaluation = experiment.evaluate_split(split)
        evaluation["split"] = split
        write_json(out / "eval_results.json", evaluation)
        summary["eval"] = {"split": split, **evaluation["metrics"]}
        log(f"{split}: {experiment.task.summary(evaluation)}")
    # The saved and exported model is the standard one (an IPU-pipelined model shares its variables).
    model = distribute.serving_model(experiment.model)
    model_dir = save_pretrained(out / "model", model, experiment.tokenizer, config, experiment.label_names)
    summary["model_dir"] = str(model_dir)
    if config.export.at_end:
        export_dir = experiment.task.export(model, experiment.tokenizer, experiment.label_names,
                                            out / config.export.dir_name, config)
        summary["saved_model"] = str(export_dir)
        log(f"SavedModel: {export_dir}")
    history = _read_history(out / "metrics.jsonl")
    card = render_model_card(config, experiment.plan, history, evaluation, experiment.label_names,
                             model_name=out.name, evaluated_on=split or "")
    (out / "README.md").write_text(card, encoding="utf-8")
    return summary


def _read_history(path: Path) -> list[dict]:
    import json

    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
