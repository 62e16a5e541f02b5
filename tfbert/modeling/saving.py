"""`save_pretrained` / `load_pretrained` for fine-tuned tfbert models.

A model directory is self-contained (no hub, no original checkpoint needed to reload)::

    model/
      tfbert_config.yaml   the experiment config that trained it
      labels.json          {"id2label": [...], "label2id": {...}}
      backbone/config.json the transformers config of the backbone architecture
      tokenizer/           the fast tokenizer (tokenizer.json, vocab.txt…)
      weights.*            a TensorFlow object-based checkpoint of the whole Keras model

The directory is written next to its final place and renamed into it when complete, so an
interrupted save never leaves a half-written model behind.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import yaml

from tfbert.config import ExperimentConfig, config_from_dict
from tfbert.errors import ModelError
from tfbert.utils.files import atomic_directory

LABELS_FILE = "labels.json"
CONFIG_FILE = "tfbert_config.yaml"


@dataclass
class FineTunedModel:
    """A reloaded fine-tuned model with everything needed to use it."""

    model: object
    tokenizer: object
    config: ExperimentConfig
    label_names: list[str]
    directory: Path


def save_pretrained(directory: str | Path, model, tokenizer, config: ExperimentConfig, label_names: list[str]) -> Path:
    """Write a self-contained model directory (atomically)."""
    backbone = find_backbone(model)
    with atomic_directory(directory) as tmp:
        (tmp / CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
        (tmp / LABELS_FILE).write_text(json.dumps(
            {"id2label": list(label_names), "label2id": {n: i for i, n in enumerate(label_names)}}, indent=2
        ), encoding="utf-8")
        backbone.config.save_pretrained(str(tmp / "backbone"))
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        model.save_weights(str(tmp / "weights"))
    return Path(directory)


def find_backbone(model):
    """The transformers backbone layer inside a task model."""
    for layer in model.layers:
        if hasattr(layer, "base_model_prefix") and hasattr(layer, "config"):
            return layer
    raise ModelError(f"{model.name}: no transformers backbone layer found")


def read_label_names(directory: str | Path) -> list[str]:
    path = Path(directory) / LABELS_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a tfbert model directory (no {LABELS_FILE})")
    return list(json.loads(path.read_text(encoding="utf-8"))["id2label"])


def read_config(directory: str | Path) -> ExperimentConfig:
    """The experiment config saved with a fine-tuned model."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a tfbert model directory (no {CONFIG_FILE})")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def load_pretrained(directory: str | Path, num_labels: int | None = None) -> FineTunedModel:
    """Rebuild the Keras model from a model directory and load its weights.

    `num_labels`, when given, must agree with the checkpoint (a clear error otherwise).
    """
    from transformers import AutoConfig, AutoTokenizer, TFAutoModel

    from tfbert.experiment import compile_model
    from tfbert.tasks import get_task

    directory = Path(directory)
    config = read_config(directory)
    label_names = read_label_names(directory)
    if num_labels is not None and num_labels != len(label_names):
        raise ModelError(
            f"config key 'task.num_labels': {num_labels} disagrees with the checkpoint in {directory} "
            f"({len(label_names)} labels: {label_names})"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"), use_fast=True)
    backbone = TFAutoModel.from_config(AutoConfig.from_pretrained(str(directory / "backbone")))
    input_names = [n for n in tokenizer.model_input_names if n != "attention_mask"] + ["attention_mask"]
    task = get_task(config.task.type)
    model = task.build_model(backbone, config, len(label_names), input_names)
    compile_model(model, config, total_steps=1, task=task)
    try:
        model.load_weights(str(directory / "weights")).expect_partial()
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelError(f"{directory / 'weights'}: checkpoint does not match the model ({str(exc).splitlines()[0]})") from None
    return FineTunedModel(model=model, tokenizer=tokenizer, config=config, label_names=label_names, directory=directory)
