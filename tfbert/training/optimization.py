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
        optimizer = tf_keras.optimizers.AdamW(weight_decay=config.weight_decay, **common)
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    else:
        optimizer = tf_keras.optimizers.Adam(**common)
    if mixed_float16:
        optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
