"""`TaskModel`: a Functional Keras model whose `train_step` supports gradient accumulation.

It is built with the Functional API (``TaskModel(inputs=..., outputs=...)``), so it saves and
reloads like any Functional model; only `train_step` is customised. With
``gradient_accumulation_steps = N`` each call of `train_step` adds the micro-batch gradient to
accumulators and every N-th call applies their mean, so N micro-batches of size b give the
same update as one batch of N·b (for a mean-reduced loss). Clipping (``global_clipnorm``) and
loss scaling act on the accumulated gradient, inside the optimizer.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfbert")
class TaskModel(tf_keras.Model):
    """Functional model + gradient accumulation in `fit`."""

    def __init__(self, *args, gradient_accumulation_steps: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.gradient_accumulation_steps = int(gradient_accumulation_steps)
        self._accumulators: list[tf.Variable] | None = None
        self._micro_step: tf.Variable | None = None

    def get_config(self) -> dict:
        config = super().get_config()
        config["gradient_accumulation_steps"] = self.gradient_accumulation_steps
        return config

    def _build_accumulators(self) -> None:
        """Create accumulators and optimizer slots eagerly, outside any tf.function or cond."""
        if self._accumulators is not None:
            return
        with self.distribute_strategy.scope():
            self.optimizer.build(self.trainable_variables)
            self._micro_step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="accumulation_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            self._accumulators = [
                tf.Variable(
                    tf.zeros_like(v), trainable=False, name="accum_" + v.name.replace(":", "_").replace("/", "_"),
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                for v in self.trainable_variables
            ]

    def make_train_function(self, force: bool = False):
        if self.gradient_accumulation_steps > 1:
            self._build_accumulators()
        return super().make_train_function(force)

    def train_step(self, data):
        if self.gradient_accumulation_steps == 1:
            return super().train_step(data)
        x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        optimizer = self.optimizer
        scales_loss = isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            scaled = optimizer.get_scaled_loss(loss) if scales_loss else loss
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if scales_loss:
            grads = optimizer.get_unscaled_gradients(grads)
        for accumulator, grad in zip(self._accumulators, grads):
            if grad is not None:
                accumulator.assign_add(tf.convert_to_tensor(grad))
        self._micro_step.assign_add(1)
        steps = self.gradient_accumulation_steps

        def apply() -> tf.Tensor:
            mean = [a / steps for a in self._accumulators]
            optimizer.apply_gradients(zip(mean, variables))
            for accumulator in self._accumulators:
                accumulator.assign(tf.zeros_like(accumulator))
            return tf.constant(True)

        tf.cond(self._micro_step % steps == 0, apply, lambda: tf.constant(False))
        return self.compute_metrics(x, y, y_pred, sample_weight)
