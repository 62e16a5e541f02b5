"""The packed twin of a task model: several examples per row, none attending to another.

tfbert's encoder takes packed rows natively (`tfbert.modeling.encoder`): given ``example_ids`` it
builds an additive block-diagonal attention bias (token i may attend to token j iff both belong to
the same example) and given ``position_ids`` (restarting at 0 for every example) it looks positions
up per example. The twin feeds it a packed batch, then reads each example out of its row:

- sequence classification: each example's own [CLS] (``example_starts``), or the pooler on it, or
  the mean over the example's tokens -> logits ``[packs, K, num_labels]``;
- token classification: per-token logits ``[packs, seq, num_labels]`` as unpacked;
- question answering: start/end logits ``[packs, K, seq]``, -1e9 outside each window's own tokens,
  so each window's softmax runs over its own tokens only.

Every variable is the standard model's (same layer objects), so saving, export and serving keep
using the unpacked model (`unpacked_model`); only training runs the twin. The loss is the mean
over the examples (or labelled tokens) of a batch, as unpacked: empty slots carry IGNORE_INDEX.
transformers' TF models build their mask from a 2-D padding mask and cannot keep packed examples
apart, so packing needs the own encoder (``model.backbone: auto`` or ``tfbert``).
"""
from __future__ import annotations

import weakref

import tensorflow as tf
import tf_keras

from tfbert.errors import ConfigError
from tfbert.modeling.backbone import apply_pooler, find_backbone, is_own_encoder
from tfbert.modeling.encoder import SUPPORTED_MODEL_TYPES
from tfbert.modeling.encoder.encoder import LAST_HIDDEN_STATE
from tfbert.modeling.task_model import TaskModel

#: Added to logits outside an example (float32 logits: exp underflows to exactly 0).
_OUTSIDE = -1e9

_UNPACKED: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()


def unpacked_model(model):
    """The standard (unpacked) model sharing `model`'s variables, or `model` itself."""
    return _UNPACKED.get(model, model)


def check_packable(backbone) -> None:
    """Stop with one line unless the backbone is tfbert's own encoder."""
    if not is_own_encoder(backbone):
        model_type = getattr(getattr(backbone, "config", None), "model_type", type(backbone).__name__)
        raise ConfigError(
            f"config key 'data.padding': packed needs tfbert's own encoder (model types "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}; model.backbone auto or tfbert); this backbone is "
            f"transformers' {type(backbone).__name__} ({model_type!r}): use data.padding: bucket or max_length")


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


def packed_hidden_states(encoder, inputs: dict) -> tf.Tensor:
    """Last hidden states ``[b, seq, h]`` of the encoder over packed rows (each example attends to itself)."""
    names = ("input_ids", "token_type_ids", "position_ids", "example_ids")
    return encoder({n: inputs[n] for n in names if n in inputs})[LAST_HIDDEN_STATE]


def build_packed_model(model: TaskModel, task, max_seq_length: int, max_examples_per_pack: int,
                       pooling: str = "pooler") -> TaskModel:
    """The packed twin of a standard tfbert task model (same variables), for training on packed batches.

    Args:
        model: the standard model (`Task.build_model`), which stays the one saved and exported.
        task: the `tfbert.tasks.Task`, whose `packed_outputs` reads each example out of its row
            (given the encoder as its ``main`` argument).
        max_seq_length: tokens per row.
        max_examples_per_pack: example slots per row.
        pooling: ``model.pooling`` of a sequence classifier.

    Examples:
        >>> twin = build_packed_model(model, get_task("sequence_classification"), 128, 32)  # doctest: +SKIP
        >>> twin.compile(optimizer, **get_task("sequence_classification").packed_compile_args())  # doctest: +SKIP
    """
    encoder = find_backbone(model)
    check_packable(encoder)
    names = list(model.input.keys()) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    inputs = packed_inputs(names, max_seq_length, max_examples_per_pack)
    hidden = packed_hidden_states(encoder, inputs)
    outputs = task.packed_outputs(model, encoder, hidden, inputs, max_examples_per_pack, pooling)
    twin = TaskModel(inputs=inputs, outputs=outputs, name=f"{model.name}_packed",
                     gradient_accumulation_steps=model.gradient_accumulation_steps)
    _UNPACKED[twin] = model
    return twin


def packed_sequence_vector(encoder, hidden, inputs: dict, max_examples_per_pack: int, pooling: str):
    """Each example's sentence vector ``[packs, K, hidden]``: its own [CLS], the pooler on it, or its mean."""
    if pooling == "mean":
        membership = ExampleTokens(max_examples_per_pack, name="example_tokens")(inputs["example_ids"])
        return MeanExamples(name="example_mean")([hidden, membership])
    vector = GatherExamples(name="example_cls")([hidden, inputs["example_starts"]])
    return apply_pooler(encoder, vector) if pooling == "pooler" else vector


__all__ = ["build_packed_model", "check_packable", "packed_hidden_states", "packed_inputs",
           "packed_sequence_vector", "unpacked_model"]
