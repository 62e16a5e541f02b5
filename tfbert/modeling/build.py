"""Build a task model: the backbone (or a fine-tuned starting point) + the task's head, compiled.

`build_model` is what `build_experiment` calls inside the strategy's scope.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from tfbert.config import ExperimentConfig
from tfbert.modeling.backbone import check_sequence_length, find_backbone, load_backbone
from tfbert.modeling.freezing import apply_freezing
from tfbert.modeling.saving import load_pretrained
from tfbert.modeling.task_model import TaskModel
from tfbert.pretrained import is_finetuned_dir
from tfbert.training.compile import compile_model

if TYPE_CHECKING:  # pragma: no cover
    from tfbert.tasks.base import Task


def build_model(config: ExperimentConfig, task: "Task", num_labels: int, input_names: list[str],
                total_steps: int, steps_per_execution: Optional[int] = None, compile: bool = True) -> TaskModel:
    """Backbone + head, frozen as configured, compiled with the configured optimizer (unless not `compile`).

    Call inside the strategy's scope. ``model.name_or_path`` may also be a fine-tuned tfbert
    model directory, whose weights (head included) are the starting point.

    Args:
        config: the validated experiment config.
        task: the task (`tfbert.tasks.get_task(config.task.type)`), which builds the head.
        num_labels: labels of the head (ignored by span heads).
        input_names: the model's inputs (`tfbert.modeling.backbone.model_input_names`).
        total_steps: optimizer updates of the run (the learning-rate schedule's length).
        steps_per_execution: `compile`'s, default ``training.steps_per_execution``.
        compile: False to build only (a packed twin is compiled instead).
    """
    if is_finetuned_dir(config.model.name_or_path):
        # Continue fine-tuning a tfbert model: its head comes along, so the labels must agree.
        model = load_pretrained(config.model.name_or_path, num_labels=num_labels).model
        model.gradient_accumulation_steps = config.training.gradient_accumulation_steps
        backbone = find_backbone(model)
        apply_freezing(backbone, config.training.freeze, config.training.freeze_layers)
    else:
        backbone = load_backbone(config.model.name_or_path, config.model.backbone)
        check_sequence_length(backbone.config, config.data.max_seq_length)
        apply_freezing(backbone, config.training.freeze, config.training.freeze_layers)
        model = task.build_model(backbone, config, num_labels, input_names)
    if compile:
        compile_model(model, config, total_steps, task, steps_per_execution)
    return model


__all__ = ["build_model"]
