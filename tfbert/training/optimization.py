"""Optimizers (Adam, AdamW) and the warmup + polynomial-decay learning-rate schedule."""
from __future__ import annotations

import math
import re
from typing import Iterable, Optional

import tensorflow as tf
import tf_keras

from tfbert.config import OptimizerConfig

# Decoupled weight decay skips these (as in BERT and Hugging Face's Trainer).
NO_DECAY_NAMES = ["LayerNorm", "layer_norm", "bias"]
#: Encoder blocks: ``layer_N`` in tfbert's encoder, ``layer_._N`` in transformers' TF models.
_ENCODER_LAYER = re.compile(r"^layer_(?:\._)?(\d+)$")


@tf_keras.utils.register_keras_serializable(package="tfbert")
class WarmupPolynomialDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `learning_rate`, then polynomial decay to `end_learning_rate`.

    ``power=1`` is Hugging Face's ``linear`` schedule; ``decay_steps=0`` keeps the rate constant
    after warmup. Steps are optimizer updates (after gradient accumulation).
    """

    def __init__(self, learning_rate: float, warmup_steps: int, decay_steps: int,
                 end_learning_rate: float = 0.0, power: float = 1.0, name: str = "WarmupPolynomialDecay"):
        super().__init__()
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name):
            step = tf.cast(step, tf.float32)
            peak = tf.constant(self.learning_rate, tf.float32)
            warmup = tf.constant(float(self.warmup_steps), tf.float32)
            warm = peak * step / tf.maximum(warmup, 1.0)
            if self.decay_steps <= 0:
                decayed = peak
            else:
                progress = tf.minimum(tf.maximum(step - warmup, 0.0) / float(self.decay_steps), 1.0)
                decayed = (peak - self.end_learning_rate) * (1.0 - progress) ** self.power + self.end_learning_rate
            return tf.where(step < warmup, warm, decayed)

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
            "power": self.power, "name": self.name,
        }


def warmup_steps_for(config: OptimizerConfig, total_steps: int) -> int:
    """Warmup in optimizer steps: explicit ``warmup_steps`` or ``ceil(warmup_ratio * total)``."""
    if config.warmup_steps:
        return config.warmup_steps
    return int(math.ceil(config.warmup_ratio * total_steps))


def make_schedule(config: OptimizerConfig, total_steps: int) -> WarmupPolynomialDecay:
    """The schedule for `total_steps` optimizer updates."""
    warmup = warmup_steps_for(config, total_steps)
    if config.lr_scheduler_type == "constant":
        decay, power = 0, 1.0
    else:
        decay = max(total_steps - warmup, 1)
        power = 1.0 if config.lr_scheduler_type == "linear" else config.power
    return WarmupPolynomialDecay(config.learning_rate, warmup, decay, config.lr_end, power)


class _FusedDenseUpdate:
    """Dense Adam update in one fused kernel (``ResourceApplyAdam``).

    tf_keras' Adam/AdamW write the dense update as ~10 elementwise ops, each a pass over the
    variable and its two moments; for MiniLM's 22.6M parameters that took ~80 ms per step on 2 CPU
    cores, half the compute of a short-sequence batch (docs/benchmarks.md). The fused kernel makes
    one pass with the same formula (m, v, then var -= lr·sqrt(1-β2ᵗ)/(1-β1ᵗ)·m/(sqrt(v)+ε)), so
    results agree to float rounding. Sparse gradients are densified (after clipping) and take the
    same kernel; AMSGrad, adaptive epsilon and distributed variables keep the stock path;
    decoupled weight decay is applied before update_step, skipped when it is 0.
    """

    #: Per-variable learning-rate factors (`set_learning_rate_multipliers`), by `_var_key`; 1 when absent.
    _lr_multipliers: Optional[dict] = None
    #: The factor of the variable being updated; `learning_rate` includes it while it is set.
    _lr_scale: Optional[float] = None

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def set_learning_rate_multipliers(self, pairs: Iterable[tuple[tf.Variable, float]]) -> None:
        """Give variables their own learning rate: the schedule's value times the factor.

        The factor scales the Adam step and the decoupled weight decay (which tf_keras also
        multiplies by the learning rate) on every path: fused, stock (distributed), sparse rows,
        under loss scaling and for accumulated gradients. Not tracked: checkpoints keep their
        structure; the factors are derived again from the config when a run resumes.

        Args:
            pairs: ``(variable, factor)``; factors of 1 need not be listed.

        Examples:
            >>> optimizer.set_learning_rate_multipliers([(head_kernel, 20.0)])  # doctest: +SKIP
        """
        self._lr_multipliers = {self._var_key(v): float(m) for v, m in pairs if float(m) != 1.0}

    def learning_rate_multiplier(self, variable) -> float:
        """The factor `set_learning_rate_multipliers` gave `variable` (1 by default)."""
        if not self._lr_multipliers:
            return 1.0
        return self._lr_multipliers.get(self._var_key(variable), 1.0)

    @property
    def learning_rate(self):
        # Read by tf_keras' own update and weight-decay code: scaling it here while one variable
        # is updated gives the stock paths (distributed, AMSGrad) the per-variable rate too.
        lr = super().learning_rate
        return lr if self._lr_scale is None else lr * self._lr_scale

    @learning_rate.setter
    def learning_rate(self, value):
        super(_FusedDenseUpdate, type(self)).learning_rate.fset(self, value)

    #: The last update's global gradient norm (after any loss-scale unscaling, before clipping),
    #: once `track_gradient_norm` has created it; read between steps for step-level logging.
    gradient_norm: Optional[tf.Variable] = None

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def track_gradient_norm(self) -> tf.Variable:
        """Create (once) the variable `_clip_gradients` writes the global gradient norm into.

        Not tracked: checkpoints keep their structure, so older backups still restore. ON_READ with
        ONLY_FIRST_REPLICA: every replica sees the same all-reduced gradients, so each writes its
        own copy without a merge_call (which fails inside the update's tf.cond), and a read takes
        the first replica's value without communication.
        """
        if self.gradient_norm is None:
            with tf.init_scope(), self._distribution_strategy.scope():
                self.gradient_norm = tf.Variable(
                    0.0, dtype=tf.float32, trainable=False, name="gradient_norm",
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        return self.gradient_norm

    def _clip_gradients(self, grads):
        # tf_keras calls this on the aggregated (all-reduced) gradients. The norm that clipping
        # needs anyway is computed once here and kept for the step log.
        if self.gradient_norm is None or self.clipnorm or self.clipvalue:
            return super()._clip_gradients(grads)
        norm = tf.linalg.global_norm([g for g in grads if g is not None])
        self.gradient_norm.assign(tf.cast(norm, tf.float32))
        if self.global_clipnorm and self.global_clipnorm > 0:
            return tf.clip_by_global_norm(grads, self.global_clipnorm, use_norm=norm)[0]
        return grads

    def update_step(self, gradient, variable):
        scale = self.learning_rate_multiplier(variable)
        if (self.amsgrad or getattr(self, "adaptive_epsilon", False)
                or tf.distribute.has_strategy() or not hasattr(variable, "handle")):
            if scale == 1.0:
                return super().update_step(gradient, variable)
            # update_step runs in Python once per variable (per device under Mirrored) while the
            # step is traced, so the scale is in force exactly while this variable's ops are built.
            self._lr_scale = scale
            try:
                return super().update_step(gradient, variable)
            finally:
                self._lr_scale = None
        if isinstance(gradient, tf.IndexedSlices) and self.lazy_sparse_updates:
            return self._lazy_sparse_update(gradient, variable, scale)
        if isinstance(gradient, tf.IndexedSlices):
            # Dense Adam decays every row's moments, touched or not; tf_keras' sparse path does
            # that with four passes plus scatters, densifying once and fusing is the same formula.
            # (tf_keras' own de-duplication drops dense_shape, so the variable gives the row count.)
            gradient = tf.math.unsorted_segment_sum(gradient.values, gradient.indices, tf.shape(variable)[0])
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._index_dict[self._var_key(variable)]
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(self.learning_rate, dtype) * tf.cast(scale, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)

    #: LazyAdam for sparse (embedding) gradients: `_lazy_sparse_update`.
    lazy_sparse_updates: bool = False

    def _lazy_sparse_update(self, gradient: tf.IndexedSlices, variable, scale: float):
        """Adam on the gradient's rows only (TensorFlow Addons' LazyAdam): their moments and weights
        update; rows the batch does not use keep their moments and do not move.

        A word-embedding table is half of MiniLM's weights and a short batch touches a few hundred
        of its 30,522 rows, so dense Adam spends most of its pass on rows whose gradient is zero.
        Rows must be unique (`TaskModel` sums repeated rows before the update).
        """
        dtype = variable.dtype
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, values = gradient.indices, tf.cast(gradient.values, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        m_rows = beta_1 * tf.gather(m, rows) + (1.0 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1.0 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        lr = (tf.cast(self.learning_rate, dtype) * tf.cast(scale, dtype)
              * tf.sqrt(1.0 - tf.pow(beta_2, step)) / (1.0 - tf.pow(beta_1, step)))
        step_rows = lr * m_rows / (tf.sqrt(v_rows) + tf.cast(self.epsilon, dtype))
        return variable.scatter_sub(tf.IndexedSlices(step_rows, rows))

    def _apply_weight_decay(self, variables):
        # tf_keras applies decay even when it is 0, as `var -= var * wd * lr`: two multiplies and a
        # subtract over all 22.6M weights, ~20 ms of a ~150 ms short-sentence step on 2 cores.
        if not self.weight_decay:
            return

        def decay(variable):
            if self._use_weight_decay(variable):
                # Same value as var - var·wd·lr·factor in one pass over the variable.
                lr = tf.cast(self.learning_rate, variable.dtype) * self.learning_rate_multiplier(variable)
                variable.assign(variable * (1.0 - lr * tf.cast(self.weight_decay, variable.dtype)))

        if tf.distribute.has_strategy():
            # As tf_keras does it: each device's copy in cross-replica context.
            def distributed(distribution, variables, **kwargs):
                for variable in variables:
                    distribution.extended.update(variable, decay, group=False)

            tf.__internal__.distribute.interim.maybe_merge_call(distributed, self._distribution_strategy, variables)
            return
        for variable in variables:
            decay(variable)


@tf_keras.utils.register_keras_serializable(package="tfbert")
class FusedAdam(_FusedDenseUpdate, tf_keras.optimizers.Adam):
    """`tf_keras.optimizers.Adam` with the fused dense update."""


@tf_keras.utils.register_keras_serializable(package="tfbert")
class FusedAdamW(_FusedDenseUpdate, tf_keras.optimizers.AdamW):
    """`tf_keras.optimizers.AdamW` with the fused dense update."""


def layer_depth(variable_name: str, num_layers: int) -> int:
    """Where a variable sits for layer-wise decay: 0 embeddings, i + 1 encoder layer i, L + 1 the head.

    The head is everything above the encoder: tfbert's classifier / span / token heads and the
    backbone's pooler (a dense layer on the top layer's [CLS], part of
    ``TFBertForSequenceClassification``'s head). Anything else outside the encoder layers with
    ``embeddings`` in its path (ELECTRA's ``embeddings_project`` too) counts as embeddings.
    """
    index = _encoder_layer_index(variable_name)
    if index is not None:
        return index + 1
    if any("embeddings" in part for part in variable_name.split("/")[:-1]):
        return 0
    return num_layers + 1


def _encoder_layer_index(variable_name: str) -> Optional[int]:
    for part in variable_name.split("/"):
        match = _ENCODER_LAYER.match(part)
        if match:
            return int(match.group(1))
    return None


def learning_rate_multipliers(variables: Iterable[tf.Variable], config: OptimizerConfig,
                              ) -> list[tuple[tf.Variable, float]]:
    """Each variable's factor on the scheduled learning rate (layer-wise decay and head rate).

    With ``layerwise_lr_decay`` d and L encoder layers, the head trains at the full rate, encoder
    layer i at d^(L - i) of it (the top layer at d) and the embeddings at d^(L + 1);
    ``head_learning_rate`` then replaces the head's rate. Names decide (tfbert's ``bert/layer_3/...``,
    transformers' ``.../encoder/layer_._3/...``), so a packed twin sharing the variables gets the same factors.

    Args:
        variables: all of the model's variables (frozen ones too: they fix the number of layers).
        config: the optimizer config.

    Examples:
        >>> learning_rate_multipliers(model.weights, OptimizerConfig(layerwise_lr_decay=0.8))  # doctest: +SKIP
    """
    variables = list(variables)
    indices = [_encoder_layer_index(v.name) for v in variables]
    num_layers = max((i + 1 for i in indices if i is not None), default=0)
    decay = config.layerwise_lr_decay
    head = (config.head_learning_rate / config.learning_rate) if config.head_learning_rate else 1.0
    out = []
    for variable in variables:
        depth = layer_depth(variable.name, num_layers)
        out.append((variable, head if depth == num_layers + 1 else decay ** (num_layers + 1 - depth)))
    return out


def make_optimizer(config: OptimizerConfig, total_steps: int, mixed_float16: bool = False,
                   variables: Optional[Iterable[tf.Variable]] = None):
    """Adam or AdamW with the schedule and global-norm clipping; loss scaling for float16.

    Args:
        config: the optimizer config.
        total_steps: optimizer updates of the run (the schedule's length).
        mixed_float16: wrap in a `LossScaleOptimizer`.
        variables: the model's variables, needed for ``layerwise_lr_decay`` and
            ``head_learning_rate`` (`learning_rate_multipliers`).

    Examples:
        >>> optimizer = make_optimizer(OptimizerConfig(), total_steps=100, variables=model.weights)  # doctest: +SKIP
    """
    per_variable = config.layerwise_lr_decay != 1.0 or config.head_learning_rate is not None
    if per_variable and variables is None:
        raise ValueError("optimizer.layerwise_lr_decay and optimizer.head_learning_rate need the model's variables")
    common = dict(
        learning_rate=make_schedule(config, total_steps),
        beta_1=config.adam_beta1, beta_2=config.adam_beta2, epsilon=config.adam_epsilon,
        global_clipnorm=config.max_grad_norm,
        # XLA-compiled updates were slower on these CPUs and cannot run inside tf.cond branches
        # as cleanly; plain graph updates are used everywhere.
        jit_compile=False,
    )
    if config.name == "adamw":
        optimizer = FusedAdamW(weight_decay=config.weight_decay, **common)
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    else:
        optimizer = FusedAdam(**common)
    if per_variable:
        optimizer.set_learning_rate_multipliers(learning_rate_multipliers(variables, config))
    optimizer.lazy_sparse_updates = config.lazy_embedding_updates
    if mixed_float16:
        optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
