"""`TaskModel`: a Functional Keras model with gradient accumulation inside `fit`, on any strategy.

It is built with the Functional API (``TaskModel(inputs=..., outputs=...)``), so it saves and
reloads like any Functional model. With ``gradient_accumulation_steps = N`` every `fit` step adds
the micro-batch gradient to accumulators and every N-th step applies their mean, so N
micro-batches of size b give the same update as one batch of N·b (for a mean-reduced loss).
Clipping (``global_clipnorm``) and loss scaling act on the accumulated gradient, inside the
optimizer.

Why the train function is replaced rather than `train_step`: the update must happen only every
N-th step, and ``optimizer.apply_gradients`` synchronises replicas through ``merge_call``, which
Mirrored and MultiWorkerMirrored strategies refuse inside a ``tf.cond`` branch of the replica
function. So each step runs two replica functions: one accumulates (every step), the other applies
and resets (under a ``tf.cond`` taken in cross-replica context, where every replica and worker
takes the same branch). Accumulators are per-replica (``ON_READ``) variables: each replica sums
its own gradients without communication, and the cross-replica sum happens once per update inside
``apply_gradients``, exactly as for an ordinary step.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras
from tf_keras.src.engine.training import reduce_per_replica


def _deduplicated(grad: tf.IndexedSlices) -> tf.IndexedSlices:
    """The same gradient with each row index once (repeated rows summed)."""
    rows, position = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, grad.dense_shape)


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

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _build_accumulators(self) -> None:
        """Create accumulators and optimizer slots eagerly, outside any tf.function or cond.

        Not tracked: they are scratch space, so checkpoints and ``get_weights`` stay the same size
        as without accumulation.
        """
        with self.distribute_strategy.scope():
            # Slots too: the optimizer would otherwise create them inside the update's tf.cond.
            self.optimizer.build(self.trainable_variables)
            if self._accumulators is not None:
                return
            # Read and advanced in cross-replica context only, so one mirrored copy is enough.
            self._micro_step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="accumulation_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            self._accumulators = [
                tf.Variable(
                    tf.zeros(v.shape, v.dtype), trainable=False,
                    name="accum_" + v.name.replace(":", "_").replace("/", "_"),
                    synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.SUM,
                )
                for v in self.trainable_variables
            ]

    def _gradients(self, data):
        """Replica-local forward and backward pass: (dense unscaled gradients, metric results)."""
        x, y, sample_weight = tf_keras.utils.unpack_x_y_sample_weight(data)
        optimizer = self.optimizer
        scales_loss = isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            scaled = optimizer.get_scaled_loss(loss) if scales_loss else loss
        grads = tape.gradient(scaled, self.trainable_variables)
        if scales_loss:
            grads = optimizer.get_unscaled_gradients(grads)
        # Embedding gradients arrive as IndexedSlices with one row per token occurrence; global-norm
        # clipping of those rows overstates the norm (repeated tokens are not summed first) and by a
        # different amount once replicas concatenate their slices. Summing repeated rows makes the
        # norm exact; replicas and accumulators get dense gradients so that all strategies agree.
        # On one device the rows stay sparse until the optimizer, so clipping scales only the rows
        # of the batch's tokens instead of the whole 30k-row matrix (docs/benchmarks.md).
        keep_sparse = not tf.distribute.has_strategy() and self.gradient_accumulation_steps == 1
        grads = [_deduplicated(g) if keep_sparse and isinstance(g, tf.IndexedSlices)
                 else None if g is None else tf.convert_to_tensor(g) for g in grads]
        return grads, self.compute_metrics(x, y, y_pred, sample_weight)

    def train_step(self, data):
        if self.gradient_accumulation_steps > 1:
            raise RuntimeError("train_step is replaced by the accumulating train function; call fit")
        grads, outputs = self._gradients(data)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, self.trainable_variables) if g is not None])
        return outputs

    def _accumulate_step(self, data):
        """Replica function: forward, backward, add the gradient to this replica's accumulators."""
        grads, outputs = self._gradients(data)
        for accumulator, grad in zip(self._accumulators, grads):
            if grad is not None:
                accumulator.assign_add(grad)
        self._train_counter.assign_add(1)
        return outputs

    def _apply_accumulated(self):
        """Replica function: apply the mean accumulated gradient, then reset the accumulators."""
        steps = float(self.gradient_accumulation_steps)
        # In replica context an ON_READ variable reads this replica's own sum; apply_gradients
        # then all-reduces across replicas like any step (each replica's loss is already scaled
        # by 1/replicas in compute_loss).
        mean = [tf.convert_to_tensor(a) / tf.cast(steps, a.dtype) for a in self._accumulators]
        self.optimizer.apply_gradients(zip(mean, self.trainable_variables))
        for accumulator in self._accumulators:
            accumulator.assign(tf.zeros_like(accumulator))
        return tf.constant(True)

    def make_train_function(self, force: bool = False):
        if self.gradient_accumulation_steps == 1:
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        self._build_accumulators()
        strategy = self.distribute_strategy
        steps = self.gradient_accumulation_steps

        def step_function(iterator):
            outputs = strategy.run(self._accumulate_step, args=(next(iterator),))
            outputs = reduce_per_replica(outputs, strategy, reduction=self.distribute_reduction_method)
            micro_step = self._micro_step.assign_add(1)

            def apply():
                strategy.run(self._apply_accumulated)
                return tf.constant(True)

            tf.cond(tf.equal(micro_step % steps, 0), apply, lambda: tf.constant(False))
            return outputs

        spe = self._steps_per_execution
        if spe is None or (int(spe.numpy()) == 1 and not self.autotune_steps_per_execution):
            def train_function(iterator):
                return step_function(iterator)
        else:
            def train_function(iterator):
                for _ in tf.range(self._steps_per_execution):
                    outputs = step_function(iterator)
                return outputs

        if not self.run_eagerly:
            train_function = tf.function(train_function, reduce_retracing=True)
            self.train_tf_function = train_function
        self.train_function = train_function
        return train_function
