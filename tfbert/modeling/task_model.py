"""`TaskModel`: a Functional Keras model with gradient accumulation inside `fit`, on any strategy.

It is built with the Functional API (``TaskModel(inputs=..., outputs=...)``), so it saves and
reloads like any Functional model. With ``gradient_accumulation_steps = N`` every `fit` step adds
the micro-batch gradient to accumulators and every N-th step applies their mean, so N
micro-batches of size b give the same update as one batch of N·b (for a mean-reduced loss).
Clipping (``global_clipnorm``) and loss scaling act on the accumulated gradient, inside the
optimizer.

XLA. ``compile(jit_compile=True)`` compiles the *training* step only (one micro-batch's forward,
backward and, without accumulation, the update; with accumulation the accumulate and apply
replica functions each), which is what TPUs compile anyway. Prediction and evaluation stay
uncompiled: evaluation batches come in many widths, and XLA compiles once per shape.

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


class _StepStats:
    """Per-replica sums for step logging: [loss, real tokens, token slots] since the last reset.

    A plain object, not a trackable one: neither checkpoints nor SavedModel exports of the model
    see its variable or its reset function.
    """

    def __init__(self, strategy: tf.distribute.Strategy):
        with strategy.scope():
            self.sums = tf.Variable(
                tf.zeros([3], tf.float32), trainable=False, name="step_stats",
                synchronization=tf.VariableSynchronization.ON_READ, aggregation=tf.VariableAggregation.SUM)
        sums = self.sums

        def reset():
            sums.assign(tf.zeros_like(sums))

        # Each replica zeroes its own copy; a tf.function is how every strategy runs replica code.
        self._reset = tf.function(lambda: strategy.run(reset))

    def reset(self) -> None:
        self._reset()


@tf_keras.utils.register_keras_serializable(package="tfbert")
class TaskModel(tf_keras.Model):
    """Functional model + gradient accumulation in `fit`."""

    def __init__(self, *args, gradient_accumulation_steps: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.gradient_accumulation_steps = int(gradient_accumulation_steps)
        self._accumulators: list[tf.Variable] | None = None
        self._micro_step: tf.Variable | None = None
        #: Sums since the last `take_step_stats` (step logging); see `_StepStats`.
        self._step_stats: _StepStats | None = None
        #: Steps of the first `fit` epoch already done by an interrupted run (read once by `fit`).
        self.resume_at_step = 0
        #: XLA-compile the training step (`compile(jit_compile=...)`); see the module docstring.
        self.jit_train_step = False
        self._xla_train_step = None

    def compile(self, *args, jit_compile=None, **kwargs):
        super().compile(*args, jit_compile=False, **kwargs)
        self._set_jit(bool(jit_compile))

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _set_jit(self, jit: bool) -> None:
        """Not tracked: the compiled step is not part of the model that checkpoints and exports see."""
        self.jit_train_step = jit
        self._xla_train_step = tf.function(self._train_step, jit_compile=True, reduce_retracing=True) if jit else None

    def _maybe_load_initial_counters_from_ckpt(self, steps_per_epoch, initial_epoch):
        # Keras asks this at the start of fit; BackupAndRestore answers through it too.
        epoch, step = super()._maybe_load_initial_counters_from_ckpt(steps_per_epoch, initial_epoch)
        if self.resume_at_step and epoch == initial_epoch and step == 0:
            step, self.resume_at_step = self.resume_at_step, 0
        return epoch, step

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

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _build_step_stats(self) -> None:
        """Create the step-logging sums (and the optimizer's gradient-norm variable) once, eagerly.

        Per-replica (ON_READ, SUM) like the accumulators: each replica adds its own batches with no
        communication; a read in cross-replica context sums them. Not tracked, so checkpoints keep
        their structure.
        """
        if self._step_stats is not None:
            return
        self._step_stats = _StepStats(self.distribute_strategy)
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        if hasattr(inner, "track_gradient_norm"):
            inner.track_gradient_norm()

    def take_step_stats(self) -> dict | None:
        """Sums since the last call, then reset: ``loss_sum`` (over `fit` steps, each the global
        batch's mean loss), ``real_tokens`` (non-padding), ``token_slots`` (padded batch size in
        tokens) and ``grad_norm`` (the last update's global gradient norm), or None before `fit`.

        Under multiworker the read is a collective: call it at the same step on every worker.
        """
        if self._step_stats is None:
            return None
        loss_sum, real, slots = (float(v) for v in tf_keras.backend.get_value(self._step_stats.sums))
        self._step_stats.reset()
        stats = {"loss_sum": loss_sum, "real_tokens": real, "token_slots": slots}
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        norm = getattr(inner, "gradient_norm", None)
        if norm is not None:
            stats["grad_norm"] = float(tf_keras.backend.get_value(norm))
        return stats

    def _add_step_stats(self, x, loss) -> None:
        """Add one micro-batch's loss and token counts to this replica's step-logging sums."""
        mask = x.get("attention_mask") if isinstance(x, dict) else None
        if mask is not None and mask.shape.rank == 2:
            # count_nonzero, not sum: a packed batch's mask may carry segment ids instead of ones.
            real = tf.cast(tf.math.count_nonzero(mask), tf.float32)
            slots = tf.cast(tf.size(mask), tf.float32)
        else:
            real = slots = tf.constant(0.0)
        self._step_stats.sums.assign_add(tf.stack([tf.cast(loss, tf.float32), real, slots]))

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
        if self._step_stats is not None:
            self._add_step_stats(x, loss)
        if scales_loss:
            grads = optimizer.get_unscaled_gradients(grads)
        # Embedding gradients arrive as IndexedSlices with one row per token occurrence; global-norm
        # clipping of those rows overstates the norm (repeated tokens are not summed first) and by a
        # different amount once replicas concatenate their slices. Summing repeated rows makes the
        # norm exact; replicas and accumulators get dense gradients so that all strategies agree.
        # On one device the rows stay sparse until the optimizer, so clipping scales only the rows
        # of the batch's tokens instead of the whole 30k-row matrix (docs/benchmarks.md).
        # XLA needs static shapes, which de-duplicating rows (tf.unique) has not: dense there.
        keep_sparse = (not tf.distribute.has_strategy() and self.gradient_accumulation_steps == 1
                       and not self.jit_train_step)
        grads = [_deduplicated(g) if keep_sparse and isinstance(g, tf.IndexedSlices)
                 else None if g is None else tf.convert_to_tensor(g) for g in grads]
        return grads, self.compute_metrics(x, y, y_pred, sample_weight)

    def train_step(self, data):
        if self.gradient_accumulation_steps > 1:
            raise RuntimeError("train_step is replaced by the accumulating train function; call fit")
        if self._xla_train_step is not None:
            # As Keras' own jit_compile does with its step: a compiled function inside the train function.
            return self._xla_train_step(data)
        return self._train_step(data)

    def _train_step(self, data):
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
        self._build_step_stats()
        if self.gradient_accumulation_steps == 1:
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        self._build_accumulators()
        strategy = self.distribute_strategy
        steps = self.gradient_accumulation_steps
        accumulate, apply_accumulated = self._accumulate_step, self._apply_accumulated
        if self.jit_train_step:
            accumulate = tf.function(accumulate, jit_compile=True, reduce_retracing=True)
            apply_accumulated = tf.function(apply_accumulated, jit_compile=True)

        def step_function(iterator):
            outputs = strategy.run(accumulate, args=(next(iterator),))
            outputs = reduce_per_replica(outputs, strategy, reduction=self.distribute_reduction_method)
            micro_step = self._micro_step.assign_add(1)

            def apply():
                strategy.run(apply_accumulated)
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
