"""Compile a task model: the configured optimizer with the task's loss and metrics.

Called by the run (`tfbert.run.experiment`) for the task model and its packed and pipelined twins:
building (`tfbert.modeling.build`) and loading (`load_pretrained`) never compile.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import tf_keras

from tfbert.config import ExperimentConfig
from tfbert.training.optimization import make_optimizer

if TYPE_CHECKING:  # pragma: no cover
    from tfbert.tasks.base import Task


def compile_model(model: tf_keras.Model, config: ExperimentConfig, total_steps: int, task: "Task",
                  steps_per_execution: Optional[int] = None, compile_args: Optional[dict[str, Any]] = None) -> None:
    """Compile with the configured optimizer and the task's loss and metrics (or `compile_args`'s).

    Args:
        model: a task model or its packed / pipelined twin.
        config: the experiment config (optimizer, precision, steps_per_execution).
        total_steps: optimizer updates (the schedule's length).
        task: whose `compile_args` give the loss and metrics.
        steps_per_execution: default ``training.steps_per_execution``.
        compile_args: replaces the task's (the packed twin's masked losses).
    """
    optimizer = make_optimizer(config.optimizer, total_steps, mixed_float16=config.precision.policy == "mixed_float16",
                               variables=model.weights)
    model.compile(optimizer=optimizer, steps_per_execution=steps_per_execution or config.training.steps_per_execution,
                  jit_compile=config.training.jit_compile, **(compile_args or task.compile_args()))
    # Create Adam's slots now: created inside the first traced step, they make tf.function trace
    # the whole train step twice (slower first step, and the discarded graph's memory).
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if hasattr(inner, "build"):
        inner.build(model.trainable_variables)


__all__ = ["compile_model"]
