"""Build a task model: the backbone (or a fine-tuned starting point) + the task's head, uncompiled.

`build_model` is what `build_experiment` calls inside the strategy's scope. It does not compile:
the optimizer, its schedule and the packed or pipelined twin are the run's (`tfbert.run`), and a
model built for serving or inspection needs none of them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tfbert.config import ExperimentConfig
from tfbert.modeling.backbone import check_sequence_length, find_backbone, load_backbone
from tfbert.modeling.freezing import apply_freezing
from tfbert.modeling.saving import load_pretrained
from tfbert.modeling.task_model import TaskModel
from tfbert.pretrained import is_finetuned_dir

if TYPE_CHECKING:  # pragma: no cover
    from tfbert.tasks.base import Task


def build_model(config: ExperimentConfig, task: "Task", num_labels: int, input_names: list[str]) -> TaskModel:
    """Backbone + head, frozen as configured; uncompiled (`tfbert.training.compile.compile_model` compiles it).

    Call inside the strategy's scope. ``model.name_or_path`` may also be a fine-tuned tfbert
    model directory, whose weights (head included) are the starting point.

    Args:
        config: the validated experiment config.
        task: the task (`tfbert.tasks.get_task(config.task.type)`), which builds the head.
        num_labels: labels of the head (ignored by span heads).
        input_names: the model's inputs (`tfbert.modeling.backbone.model_input_names`).
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
    return model


__all__ = ["build_model"]
