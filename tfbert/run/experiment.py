"""Build everything a run needs from a config: tokenizer, data, model, optimizer, callbacks.

This is the library entry point: `build_experiment(config)` returns a compiled Keras model and
`tf.data` datasets, so a user can call ``model.fit`` in their own script (see ``examples/``).
The model is compiled here, not where it is built (`tfbert.modeling.build`): a run knows its
schedule length, its packed or pipelined twin and its strategy. `Experiment.train_stream` is the
only training pipeline: `Experiment.fit` reads it and `Experiment.train_dataset` is the same
stream over the planned epochs, so a user's ``model.fit`` sees the batches the trainer would.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tensorflow as tf
import tf_keras

from tfbert import distribute
from tfbert.config import ExperimentConfig
from tfbert.data.packing import plan_packing, resolve_padding
from tfbert.data.pipeline import bucket_sizes, make_dataset, make_train_stream
from tfbert.data.tfrecords import load_task_data
from tfbert.errors import ConfigError
from tfbert.modeling.backbone import model_input_names
from tfbert.modeling.build import build_model
from tfbert.modeling.packed import build_packed_model
from tfbert.modeling.task_model import TaskModel
from tfbert.modeling.saving import read_label_names
from tfbert.pretrained import is_finetuned_dir, load_tokenizer
from tfbert.rundir import RunDir
from tfbert.tasks import Task, TaskData, get_task
from tfbert.training import callbacks as tfbert_callbacks
from tfbert.training.backup import RunBackup, SigtermFlag
from tfbert.training.batch_plan import BatchPlan
from tfbert.training.compile import compile_model
from tfbert.training.precision import resolve_policy, set_precision
from tfbert.training.seed import set_seed


@dataclass
class Experiment:
    """A ready-to-fit run: compiled `model`, `tf.data` splits, tokenizer and label names."""

    config: ExperimentConfig
    task: Task
    model: TaskModel
    tokenizer: object
    data: TaskData
    plan: BatchPlan
    strategy: tf.distribute.Strategy

    @functools.cached_property
    def datasets(self) -> dict[str, tf.data.Dataset]:
        """A `tf.data` pipeline per split for ``model.fit``/``evaluate`` in a user's script.

        ``train``: `train_dataset`; every other split: one unshuffled pass (`eval_dataset`). Built
        on first use, so a run through `tfbert.train` never builds them.
        """
        return {name: self.train_dataset if name == "train" else self.eval_dataset(name) for name in self.data.splits}

    @property
    def label_names(self) -> list[str]:
        return self.data.label_names

    @functools.cached_property
    def train_dataset(self) -> tf.data.Dataset:
        """The stream `fit` trains on (`train_stream`), cut to the planned epochs, each reshuffled.

        One pass is the whole run: ``model.fit(experiment.train_dataset, epochs=experiment.plan.epochs,
        steps_per_epoch=experiment.steps_per_epoch)`` trains on exactly the batches `fit` would.
        """
        return self.train_stream().take(self.plan.epochs * self.steps_per_epoch)

    @property
    def validation_dataset(self) -> Optional[tf.data.Dataset]:
        return self.datasets.get("validation")

    @property
    def output_dir(self) -> Path:
        return Path(self.config.training.output_dir)

    def evaluate_split(self, split: str, model: Optional[tf_keras.Model] = None) -> dict:
        """The task's evaluation report on a split (``report["metrics"]``: flat floats)."""
        # Always the unpacked model: a packed or pipelined twin shares its variables.
        model = distribute.serving_model(model or self.model)
        return self.task.evaluate(model, self.data, split, self.config, self.tokenizer)

    @property
    def steps_per_epoch(self) -> int:
        """`fit` steps per epoch (an epoch of data, or a share of the steps for fractional epochs)."""
        return self.plan.steps_per_epoch_for_fit or self.plan.batches_per_epoch

    def callbacks(self, resume_state: Optional[dict] = None, sigterm: Optional[SigtermFlag] = None,
                  ) -> list[tf_keras.callbacks.Callback]:
        """Validation metrics, best checkpoint, early stopping, TensorBoard, backups, metric logs.

        Args:
            resume_state: the backup state a resumed run continues from (`tfbert.training.backup`).
            sigterm: a flag set by a SIGTERM handler: back up at the next update and stop.
        """
        t = self.config.training
        out = self.output_dir
        monitor = t.metric_for_best_model
        run = RunDir(out)
        callbacks: list[tf_keras.callbacks.Callback] = []
        if "validation" in self.data.splits:
            def evaluate(model):
                return self.evaluate_split("validation", model)["metrics"]
            callbacks.append(tfbert_callbacks.ValidationMetrics(evaluate))
        elif monitor.startswith("val_"):
            monitor = monitor[len("val_"):]
        # Before the backup: a step with a non-finite or exploded loss must never be backed up.
        callbacks.append(tfbert_callbacks.DivergenceGuard(self.steps_per_epoch, self.plan.batches_per_update, out,
                                                          state=resume_state))
        peers: list[tf_keras.callbacks.Callback] = [tfbert_callbacks.CheckpointKeeper(
            run.checkpoints_dir, monitor=monitor, restore_best=t.load_best_model_at_end)]
        if t.early_stopping_patience:
            peers.append(tf_keras.callbacks.EarlyStopping(
                monitor=monitor, patience=t.early_stopping_patience, mode=tfbert_callbacks.monitor_mode(monitor),
            ))
        callbacks += peers
        # Before RunBackup, which keeps its records; after DivergenceGuard, so no NaN is logged.
        step_log = tfbert_callbacks.StepLog(
            out, t.logging_steps, self.steps_per_epoch, self.plan.batches_per_update, self.plan.total_optimizer_steps,
            state=resume_state, tensorboard_dir=run.logs_dir / "train" if t.tensorboard else None,
            print_lines=tfbert_callbacks.progress_mode(t.verbose)[1] and distribute.is_chief(self.strategy))
        callbacks.append(step_log)
        peers.append(step_log)
        if t.tensorboard:
            callbacks.append(tf_keras.callbacks.TensorBoard(
                log_dir=str(run.logs_dir), write_graph=False, profile_batch=0, update_freq="epoch",
            ))
        callbacks.append(RunBackup(
            out, self.steps_per_epoch, self.plan.batches_per_update, t.save_steps, t.save_total_limit,
            total_steps=self.plan.total_optimizer_steps, seed=t.seed, state=resume_state, sigterm=sigterm,
            stop_on_sigterm_without_backup=self.plan.strategy == "multiworker", peers=peers))
        callbacks.append(tfbert_callbacks.MetricsLog(out, history=(resume_state or {}).get("history")))
        return callbacks

    def train_stream(self, start_batch: int = 0) -> tf.data.Dataset:
        """Every epoch's training batches back to back from `start_batch`, endless (`make_train_stream`).

        The one training pipeline: `fit` reads it from a backup's position, `train_dataset` from
        the start. IPU epochs are cut to whole executions (``plan.batches_per_epoch``).
        """
        config, plan = self.config, self.plan
        d = config.data
        return distribute.shard_by_data(make_train_stream(
            self.data.splits["train"], plan.dataset_batch_size, plan.batches_per_epoch, padding=d.padding,
            max_seq_length=d.max_seq_length, pad_token_id=self.tokenizer.pad_token_id, seed=config.training.seed,
            drop_remainder=plan.drop_remainder, bucket_boundaries=d.bucket_boundaries, start_batch=start_batch,
            max_examples_per_pack=d.max_examples_per_pack))

    def eval_dataset(self, split: str) -> tf.data.Dataset:
        """One unshuffled pass over `split`, ``training.per_device_eval_batch_size`` per replica (packed
        as the config asks: the batch then holds that many examples' worth of packs)."""
        d, plan = self.config.data, self.plan
        encoded = self.data.splits[split]
        # IPU datasets are per replica (as plan.dataset_batch_size); other strategies split a global batch.
        batch_size = self.config.training.per_device_eval_batch_size * (1 if plan.strategy == "ipu"
                                                                          else plan.num_replicas)
        if d.padding == "packed":
            batch_size = plan_packing(encoded.lengths, d.max_seq_length, d.max_examples_per_pack).packs_for(batch_size)
        return distribute.shard_by_data(make_dataset(
            encoded, batch_size=batch_size, padding=d.padding, max_seq_length=d.max_seq_length,
            pad_token_id=self.tokenizer.pad_token_id, drop_remainder=plan.drop_remainder,
            bucket_boundaries=d.bucket_boundaries, max_examples_per_pack=d.max_examples_per_pack))

    def fit(self, resume_state: Optional[dict] = None, sigterm: Optional[SigtermFlag] = None,
            **kwargs) -> tf_keras.callbacks.History:
        """`model.fit` with the planned epochs and the standard callbacks, from the start or a backup.

        Args:
            resume_state: a backup's state (the model and optimizer already restored from it):
                training continues at its position with the batches an uninterrupted run would see.
            sigterm: see `callbacks`.
            **kwargs: passed to `model.fit` (``callbacks`` replaces the standard ones).
        """
        done = int(resume_state["fit_steps_done"]) if resume_state else 0
        initial_epoch, initial_step = divmod(done, self.steps_per_epoch)
        if resume_state and resume_state.get("stop_training"):
            initial_epoch, initial_step = self.plan.epochs, 0  # early stopping had ended it
        if initial_epoch >= self.plan.epochs:
            initial_epoch, initial_step = self.plan.epochs, 0
        # Keras' hook for resuming inside an epoch (BackupAndRestore uses it): the first epoch
        # runs only its remaining steps; the stream already starts at the right batch.
        self.model.resume_at_step = initial_step
        return self.model.fit(
            self.train_stream(done),
            epochs=self.plan.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=self.steps_per_epoch,
            callbacks=kwargs.pop("callbacks", None) or self.callbacks(resume_state, sigterm),
            verbose=kwargs.pop("verbose", tfbert_callbacks.progress_mode(self.config.training.verbose)[0]),
            **kwargs,
        )


def _checkpoint_labels(config: ExperimentConfig) -> Optional[list[str]]:
    """Label names of a fine-tuned starting checkpoint, checked against the config."""
    if not is_finetuned_dir(config.model.name_or_path):
        return None
    names = read_label_names(config.model.name_or_path)
    where = f"the checkpoint {config.model.name_or_path}"
    if config.task.num_labels is not None and config.task.num_labels != len(names):
        raise ConfigError(f"config key 'task.num_labels': {config.task.num_labels} disagrees with "
                          f"{where} ({len(names)} labels: {names})")
    if config.data.labels is not None and list(config.data.labels) != names:
        raise ConfigError(f"config key 'data.labels': {config.data.labels} disagrees with {where} ({names})")
    return names


def build_experiment(config: ExperimentConfig, strategy: Optional[tf.distribute.Strategy] = None) -> Experiment:
    """Seed, set precision, read and tokenize data, build and compile the model in `strategy`'s scope.

    Args:
        config: a validated config (`tfbert.load_config`).
        strategy: a `tf.distribute` strategy (default: the current one); see `tfbert.distribute`.

    Returns:
        An `Experiment`: the compiled ``model``, ``datasets`` per split, ``tokenizer``, ``task``
        and the batch ``plan``; ``experiment.fit()`` trains with the standard callbacks.

    Examples:
        >>> experiment = build_experiment(load_config("configs/sms_spam_minilm.yaml"))  # doctest: +SKIP
        >>> experiment.fit()  # doctest: +SKIP
        >>> experiment.evaluate_split("test")["metrics"]  # doctest: +SKIP
    """
    set_seed(config.training.seed)
    strategy = strategy or tf.distribute.get_strategy()
    # precision.policy: auto becomes the policy it chose, so the optimizer (loss scaling) and the
    # saved config see what ran.
    policy = resolve_policy(config.precision.policy, distribute.strategy_kind(strategy)).policy
    if policy != config.precision.policy:
        config = dataclasses.replace(config, precision=dataclasses.replace(config.precision, policy=policy))
    set_precision(policy)
    task = get_task(config.task.type)
    tokenizer = load_tokenizer(config.model.name_or_path)
    # From the configured files, or already tokenized from data.tfrecords (tools/make_tfrecords.py).
    data = load_task_data(task, config, tokenizer, config.training.seed, _checkpoint_labels(config))
    if "train" not in data.splits:
        raise ConfigError("config key 'data.train_file': training needs a training file")
    data.limit_train(config.data.max_train_samples, config.training.seed)
    task.check_monitor(config.training.metric_for_best_model, "validation" in data.splits)
    num_labels = len(data.label_names)
    if config.task.num_labels is not None and data.label_names and config.task.num_labels != num_labels:
        raise ConfigError(
            f"config key 'task.num_labels': {config.task.num_labels} disagrees with the "
            f"{num_labels} labels found in {config.data.train_file_label()} ({data.label_names})"
        )
    t = config.training
    dist = config.distribution
    # Static-shape strategies pack unless told otherwise (bucket cannot compile there).
    padding = resolve_padding(config.data.padding, distribute.strategy_kind(strategy),
                              can_pack=task.supports_packing and not dist.pipeline_splits)
    if padding != config.data.padding:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, padding=padding))
    if dist.pipeline_splits and not task.supports_pipelining:
        raise ConfigError(f"config key 'distribution.pipeline_splits': task.type {task.type} cannot be pipelined; "
                          "pipelining unrolls heads that read one pooled vector (sequence and multi-label "
                          "classification)")
    packing = None
    if padding == "packed":
        if dist.pipeline_splits:
            raise ConfigError("config key 'data.padding': packed batches cannot run the IPU pipeline "
                              "(distribution.pipeline_splits); use data.padding: max_length")
        packing = plan_packing(data.splits["train"].lengths, config.data.max_seq_length,
                               config.data.max_examples_per_pack)
    drop_remainder = padding in ("max_length", "packed")
    plan = BatchPlan(
        # Packed: a dataset row is a pack, and the batch holds about as many examples as configured.
        num_examples=packing.num_packs if packing else len(data.splits["train"]),
        per_replica_batch_size=(packing.packs_for(t.per_device_train_batch_size) if packing
                                else t.per_device_train_batch_size),
        num_replicas=distribute.num_replicas(strategy, dist),
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        steps_per_execution=t.steps_per_execution,
        drop_remainder=drop_remainder,
        strategy=distribute.strategy_kind(strategy),
        pipeline_stages=len(dist.pipeline_splits or []) + 1,
        pipeline_schedule=dist.pipeline_schedule,
        bucket_sizes=(bucket_sizes(data.splits["train"].lengths, config.data.max_seq_length, config.data.bucket_boundaries)
                      if config.data.padding == "bucket" else ()),
        packing=packing,
    )
    input_names = model_input_names(tokenizer, data.splits["train"].features)
    with strategy.scope():
        model = build_model(config, task, num_labels, input_names)
        if packing is None:
            compile_model(model, config, plan.total_optimizer_steps, task, plan.steps_per_execution)
        else:
            # Trains on packed rows; the unpacked model (same variables) is evaluated, saved and exported.
            model = build_packed_model(model, task, config.data.max_seq_length,
                                       config.data.max_examples_per_pack, config.model.pooling)
            compile_model(model, config, plan.total_optimizer_steps, task, plan.steps_per_execution,
                          compile_args=task.packed_compile_args())
        # IPU: the SDK's accumulation (and pipelining) options, which are never saved with a model.
        model = distribute.prepare_model(
            model, strategy, t.gradient_accumulation_steps, dist, config.model.pooling,
            compile_fn=lambda m: compile_model(m, config, plan.total_optimizer_steps, task, plan.steps_per_execution))
    return Experiment(config=config, task=task, model=model, tokenizer=tokenizer, data=data, plan=plan,
                      strategy=strategy)
