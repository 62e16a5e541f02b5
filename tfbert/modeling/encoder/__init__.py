"""tfbert's own BERT-family encoder: fused layers, Hugging Face weights, no transformers TF class.

- `config`: which checkpoints it runs (`SUPPORTED_MODEL_TYPES`: BERT/MiniLM, RoBERTa, XLM-R,
  ELECTRA, DistilBERT) and their ``config.json`` fields;
- `layers` / `encoder`: the Keras layers (`TransformerEncoder`);
- `checkpoint`: ``model.safetensors`` / ``tf_model.h5`` in and out under transformers' names.

`load_encoder(model_dir)` is what `model.backbone: tfbert` (and ``auto`` for these types) calls.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tfbert.errors import ModelError
from tfbert.modeling.encoder.config import (
    SUPPORTED_MODEL_TYPES, EncoderConfig, encoder_config_from_dict, unsupported_reason,
)


def read_config_json(model_dir: str | Path) -> dict:
    """A model directory's ``config.json`` as a dict (a `ModelError` naming the file otherwise)."""
    path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{Path(model_dir)}: no config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return raw


def build_encoder(config: EncoderConfig, name: Optional[str] = None):
    """A built `TransformerEncoder` with freshly initialised weights."""
    from tfbert.modeling.encoder.encoder import TransformerEncoder

    import tensorflow as tf

    encoder = TransformerEncoder(config, **({"name": name} if name else {}))
    # Built outside any call (weights load before the task model exists): open the scope Keras
    # would, so variables are named bert/layer_3/qkv/kernel as in a called layer.
    with tf.name_scope(encoder.name):
        encoder.build(None)
    return encoder


def load_encoder(model_dir: str | Path, weights: Optional[Path] = None):
    """The encoder of a Hugging Face model directory, weights loaded from its checkpoint.

    Args:
        model_dir: a directory with ``config.json`` and ``model.safetensors`` or ``tf_model.h5``.
        weights: the weights file, default: the directory's (safetensors first).

    Returns:
        ``(encoder, state)``: the built `TransformerEncoder` and the checkpoint's state dict (task
        checkpoints carry their head in it too).
    """
    from tfbert.modeling.encoder.checkpoint import checkpoint_file, load_encoder_weights, read_state_dict

    model_dir = Path(model_dir)
    raw = read_config_json(model_dir)
    weights = weights or checkpoint_file(model_dir)
    if weights is None:
        raise ModelError(f"{model_dir}: no weights found (expected model.safetensors or tf_model.h5)")
    state = read_state_dict(weights)
    # Task checkpoints of token and span heads have no pooler: the encoder keeps one anyway,
    # freshly initialised as transformers does, so a sentence head reading it can be built on them.
    encoder = build_encoder(encoder_config_from_dict(raw))
    load_encoder_weights(encoder, state, source=str(weights))
    return encoder, state


__all__ = ["SUPPORTED_MODEL_TYPES", "EncoderConfig", "build_encoder", "encoder_config_from_dict", "load_encoder",
           "read_config_json", "unsupported_reason"]
