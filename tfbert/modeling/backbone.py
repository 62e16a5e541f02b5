"""The pretrained backbone inside a task model: which one is built, and every fact read from it, once.

A task model is a Functional Keras model with one backbone layer: tfbert's own encoder
(`tfbert.modeling.encoder.TransformerEncoder`) for the BERT family, or a transformers
``TF<Arch>Model`` for every other checkpoint (``model.backbone``, `load_backbone`). Heads,
freezing, packing, IPU pipelining, layer-wise rates, saving and serving need the same few facts
about it — its output sequence, its pooler, its embeddings and blocks, the model's input names,
the initializer of a fresh head — and read them here, so only this module tells the two kinds apart.
"""
from __future__ import annotations

from typing import Iterable, Optional

import tensorflow as tf
import tf_keras

from tfbert.data.features import ATTENTION_MASK, token_feature_names
from tfbert.errors import ConfigError, ModelError
from tfbert.modeling.encoder import SUPPORTED_MODEL_TYPES, load_encoder, unsupported_reason
from tfbert.modeling.encoder.encoder import LAST_HIDDEN_STATE, TransformerEncoder
from tfbert.pretrained import check_config_file, check_weights, load_transformers_backbone, resolve_model_dir

#: ``model.backbone`` values
BACKBONES = ("auto", "tfbert", "transformers")


# ---------------------------------------------------------------- which backbone

def uses_own_encoder(config_json: dict, backbone: str = "auto") -> bool:
    """Whether ``model.backbone`` (`backbone`) puts tfbert's encoder under a checkpoint with this config.json.

    ``auto``: the own encoder for the types it supports, transformers' ``TFAutoModel`` otherwise;
    ``tfbert`` insists (a `ConfigError` naming why a checkpoint is not supported);
    ``transformers`` always takes the general path.
    """
    if backbone == "transformers":
        return False
    reason = unsupported_reason(config_json)
    if reason is None:
        return True
    if backbone == "tfbert":
        raise ConfigError(f"config key 'model.backbone': tfbert's encoder cannot run this checkpoint ({reason}); "
                          f"it runs model types {', '.join(SUPPORTED_MODEL_TYPES)}. Use model.backbone: auto or transformers")
    return False


def load_backbone(name_or_path: str, backbone: str = "auto"):
    """The pretrained backbone layer of `name_or_path`: tfbert's encoder or a transformers TF model.

    Args:
        name_or_path: ``model.name_or_path`` (bundled name, local directory or hub id).
        backbone: ``model.backbone``: ``auto``, ``tfbert`` or ``transformers``.

    Examples:
        >>> encoder = load_backbone("bundled:all-MiniLM-L6-v2")  # doctest: +SKIP
    """
    model_dir = resolve_model_dir(name_or_path)
    config_json = check_config_file(model_dir)
    if uses_own_encoder(config_json, backbone):
        check_weights(model_dir)  # refuses pickle-only directories with the usual line
        return load_encoder(model_dir)[0]
    return load_transformers_backbone(name_or_path)


def is_own_encoder(layer) -> bool:
    """Whether `layer` is tfbert's own encoder (else a transformers TF model)."""
    return isinstance(layer, TransformerEncoder)


def find_backbone(model: tf_keras.Model):
    """The backbone layer inside a task model (or its packed / pipelined twin).

    Examples:
        >>> backbone = find_backbone(experiment.model)  # doctest: +SKIP
    """
    for layer in model.layers:
        if is_own_encoder(layer) or (hasattr(layer, "base_model_prefix") and hasattr(layer, "config")):
            return layer
    raise ModelError(f"{model.name}: no backbone layer found")


def main_layer(backbone):
    """The layer that holds embeddings, blocks and pooler: the encoder itself, or transformers' ``bert``/``distilbert``…"""
    return backbone if is_own_encoder(backbone) else getattr(backbone, backbone.base_model_prefix)


# ---------------------------------------------------------------- its parts

def encoder_blocks(backbone) -> list:
    """The transformer blocks, bottom first."""
    if is_own_encoder(backbone):
        return list(backbone.blocks)
    main = main_layer(backbone)
    for path in ("encoder.layer", "transformer.layer", "encoder.layers"):
        obj = main
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return list(obj)
    raise ConfigError(f"training.freeze: cannot find the encoder layers of {type(backbone).__name__}")


def embeddings_layer(backbone):
    """The embedding layer (word, position and token-type tables)."""
    return main_layer(backbone).embeddings


def pooler_layer(backbone):
    """The backbone's pooler (dense + tanh on the first token), or None when the checkpoint has none."""
    return getattr(main_layer(backbone), "pooler", None)


def freeze_unused_pooler(backbone) -> None:
    """Freeze the pooler of a head that never reads it: it gets no gradient, and Keras warns of that."""
    pooler = pooler_layer(backbone)
    if pooler is not None:
        pooler.trainable = False


def require_pooler(backbone) -> None:
    """Stop with one line when ``model.pooling: pooler`` meets a backbone without a pooler (ELECTRA, DistilBERT)."""
    if pooler_layer(backbone) is None:
        model_type = getattr(backbone.config, "model_type", type(backbone).__name__)
        raise ConfigError(f"config key 'model.pooling': pooler, but the {model_type} backbone has no pooler; "
                          "use model.pooling: cls or mean")


# ---------------------------------------------------------------- its outputs

def backbone_outputs(backbone, inputs: dict, pooled: bool = False,
                     first_token_only: bool = False) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
    """``(last hidden states [b, s, h], pooler output [b, h] or None)`` of the backbone on `inputs`.

    `first_token_only`: the caller reads position 0 alone; tfbert's encoder then returns
    ``[b, 1, h]`` and skips the other positions in its last block (transformers' gives them all).
    """
    if is_own_encoder(backbone):
        sequence = backbone(inputs, first_token_only=first_token_only)[LAST_HIDDEN_STATE]
        return sequence, (apply_pooler(backbone, sequence[:, 0]) if pooled else None)
    outputs = backbone(inputs)
    return outputs.last_hidden_state, (outputs.pooler_output if pooled else None)


def apply_pooler(backbone, vectors: tf.Tensor) -> tf.Tensor:
    """The pooler on first-token vectors ``[..., h]`` (packed rows pool each example's own [CLS])."""
    require_pooler(backbone)
    pooler = pooler_layer(backbone)
    if is_own_encoder(backbone):
        return pooler(vectors)
    # transformers' pooler reads position 0 of a [batch, seq, h] tensor.
    width = vectors.shape[-1]
    pooled = pooler(hidden_states=tf.reshape(vectors, [-1, 1, width]))
    return tf.reshape(pooled, tf.shape(vectors))


# ---------------------------------------------------------------- inputs and initialisation

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


def usable_positions(backbone_config) -> Optional[int]:
    """The longest input the position table allows (RoBERTa's table starts at ``pad_token_id + 1``)."""
    positions = getattr(backbone_config, "max_position_embeddings", None)
    if positions is None:
        return None
    if getattr(backbone_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= (getattr(backbone_config, "pad_token_id", 1) or 0) + 1
    return positions


def check_sequence_length(backbone_config, max_seq_length: int) -> None:
    """Stop with one line when inputs would be longer than the position table.

    Longer inputs would fail deep inside the embedding lookup.
    """
    positions = usable_positions(backbone_config)
    if positions is not None and max_seq_length > positions:
        raise ConfigError(f"config key 'data.max_seq_length': {max_seq_length} exceeds the model's "
                          f"{positions} position embeddings")


__all__ = ["ATTENTION_MASK", "BACKBONES", "apply_pooler", "backbone_outputs", "check_sequence_length",
           "embeddings_layer", "encoder_blocks", "find_backbone", "freeze_unused_pooler", "head_initializer",
           "is_own_encoder", "load_backbone", "main_layer", "model_input_names", "model_inputs", "pooler_layer",
           "require_pooler", "served_input_names", "token_feature_names", "usable_positions",
           "uses_own_encoder"]
