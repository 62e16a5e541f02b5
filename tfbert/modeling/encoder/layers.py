"""The encoder's layers, laid out for the kernels TensorFlow fuses.

Every projection runs on tokens flattened to 2-D ``[tokens, width]``: a Keras ``Dense`` on a
rank-2 input is one ``MatMul`` + ``BiasAdd`` (+ activation), the pattern TensorFlow's grappler
remapper rewrites into a single ``_FusedMatMul`` (oneDNN on CPU, cuBLASLt epilogues on GPU) and
XLA fuses on TPU. transformers' TF BERT applies ``Dense`` to ``[batch, seq, width]``, which Keras
lowers to ``Tensordot`` (reshape → MatMul → reshape → BiasAdd), and the reshape between the
MatMul and the BiasAdd keeps them apart.

- Query, key and value are one ``[width, 3·width]`` projection (one MatMul instead of three; the
  checkpoint's three matrices are concatenated at load and split again at save).
- The attention scores are ``BatchMatMul`` → ``Mul`` (the 1/√d scale) → ``AddV2`` (the mask), the
  pattern oneDNN fuses into one batched matmul with post-ops; then ``Softmax``, a fused kernel.
- The attention bias is built once per batch, not once per layer: ``[batch, 1, 1, seq]`` from a
  padding mask, or ``[batch, 1, seq, seq]`` block-diagonal from packed ``example_ids`` (token i
  attends to token j iff both belong to the same example), so packed and padded batches run
  through the same blocks.
- LayerNorm is one fused kernel forward and one backward (`LayerNorm`: ``FusedBatchNormV3`` over
  rows, which the remapper turns into oneDNN's ``_MklLayerNorm`` for inference; tf_keras' own
  layer cannot take its fused path at BERT's epsilon and runs ~10 separate ops); statistics are
  float32 under mixed precision, as tf_keras computes them. GELU is ``tf.nn.gelu`` (exact, like
  BERT's ``gelu``), which the remapper folds into the MatMul before it.

Masked positions get -10000, as transformers' BERT adds, so attention weights equal its own.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional

import tensorflow as tf
import tf_keras

from tfbert.modeling.encoder.config import EncoderConfig

#: Added to the attention scores of positions a token must not attend to (transformers' BERT value).
MASKED = -10000.0


def _initializer(config: EncoderConfig) -> tf_keras.initializers.Initializer:
    """A new initializer per weight: an unseeded Keras initializer repeats its values on every call."""
    return tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def _activation(name: str):
    if name == "gelu":
        return lambda x: tf.nn.gelu(x, approximate=False)
    if name == "gelu_tanh":
        return lambda x: tf.nn.gelu(x, approximate=True)
    return tf.nn.relu


def _build(layer: tf_keras.layers.Layer, width: int) -> None:
    """Build a sub-layer under its own name scope, as Keras would when calling it: the variable
    names (``bert/layer_3/qkv/kernel``) are what weight decay and layer-wise rates select by."""
    with tf.name_scope(layer.name):
        layer.build([None, width])


def padding_bias(attention_mask: tf.Tensor, dtype) -> tf.Tensor:
    """``attention_mask [b, s]`` (1 = token) -> additive bias ``[b, 1, 1, s]``."""
    # expand_dims, not [:, None, None, :]: LiteRT runs ExpandDims natively but not a new-axis StridedSlice.
    bias = (1.0 - tf.cast(attention_mask, dtype)) * MASKED
    return tf.expand_dims(tf.expand_dims(bias, 1), 1)


def block_diagonal_bias(example_ids: tf.Tensor, dtype) -> tf.Tensor:
    """Packed ``example_ids [b, s]`` (1, 2, … per example, 0 on padding) -> bias ``[b, 1, s, s]``."""
    rows, columns = tf.expand_dims(example_ids, 2), tf.expand_dims(example_ids, 1)
    same = tf.equal(rows, columns) & (columns > 0)
    return tf.expand_dims((1.0 - tf.cast(same, dtype)) * MASKED, 1)


def attention_bias(inputs: dict, dtype) -> tf.Tensor:
    """The additive attention bias of a batch: block-diagonal when packed, else from the padding mask."""
    if "example_ids" in inputs:
        return block_diagonal_bias(inputs["example_ids"], dtype)
    if "attention_mask" in inputs:
        return padding_bias(inputs["attention_mask"], dtype)
    return padding_bias(tf.ones_like(inputs["input_ids"]), dtype)


#: Set while an export traces the model (`portable_ops`): LayerNorm is written in the plain form
#: other runtimes recognise (ONNX Runtime and LiteRT fuse it themselves).
_PORTABLE: contextvars.ContextVar[bool] = contextvars.ContextVar("tfbert_portable_ops", default=False)
_EMPTY = ()


@contextlib.contextmanager
def portable_ops() -> Iterator[None]:
    """Trace the encoder with ops every converter knows (ONNX, LiteRT) instead of TensorFlow's fused forms."""
    token = _PORTABLE.set(True)
    try:
        yield
    finally:
        _PORTABLE.reset(token)


class LayerNorm(tf_keras.layers.Layer):
    """Layer normalisation over the last axis, as one fused kernel: ``FusedBatchNormV3`` in training mode.

    Rows of ``[tokens, width]`` become the channels of a ``[1, tokens, width, 1]`` NCHW tensor, so
    batch-norm statistics over each channel are layer-norm statistics over each token. Forward and
    backward are then one kernel each (``FusedBatchNormV3`` / ``FusedBatchNormGradV3``), and in
    inference graphs TensorFlow's grappler remapper rewrites the pattern into oneDNN's
    ``_MklLayerNorm``; XLA lowers it on TPU. This is tf_keras' own fused layout, which tf_keras only
    takes for epsilon >= 1.001e-5 (a cuDNN limit the Python wrapper enforces): BERT's epsilon is
    1e-12, so tf_keras falls back to ~10 separate ops per LayerNorm. The raw op takes 1e-12 as it is
    on CPU and under XLA. On GPUs (cuDNN's minimum epsilon, not tried here) and while an export
    traces the model (`portable_ops`) the plain ``tf.nn.moments`` form is used instead.

    Weights are ``gamma`` and ``beta`` in float32; under mixed precision the input is normalised in
    float32 and cast back, as tf_keras does.
    """

    def __init__(self, epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.gamma = self.add_weight("gamma", shape=[width], initializer="ones", experimental_autocast=False)
        self.beta = self.add_weight("beta", shape=[width], initializer="zeros", experimental_autocast=False)
        super().build(input_shape)

    def call(self, x):
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        if _PORTABLE.get() or tf.config.list_logical_devices("GPU"):
            mean, variance = tf.nn.moments(x, [-1], keepdims=True)
            out = tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)
            return tf.cast(out, dtype)
        shape = tf.shape(x)
        rows = tf.reduce_prod(shape[:-1])
        empty = tf.constant(_EMPTY, tf.float32)
        normed = tf.raw_ops.FusedBatchNormV3(
            x=tf.reshape(x, [1, rows, x.shape[-1], 1]), scale=tf.fill([rows], 1.0), offset=tf.fill([rows], 0.0),
            mean=empty, variance=empty, epsilon=self.epsilon, data_format="NCHW", is_training=True)[0]
        return tf.cast(tf.reshape(normed, shape) * self.gamma + self.beta, dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "epsilon": self.epsilon}


class Embeddings(tf_keras.layers.Layer):
    """Word + position (+ token type) embeddings, LayerNorm, dropout (+ ELECTRA's projection).

    Returns ``[tokens, hidden]``: the tokens of the batch flattened, as the blocks take them.
    """

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        width = config.embedding_size or config.hidden_size
        self.width = width
        self.layer_norm = LayerNorm(config.layer_norm_eps, name="layer_norm")
        self.dropout = tf_keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")
        self.projection = (tf_keras.layers.Dense(config.hidden_size, kernel_initializer=_initializer(config),
                                                 name="projection") if config.embedding_size else None)

    def build(self, input_shape=None):
        c = self.config
        self.word_embeddings = self.add_weight("word_embeddings", shape=[c.vocab_size, self.width],
                                               initializer=_initializer(c))
        self.position_embeddings = self.add_weight(
            "position_embeddings", shape=[c.max_position_embeddings, self.width], initializer=_initializer(c))
        self.token_type_embeddings = (self.add_weight("token_type_embeddings", shape=[c.type_vocab_size, self.width],
                                                      initializer=_initializer(c)) if c.type_vocab_size else None)
        _build(self.layer_norm, self.width)
        if self.projection is not None:
            _build(self.projection, self.width)
        super().build(input_shape)

    def positions(self, input_ids: tf.Tensor, position_ids: Optional[tf.Tensor]) -> tf.Tensor:
        """Position embeddings ``[b or 1, s, width]`` for the batch."""
        offset = self.config.position_offset
        if position_ids is not None:
            # Packed rows: ids restart at 0 for every example.
            return tf.gather(self.position_embeddings, position_ids + offset if offset else position_ids)
        if self.config.family.roberta_positions:
            # RoBERTa counts real tokens from pad_token_id + 1 and gives padding the pad_token_id row.
            real = tf.cast(tf.not_equal(input_ids, self.config.pad_token_id), input_ids.dtype)
            return tf.gather(self.position_embeddings, tf.cumsum(real, axis=1) * real + self.config.pad_token_id)
        return tf.expand_dims(tf.slice(self.position_embeddings, [0, 0], [tf.shape(input_ids)[1], -1]), 0)

    def call(self, input_ids, token_type_ids=None, position_ids=None, training=None):
        x = tf.gather(self.word_embeddings, input_ids)
        x = x + self.positions(input_ids, position_ids)
        if self.token_type_embeddings is not None:
            types = tf.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            x = x + tf.gather(self.token_type_embeddings, types)
        x = tf.reshape(x, [-1, self.width])
        x = self.layer_norm(x)
        x = self.dropout(x, training=training)
        if self.projection is not None:
            x = self.projection(x)
        return x

    def named_weights(self) -> dict[str, tf.Variable]:
        """Internal weight key (`Family.embedding_names`) -> variable."""
        out = {"word_embeddings": self.word_embeddings, "position_embeddings": self.position_embeddings,
               "layer_norm/gamma": self.layer_norm.gamma, "layer_norm/beta": self.layer_norm.beta}
        if self.token_type_embeddings is not None:
            out["token_type_embeddings"] = self.token_type_embeddings
        if self.projection is not None:
            out.update({"projection/kernel": self.projection.kernel, "projection/bias": self.projection.bias})
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), "config": self.config.raw}


class TransformerBlock(tf_keras.layers.Layer):
    """One post-LayerNorm transformer block on ``[tokens, hidden]`` with a precomputed attention bias.

    ``call(x, bias)``: `x` ``[b·s, hidden]``, `bias` ``[b, 1, 1 or s, s]`` (`attention_bias`); the
    batch and sequence sizes are read from the bias, so a block is a self-contained functional
    node (IPU pipelining assigns blocks to stages).
    """

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.scale = 1.0 / float(self.head_size) ** 0.5
        self.qkv = tf_keras.layers.Dense(3 * d, kernel_initializer=_initializer(config), name="qkv")
        self.attention_dropout = tf_keras.layers.Dropout(config.attention_probs_dropout_prob, name="attention_dropout")
        self.attention_output = tf_keras.layers.Dense(d, kernel_initializer=_initializer(config), name="attention_output")
        self.attention_output_dropout = tf_keras.layers.Dropout(config.hidden_dropout_prob, name="attention_output_dropout")
        self.attention_layer_norm = LayerNorm(config.layer_norm_eps, name="attention_layer_norm")
        self.intermediate = tf_keras.layers.Dense(config.intermediate_size, activation=_activation(config.activation),
                                                  kernel_initializer=_initializer(config), name="intermediate")
        self.output_dense = tf_keras.layers.Dense(d, kernel_initializer=_initializer(config), name="output")
        self.output_dropout = tf_keras.layers.Dropout(config.hidden_dropout_prob, name="output_dropout")
        self.output_layer_norm = LayerNorm(config.layer_norm_eps, name="output_layer_norm")

    def build(self, input_shape=None):
        d = self.config.hidden_size
        for layer, width in ((self.qkv, d), (self.attention_output, d), (self.attention_layer_norm, d),
                             (self.intermediate, d), (self.output_dense, self.config.intermediate_size),
                             (self.output_layer_norm, d)):
            _build(layer, width)
        super().build(input_shape)

    def call(self, x, bias, training=None, first_token_only: bool = False):
        """`x` ``[b·s, hidden]`` -> ``[b·s, hidden]``, or ``[b, hidden]`` (each row's first token) with
        `first_token_only`: keys and values still span the whole row, but only the first token's query,
        output projection and feed-forward are computed. Exact for a last block whose head reads
        position 0 only (``[CLS]``, the pooler); about three quarters of the block's work is skipped.
        """
        batch, seq = tf.shape(bias)[0], tf.shape(bias)[-1]
        h, dh = self.num_heads, self.head_size
        qkv = self.qkv(x)
        # [b·s, 3·h·dh] -> [b, 3·h, s, dh]: one transpose for the three heads' layouts.
        qkv = tf.transpose(tf.reshape(qkv, [batch, seq, 3 * h, dh]), [0, 2, 1, 3])
        q, k, v = tf.split(qkv, 3, axis=1)
        if first_token_only:
            # A padding bias is [b, 1, 1, s] and serves any number of queries; a packed one is per query.
            q = q[:, :, :1, :]
            x = tf.reshape(x, [batch, seq, -1])[:, 0, :]
        scores = tf.matmul(q, k, transpose_b=True) * tf.cast(self.scale, qkv.dtype) + bias
        probs = tf.nn.softmax(scores, axis=-1)
        probs = self.attention_dropout(probs, training=training)
        context = tf.matmul(probs, v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, h * dh])
        attended = self.attention_output_dropout(self.attention_output(context), training=training)
        x = self.attention_layer_norm(attended + x)
        out = self.output_dropout(self.output_dense(self.intermediate(x)), training=training)
        return self.output_layer_norm(out + x)

    def named_weights(self) -> dict[str, tf.Variable]:
        """Internal weight key (`Family.block_names`) -> variable."""
        return {
            "qkv/kernel": self.qkv.kernel, "qkv/bias": self.qkv.bias,
            "attention_output/kernel": self.attention_output.kernel, "attention_output/bias": self.attention_output.bias,
            "attention_layer_norm/gamma": self.attention_layer_norm.gamma,
            "attention_layer_norm/beta": self.attention_layer_norm.beta,
            "intermediate/kernel": self.intermediate.kernel, "intermediate/bias": self.intermediate.bias,
            "output/kernel": self.output_dense.kernel, "output/bias": self.output_dense.bias,
            "output_layer_norm/gamma": self.output_layer_norm.gamma, "output_layer_norm/beta": self.output_layer_norm.beta,
        }

    def get_config(self) -> dict:
        return {**super().get_config(), "config": self.config.raw}


class Pooler(tf_keras.layers.Layer):
    """BERT's pooler: dense + tanh on a sentence's first-token vector ``[..., hidden]``."""

    def __init__(self, config: EncoderConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.dense = tf_keras.layers.Dense(config.hidden_size, activation="tanh",
                                           kernel_initializer=_initializer(config), name="dense")

    def build(self, input_shape=None):
        _build(self.dense, self.config.hidden_size)
        super().build(input_shape)

    def call(self, vector):
        return self.dense(vector)

    def named_weights(self) -> dict[str, tf.Variable]:
        return {"pooler/kernel": self.dense.kernel, "pooler/bias": self.dense.bias}

    def get_config(self) -> dict:
        return {**super().get_config(), "config": self.config.raw}


__all__ = ["Embeddings", "LayerNorm", "MASKED", "portable_ops", "Pooler", "TransformerBlock", "attention_bias", "block_diagonal_bias",
           "padding_bias"]
