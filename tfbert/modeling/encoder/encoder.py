"""`TransformerEncoder`: tfbert's own BERT-family encoder, one Keras layer inside a task model.

It plays the part a transformers ``TF<Arch>Model`` played: ``encoder(inputs)`` takes the task
model's input dict and returns ``{"last_hidden_state": [b, s, hidden]}``. Inputs may be a padded
batch (``input_ids``, ``attention_mask``, maybe ``token_type_ids``) or a packed one (``example_ids``
and ``position_ids`` as well; `tfbert.data.packing`): the attention bias is built from whichever is
there, so the packed twin of a task model calls the same layer (`tfbert.modeling.packed`).

Its sub-layers (``embeddings``, ``blocks[i]``, ``pooler``) are public because freezing, layer-wise
learning rates, IPU pipelining and the packed pooler address them directly. The pooler is not
applied here: a head that reads it calls ``encoder.pooler`` on the vectors it wants (the first
token of each row, or of each packed example), so heads that never read it cost nothing.

Weights load from and save to Hugging Face checkpoints under transformers' own names
(`tfbert.modeling.encoder.checkpoint`).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from tfbert.modeling.encoder.config import EncoderConfig, encoder_config_from_dict
from tfbert.modeling.encoder.layers import Embeddings, Pooler, TransformerBlock, attention_bias

LAST_HIDDEN_STATE = "last_hidden_state"


@tf_keras.utils.register_keras_serializable(package="tfbert")
class TransformerEncoder(tf_keras.layers.Layer):
    """Embeddings + ``num_hidden_layers`` transformer blocks (+ an optional pooler).

    Args:
        config: the `EncoderConfig` (`tfbert.modeling.encoder.read_encoder_config`).

    Examples:
        >>> encoder = TransformerEncoder(encoder_config_from_dict(json.load(open("config.json"))))  # doctest: +SKIP
        >>> encoder({"input_ids": ids, "attention_mask": mask})["last_hidden_state"]  # doctest: +SKIP
    """

    def __init__(self, config: EncoderConfig, **kwargs):
        kwargs.setdefault("name", config.family.prefix)
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = Embeddings(config, name="embeddings")
        self.blocks = [TransformerBlock(config, name=f"layer_{i}") for i in range(config.num_hidden_layers)]
        self.pooler = Pooler(config, name="pooler") if config.has_pooler else None

    def build(self, input_shape=None):
        for layer in [self.embeddings, *self.blocks] + ([self.pooler] if self.pooler is not None else []):
            with tf.name_scope(layer.name):
                layer.build(None)
        super().build(input_shape)

    def call(self, inputs: dict, training=None, first_token_only: bool = False) -> dict:
        """``{"last_hidden_state": [b, s, hidden]}``; ``[b, 1, hidden]`` with `first_token_only`.

        `first_token_only` is for heads that read position 0 alone (``[CLS]``, the pooler): the last
        block then computes that position only (`TransformerBlock.call`), exactly as the full block
        would, in training and inference. Packed rows (``example_ids``) hold one first token per
        example, so they always get the whole sequence.
        """
        ids = inputs["input_ids"]
        bias = attention_bias(inputs, self.compute_dtype)
        x = self.embeddings(ids, inputs.get("token_type_ids"), inputs.get("position_ids"), training=training)
        first_token_only = first_token_only and "example_ids" not in inputs
        for block in self.blocks:
            x = block(x, bias, training=training, first_token_only=first_token_only and block is self.blocks[-1])
        return {LAST_HIDDEN_STATE: self.sequence(x, ids, first_token_only)}

    def sequence(self, x: tf.Tensor, input_ids: tf.Tensor, first_token_only: bool = False) -> tf.Tensor:
        """The last block's rows as ``[b, s, hidden]`` (``[b, 1, hidden]`` when it computed first tokens only)."""
        shape = tf.shape(input_ids)
        return tf.reshape(x, [shape[0], 1 if first_token_only else shape[1], self.config.hidden_size])

    def named_weights(self) -> dict[str, tf.Variable]:
        """Every weight under its internal key; blocks' keys carry ``{i}`` filled in (``layer_3/qkv/kernel``)."""
        out = dict(self.embeddings.named_weights())
        for i, block in enumerate(self.blocks):
            out.update({f"layer_{i}/{k}": v for k, v in block.named_weights().items()})
        if self.pooler is not None:
            out.update(self.pooler.named_weights())
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), "config": self.config.raw, "has_pooler": self.config.has_pooler}

    @classmethod
    def from_config(cls, config: dict) -> "TransformerEncoder":
        config = dict(config)
        encoder_config = encoder_config_from_dict(config.pop("config"), has_pooler=config.pop("has_pooler", None))
        return cls(encoder_config, **config)


__all__ = ["LAST_HIDDEN_STATE", "TransformerEncoder"]
