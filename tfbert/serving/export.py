"""`export_saved_model` / `load_saved_model`: the library's entry points for raw-string SavedModels.

Every task exports through its serving module (`tfbert.serving.base.ServingModule`); this module
keeps the classification export's historical signature for scripts and examples.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from tfbert.serving.base import (SIGNATURE_IDS, SIGNATURE_TEXT, call_model, load_saved_model, saved_model_task,
                                 token_id_specs)
from tfbert.serving.classification import ClassifierServingModule


def export_saved_model(model, hf_tokenizer, label_names: list[str], directory: str | Path,
                       max_seq_length: int, text_pairs: bool = False) -> Path:
    """Write a classifier's raw-string SavedModel atomically to `directory`.

    Args:
        model: a sequence-classification task model (`build_experiment(...).model`).
        hf_tokenizer: its Hugging Face fast tokenizer (WordPiece).
        label_names: label order of the model's logits.
        directory: where the SavedModel goes (replaced only when the new one is complete).
        max_seq_length: word pieces per text (longer texts are truncated, as in training).
        text_pairs: whether ``serving_default`` takes ``text_pair`` too.

    Examples:
        >>> export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names,
        ...                    "out/saved_model", max_seq_length=128)  # doctest: +SKIP
        PosixPath('out/saved_model')

    Other tasks export with ``get_task(config.task.type).export(...)``.
    """
    from tfbert.config import new_config

    config = new_config("sequence_classification")
    config.data = dataclasses.replace(config.data, max_seq_length=max_seq_length,
                                      text_pair_column="text_pair" if text_pairs else None)
    return ClassifierServingModule(model, hf_tokenizer, label_names, config).export(directory)


__all__ = ["SIGNATURE_IDS", "SIGNATURE_TEXT", "call_model", "export_saved_model", "load_saved_model",
           "saved_model_task", "token_id_specs"]
