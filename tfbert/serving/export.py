"""`export_saved_model` / `load_saved_model`: the library's entry points for raw-string SavedModels.

Every task exports through its own serving module (``tfbert/tasks/<type>/serving.py``); this module
only picks the task from the config, so one call exports any task's model.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from tfbert.config import ExperimentConfig
from tfbert.serving.base import (SIGNATURE_IDS, SIGNATURE_TEXT, call_model, load_saved_model, saved_model_task,
                                 token_id_specs)


def export_saved_model(model, hf_tokenizer, label_names: list[str], directory: str | Path,
                       max_seq_length: Optional[int] = None, text_pairs: bool = False,
                       config: Optional[ExperimentConfig] = None, overwrite: bool = False) -> Path:
    """Write a task model's raw-string SavedModel atomically to `directory`.

    Args:
        model: the task model (`build_experiment(...).model`, `load_pretrained(...).model`).
        hf_tokenizer: its Hugging Face fast tokenizer (WordPiece).
        label_names: label order of the model's outputs (empty for QA).
        directory: where the SavedModel goes (replaced only when the new one is complete).
        max_seq_length: word pieces per text (longer texts are truncated, as in training); default
            the config's ``data.max_seq_length``.
        text_pairs: whether a classifier's ``serving_default`` takes ``text_pair`` too (as a config
            with ``data.text_pair_column`` says).
        config: the experiment config, whose ``task.type`` picks the serving module and whose task
            keys it reads (QA's windows, a multi-label threshold); default: the default task.
        overwrite: replace `directory` even where it is a finished run's (one that holds
            ``run_summary.json`` beside it); without it that is an `OutputExistsError`.

    Examples:
        >>> export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names,
        ...                    "out/saved_model", config=experiment.config)  # doctest: +SKIP
        PosixPath('out/saved_model')
    """
    from tfbert.config import new_config
    from tfbert.tasks import get_task
    from tfbert.utils.files import refuse_to_replace_finished_run

    refuse_to_replace_finished_run(directory, overwrite)

    config = config if config is not None else new_config()
    changes = {}
    if max_seq_length is not None:
        changes["max_seq_length"] = max_seq_length
    if text_pairs and not config.data.text_pair_column:
        changes["text_pair_column"] = "text_pair"
    if changes:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, **changes))
    return get_task(config.task.type).export(model, hf_tokenizer, label_names, Path(directory), config)


__all__ = ["SIGNATURE_IDS", "SIGNATURE_TEXT", "call_model", "export_saved_model", "load_saved_model",
           "saved_model_task", "token_id_specs"]
