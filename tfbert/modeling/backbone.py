"""The pretrained backbone inside a task model: where each backbone fact is looked up, once.

A task model is a Functional Keras model whose one transformers layer (``TFBertModel``,
``TFDistilBertModel``…) is the backbone. Heads, freezing, packing, IPU pipelining, saving and
serving all need the same few facts about it — its main layer, the model's input names, the
initializer of a fresh head, whether the pooler is used — and read them here.
"""
from __future__ import annotations

from typing import Iterable, Optional

import tensorflow as tf
import tf_keras

from tfbert.errors import ConfigError, ModelError
from tfbert.pretrained import load_backbone

ATTENTION_MASK = "attention_mask"


def find_backbone(model: tf_keras.Model):
    """The transformers backbone layer inside a task model.

    Args:
        model: a tfbert task model (or its packed / pipelined twin).

    Examples:
        >>> backbone = find_backbone(experiment.model)  # doctest: +SKIP
    """
    for layer in model.layers:
        if hasattr(layer, "base_model_prefix") and hasattr(layer, "config"):
            return layer
    raise ModelError(f"{model.name}: no transformers backbone layer found")


def main_layer(model):
    """The architecture's main layer (``bert``, ``distilbert``…) of a transformers TF model."""
    return getattr(model, model.base_model_prefix)


def token_feature_names(tokenizer) -> list[str]:
    """The tokenizer's per-token features that tfbert stores (``input_ids``, ``token_type_ids``…).

    The attention mask is not stored: batching makes it from the padding.
    """
    return [n for n in tokenizer.model_input_names if n != ATTENTION_MASK]


def model_input_names(tokenizer, features: Optional[Iterable[str]] = None) -> list[str]:
    """The task model's inputs: the stored token features (those in `features`, if given) + the mask.

    Examples:
        >>> model_input_names(bert_tokenizer)  # doctest: +SKIP
        ['input_ids', 'token_type_ids', 'attention_mask']
    """
    names = token_feature_names(tokenizer)
    if features is not None:
        available = set(features)
        names = [n for n in names if n in available]
    return names + [ATTENTION_MASK]


def served_input_names(tokenizer, model: tf_keras.Model) -> list[str]:
    """The inputs a SavedModel feeds `model`, in the tokenizer's order."""
    return [n for n in tokenizer.model_input_names if n in model.input_names]


def model_inputs(input_names: list[str]) -> dict[str, tf_keras.Input]:
    """int32 [batch, seq] Keras inputs; the sequence length stays dynamic (bucketed batches)."""
    return {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name) for name in input_names}


def head_initializer(backbone, seed: int) -> tf_keras.initializers.Initializer:
    """A fresh head's kernel initializer: the backbone's own ``initializer_range`` (BERT: 0.02)."""
    return tf_keras.initializers.TruncatedNormal(stddev=getattr(backbone.config, "initializer_range", 0.02), seed=seed)


def freeze_unused_pooler(backbone) -> None:
    """Freeze the pooler of a head that never reads it: it gets no gradient, and Keras warns of that."""
    pooler = getattr(main_layer(backbone), "pooler", None)
    if pooler is not None:
        pooler.trainable = False


def check_sequence_length(backbone_config, max_seq_length: int) -> None:
    """Stop with one line when inputs would be longer than the position table.

    Longer inputs would fail deep inside the embedding lookup.
    """
    positions = getattr(backbone_config, "max_position_embeddings", None)
    if positions is not None and max_seq_length > positions:
        raise ConfigError(f"config key 'data.max_seq_length': {max_seq_length} exceeds the model's "
                          f"{positions} position embeddings")


__all__ = ["ATTENTION_MASK", "check_sequence_length", "find_backbone", "freeze_unused_pooler", "head_initializer",
           "load_backbone", "main_layer", "model_input_names", "model_inputs", "served_input_names",
           "token_feature_names"]
