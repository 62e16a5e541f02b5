"""Optimizers (Adam, AdamW) and the warmup + polynomial-decay learning-rate schedule."""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras

from tfbert.config import OptimizerConfig

# Decoupled weight decay skips these (as in BERT and Hugging Face's Trainer).
NO_DECAY_NAMES = ["LayerNorm", "layer_norm", "bias"]


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

    def update_step(self, gradient, variable):
        if (self.amsgrad or getattr(self, "adaptive_epsilon", False)
                or tf.distribute.has_strategy() or not hasattr(variable, "handle")):
            return super().update_step(gradient, variable)
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
            lr=tf.cast(self.learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)

    def _apply_weight_decay(self, variables):
        # tf_keras applies decay even when it is 0, as `var -= var * wd * lr`: two multiplies and a
        # subtract over all 22.6M weights, ~20 ms of a ~150 ms short-sentence step on 2 cores.
        if not self.weight_decay:
            return
        if tf.distribute.has_strategy():
            return super()._apply_weight_decay(variables)
        for variable in variables:
            if self._use_weight_decay(variable):
                # Same value as var - var·wd·lr in one pass over the variable.
                keep = 1.0 - tf.cast(self.learning_rate, variable.dtype) * tf.cast(self.weight_decay, variable.dtype)
                variable.assign(variable * keep)


@tf_keras.utils.register_keras_serializable(package="tfbert")
class FusedAdam(_FusedDenseUpdate, tf_keras.optimizers.Adam):
    """`tf_keras.optimizers.Adam` with the fused dense update."""


@tf_keras.utils.register_keras_serializable(package="tfbert")
class FusedAdamW(_FusedDenseUpdate, tf_keras.optimizers.AdamW):
    """`tf_keras.optimizers.AdamW` with the fused dense update."""


def make_optimizer(config: OptimizerConfig, total_steps: int, mixed_float16: bool = False):
    """Adam or AdamW with the schedule and global-norm clipping; loss scaling for float16."""
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
    if mixed_float16:
        optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
