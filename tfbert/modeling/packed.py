"""The packed twin of a task model: several examples per row, none attending to another.

transformers' TF BERT builds its attention mask from a 2-D padding mask, which cannot keep packed
examples apart. The twin therefore calls the backbone's own ``embeddings`` (with per-example
``position_ids`` restarting at 0 and per-example ``token_type_ids``) and each ``encoder.layer``
with an additive block-diagonal mask built from ``example_ids`` (token i may attend to token j
iff both belong to the same example), then reads each example out of its row:

- sequence classification: each example's own [CLS] (``example_starts``), or the pooler on it, or
  the mean over the example's tokens -> logits ``[packs, K, num_labels]``;
- token classification: per-token logits ``[packs, seq, num_labels]`` as unpacked;
- question answering: start/end logits ``[packs, K, seq]``, -1e9 outside each window's own tokens,
  so each window's softmax runs over its own tokens only.

Every variable is the standard model's (same layer objects), so saving, export and serving keep
using the unpacked model (`unpacked_model`); only training runs the twin. The loss is the mean
over the examples (or labelled tokens) of a batch, as unpacked: empty slots carry IGNORE_INDEX.
"""
from __future__ import annotations

import weakref

import tensorflow as tf
import tf_keras

from tfbert.errors import ConfigError
from tfbert.modeling.backbone import find_backbone, main_layer
from tfbert.modeling.task_model import TaskModel

#: ``config.model_type`` of backbones whose embeddings and encoder layers the twin can drive.
SUPPORTED_MODEL_TYPES = ("bert",)

#: Added to logits outside an example (float32 logits: exp underflows to exactly 0).
_OUTSIDE = -1e9

_UNPACKED: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()


def unpacked_model(model):
    """The standard (unpacked) model sharing `model`'s variables, or `model` itself."""
    return _UNPACKED.get(model, model)


def check_packable(backbone) -> None:
    """Stop with one line unless the backbone is of the BERT architecture family."""
    model_type = getattr(backbone.config, "model_type", type(backbone).__name__)
    main = main_layer(backbone) if hasattr(backbone, "base_model_prefix") else None
    layers = getattr(getattr(main, "encoder", None), "layer", None)
    if model_type not in SUPPORTED_MODEL_TYPES or getattr(main, "embeddings", None) is None or not layers:
        raise ConfigError(
            f"config key 'data.padding': packed supports model types {', '.join(SUPPORTED_MODEL_TYPES)} "
            f"(BERT, MiniLM and other BertModel checkpoints); {type(backbone).__name__} is {model_type!r}: "
            "use data.padding: bucket or max_length")


@tf_keras.utils.register_keras_serializable(package="tfbert")
class BlockAttentionBias(tf_keras.layers.Layer):
    """``example_ids [b, seq]`` -> additive mask ``[b, 1, seq, seq]``: 0 within an example, -10000 elsewhere.

    -10000 is what BERT adds on padding, so an example's attention equals its unpacked attention.
    """

    def call(self, example_ids):
        same = tf.equal(example_ids[:, :, None], example_ids[:, None, :]) & (example_ids[:, None, :] > 0)
        return ((1.0 - tf.cast(same, self.compute_dtype)) * -10000.0)[:, None, :, :]


@tf_keras.utils.register_keras_serializable(package="tfbert")
class ExampleTokens(tf_keras.layers.Layer):
    """``example_ids [b, seq]`` -> float membership ``[b, K, seq]`` (1 where the token belongs to slot k)."""

    def __init__(self, max_examples_per_pack: int, **kwargs):
        super().__init__(**kwargs)
        self.max_examples_per_pack = int(max_examples_per_pack)

    def call(self, example_ids):
        # one_hot of -1 (padding) is all zeros.
        return tf.transpose(tf.one_hot(example_ids - 1, self.max_examples_per_pack, dtype=self.compute_dtype),
                            [0, 2, 1])

    def get_config(self) -> dict:
        return {**super().get_config(), "max_examples_per_pack": self.max_examples_per_pack}


@tf_keras.utils.register_keras_serializable(package="tfbert")
class GatherExamples(tf_keras.layers.Layer):
    """``(hidden [b, seq, h], positions [b, K])`` -> ``[b, K, h]``: each example's token at its position."""

    def call(self, inputs):
        hidden, positions = inputs
        return tf.gather(hidden, positions, batch_dims=1)


@tf_keras.utils.register_keras_serializable(package="tfbert")
class MeanExamples(tf_keras.layers.Layer):
    """``(hidden [b, seq, h], membership [b, K, seq])`` -> mean hidden state of each example ``[b, K, h]``."""

    def call(self, inputs):
        hidden, membership = inputs
        membership = tf.cast(membership, hidden.dtype)
        total = tf.matmul(membership, hidden)
        return total / tf.maximum(tf.reduce_sum(membership, axis=-1, keepdims=True), 1.0)


@tf_keras.utils.register_keras_serializable(package="tfbert")
class ExampleSpanLogits(tf_keras.layers.Layer):
    """``(logits [b, seq], membership [b, K, seq])`` -> ``[b, K, seq]``: each window's logits, -1e9 elsewhere."""

    def call(self, inputs):
        logits, membership = inputs
        inside = tf.cast(membership, tf.float32) > 0
        return tf.where(inside, tf.cast(logits, tf.float32)[:, None, :], _OUTSIDE)


def packed_inputs(input_names: list[str], max_seq_length: int, max_examples_per_pack: int
                  ) -> dict[str, tf_keras.Input]:
    """Static-shape int32 inputs of a packed batch (`tfbert.data.packing`)."""
    token_names = [n for n in input_names if n not in ("attention_mask", "position_ids", "example_ids")]
    inputs = {n: tf_keras.Input(shape=(max_seq_length,), dtype=tf.int32, name=n) for n in token_names}
    inputs["position_ids"] = tf_keras.Input(shape=(max_seq_length,), dtype=tf.int32, name="position_ids")
    inputs["example_ids"] = tf_keras.Input(shape=(max_seq_length,), dtype=tf.int32, name="example_ids")
    inputs["example_starts"] = tf_keras.Input(shape=(max_examples_per_pack,), dtype=tf.int32, name="example_starts")
    return inputs


def packed_hidden_states(main, inputs: dict) -> tf.Tensor:
    """Last hidden states ``[b, seq, h]`` of the backbone's main layer over packed rows."""
    hidden = main.embeddings(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"],
                             token_type_ids=inputs.get("token_type_ids"))
    bias = BlockAttentionBias(name="block_attention_bias")(inputs["example_ids"])
    for layer in main.encoder.layer:
        hidden = layer(hidden_states=hidden, attention_mask=bias, head_mask=None, encoder_hidden_states=None,
                       encoder_attention_mask=None, past_key_value=None, output_attentions=False)[0]
    return hidden


def build_packed_model(model: TaskModel, task, max_seq_length: int, max_examples_per_pack: int,
                       pooling: str = "pooler") -> TaskModel:
    """The packed twin of a standard tfbert task model (same variables), for training on packed batches.

    Args:
        model: the standard model (`Task.build_model`), which stays the one saved and exported.
        task: the `tfbert.tasks.Task`, whose `packed_outputs` reads each example out of its row.
        max_seq_length: tokens per row.
        max_examples_per_pack: example slots per row.
        pooling: ``model.pooling`` of a sequence classifier.

    Examples:
        >>> twin = build_packed_model(model, get_task("sequence_classification"), 128, 32)  # doctest: +SKIP
        >>> twin.compile(optimizer, **get_task("sequence_classification").packed_compile_args())  # doctest: +SKIP
    """
    backbone = find_backbone(model)
    check_packable(backbone)
    main = main_layer(backbone)
    names = list(model.input.keys()) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    inputs = packed_inputs(names, max_seq_length, max_examples_per_pack)
    hidden = packed_hidden_states(main, inputs)
    outputs = task.packed_outputs(model, main, hidden, inputs, max_examples_per_pack, pooling)
    twin = TaskModel(inputs=inputs, outputs=outputs, name=f"{model.name}_packed",
                     gradient_accumulation_steps=model.gradient_accumulation_steps)
    _UNPACKED[twin] = model
    return twin


def packed_sequence_vector(main, hidden, inputs: dict, max_examples_per_pack: int, pooling: str):
    """Each example's sentence vector ``[packs, K, hidden]``: its own [CLS], the pooler on it, or its mean."""
    k = max_examples_per_pack
    if pooling == "mean":
        membership = ExampleTokens(k, name="example_tokens")(inputs["example_ids"])
        return MeanExamples(name="example_mean")([hidden, membership])
    vector = GatherExamples(name="example_cls")([hidden, inputs["example_starts"]])
    if pooling == "pooler":
        # BERT's pooler reads position 0 of a [batch, seq, h] tensor: give it one example per row.
        width = hidden.shape[-1]
        pooled = main.pooler(hidden_states=tf.reshape(vector, [-1, 1, width]))
        vector = tf.reshape(pooled, [-1, k, width])
    return vector


__all__ = ["SUPPORTED_MODEL_TYPES", "build_packed_model", "check_packable", "packed_inputs",
           "packed_sequence_vector", "unpacked_model"]
