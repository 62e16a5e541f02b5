"""One object that derives batch sizes, steps_per_execution and step counts for every strategy.

It rejects impossible combinations before anything is built (no model, no device touched), each
with one line naming the config key to change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from tfbert.data.packing import STATIC_SHAPE_STRATEGIES, PackingPlan
from tfbert.errors import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    """Batch arithmetic for one run.

    - ``global_batch_size`` = per-replica micro-batch × replicas: examples in one `fit` step
      across all replicas;
    - ``dataset_batch_size``: what one `tf.data` batch holds. Keras' strategies split a global
      batch across replicas; Graphcore's IPU Keras feeds each replica its own batches, so there a
      dataset batch is the per-replica micro-batch and one step of every replica consumes
      ``num_replicas`` of them;
    - ``effective_batch_size`` = global batch × gradient accumulation: examples per optimizer update;
    - step counts are in dataset batches (``batches_per_epoch``, what `fit` counts) and optimizer
      updates (``total_optimizer_steps``, what the learning-rate schedule counts);
    - ``steps_per_execution`` is the value to compile with: on IPU, left at 1 it is derived as
      accumulation × replicas (the smallest value the SDK accepts). An IPU runs whole executions,
      so there an epoch is cut to a multiple of it (`limit_epoch`): like ``drop_remainder``, at most
      ``steps_per_execution - 1`` batches are left out, different ones each epoch (reshuffled).
    """

    num_examples: int
    per_replica_batch_size: int
    num_replicas: int = 1
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 1.0
    steps_per_execution: int = 1
    drop_remainder: bool = False
    strategy: str = "default"
    pipeline_stages: int = 1
    pipeline_schedule: str = "grouped"
    #: Examples per length bucket when batches are formed per bucket (``data.padding: bucket``):
    #: every bucket ends an epoch with its own partial batch, so an epoch has more batches than
    #: ceil(examples / batch) and the learning-rate schedule must count them.
    bucket_sizes: tuple[int, ...] = ()
    #: Optimizer updates to run; > 0 replaces num_train_epochs by the (fractional) epochs they take.
    max_steps: int = -1
    #: ``data.padding: packed``: the pack layout. Then a dataset row is a pack: ``num_examples``
    #: counts packs and ``per_replica_batch_size`` packs per micro-batch (with drop_remainder).
    packing: Optional[PackingPlan] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.max_steps > 0 and self.dataset_batches_per_epoch >= 1:
            # Frozen dataclass; every step count below derives from the epoch count.
            object.__setattr__(self, "num_train_epochs",
                               self.max_steps * self.batches_per_update / self.batches_per_epoch)
        if self.num_examples < 1:
            raise ConfigError("training data: no examples to train on")
        if self.strategy in STATIC_SHAPE_STRATEGIES and not self.drop_remainder:
            raise ConfigError(
                f"config key 'data.padding': --strategy {self.strategy} compiles for static shapes; set "
                "data.padding: packed (several examples per row of data.max_seq_length tokens) or max_length "
                "(every batch padded to data.max_seq_length, last partial batch dropped)"
            )
        if self.dataset_batches_per_epoch < 1:
            raise ConfigError(
                f"config key 'training.per_device_train_batch_size': a batch of "
                f"{self.dataset_batch_size * (self.num_replicas if self.strategy == 'ipu' else 1)} is larger "
                f"than the {self.num_examples} {'packs of training examples' if self.packing else 'training examples'}"
            )
        if self.strategy == "ipu":
            self._check_ipu()
        if self.steps_per_execution > self.dataset_batches_per_epoch:
            raise ConfigError(
                f"config key 'training.steps_per_execution': {self.steps_per_execution} exceeds the "
                f"{self.dataset_batches_per_epoch} batches in an epoch"
            )

    def _check_ipu(self) -> None:
        """Graphcore's rules: steps_per_execution is a multiple of accumulation × replicas and divides the epoch.

        The second holds by construction: the epoch is cut to whole executions (`batches_per_epoch`).
        """
        per_update = self.batches_per_update
        if self.steps_per_execution == 1 and per_update > 1:
            # Frozen dataclass: derive the only value the SDK accepts when none was chosen.
            object.__setattr__(self, "steps_per_execution", per_update)
        spe = self.steps_per_execution
        if self.pipeline_stages > 1 and self.pipeline_schedule != "sequential":
            stages = self.pipeline_stages
            if self.gradient_accumulation_steps % (2 * stages):
                raise ConfigError(
                    f"config key 'training.gradient_accumulation_steps': a {self.pipeline_schedule} pipeline of "
                    f"{stages} stages needs a multiple of {2 * stages} (2 x stages), got {self.gradient_accumulation_steps}"
                )
        if per_update > self.dataset_batches_per_epoch:
            raise ConfigError(
                f"config key 'training.gradient_accumulation_steps': one update needs {per_update} batches "
                f"(accumulation {self.gradient_accumulation_steps} x {self.num_replicas} replicas) but an epoch "
                f"has {self.dataset_batches_per_epoch}"
            )
        if spe % per_update:
            raise ConfigError(
                f"config key 'training.steps_per_execution': on IPU it must be a multiple of gradient accumulation "
                f"x replicas = {per_update}, got {spe}"
            )
        fit_steps = self.steps_per_epoch_for_fit
        if fit_steps is not None and fit_steps % spe:
            raise ConfigError(
                f"config key 'training.num_train_epochs': {self.num_train_epochs} epochs give {fit_steps} batches "
                f"per fit epoch, not a multiple of steps_per_execution {spe}; use whole epochs on IPU"
            )

    @property
    def global_batch_size(self) -> int:
        return self.per_replica_batch_size * self.num_replicas

    @property
    def dataset_batch_size(self) -> int:
        return self.per_replica_batch_size if self.strategy == "ipu" else self.global_batch_size

    @property
    def effective_batch_size(self) -> int:
        return self.global_batch_size * self.gradient_accumulation_steps

    @property
    def batches_per_update(self) -> int:
        """Dataset batches consumed by one optimizer update."""
        replicas = self.num_replicas if self.strategy == "ipu" else 1
        return self.gradient_accumulation_steps * replicas

    @property
    def dataset_batches_per_epoch(self) -> int:
        """Batches the `tf.data` pipeline yields per epoch."""
        batch = self.dataset_batch_size
        groups = self.bucket_sizes or (self.num_examples,)
        if self.drop_remainder:
            return sum(n // batch for n in groups)
        return sum(math.ceil(n / batch) for n in groups)

    @property
    def batches_per_epoch(self) -> int:
        """Batches `fit` runs per epoch: on IPU a whole number of executions, elsewhere all of them."""
        batches = self.dataset_batches_per_epoch
        return batches - batches % self.steps_per_execution if self.strategy == "ipu" else batches

    @property
    def dropped_batches_per_epoch(self) -> int:
        return self.dataset_batches_per_epoch - self.batches_per_epoch

    def limit_epoch(self, dataset):
        """The training `tf.data.Dataset` cut to `batches_per_epoch` (a no-op unless batches are dropped)."""
        return dataset.take(self.batches_per_epoch) if self.dropped_batches_per_epoch else dataset

    @property
    def epochs(self) -> int:
        """Whole epochs passed to `fit` (a fractional epoch count is rounded up)."""
        return max(1, math.ceil(self.num_train_epochs))

    @property
    def total_micro_steps(self) -> int:
        return max(1, round(self.batches_per_epoch * self.num_train_epochs))

    @property
    def total_optimizer_steps(self) -> int:
        return max(1, self.total_micro_steps // self.batches_per_update)

    @property
    def steps_per_epoch_for_fit(self) -> int | None:
        """`fit(steps_per_epoch=...)`: set only for a fractional epoch count."""
        if float(self.num_train_epochs).is_integer():
            return None
        return max(1, math.ceil(self.total_micro_steps / self.epochs))

    @property
    def examples_per_update(self) -> float:
        """Examples per optimizer update (with packing: on average)."""
        if self.packing is None:
            return float(self.effective_batch_size)
        return self.effective_batch_size * self.packing.examples_per_pack

    def describe(self) -> str:
        if self.packing is not None:
            return self._describe_packed()
        where = f" on {self.strategy}" if self.strategy != "default" else ""
        execution = f", {self.steps_per_execution} steps per execution" if self.steps_per_execution > 1 else ""
        if self.dropped_batches_per_epoch:
            execution += f" ({self.dropped_batches_per_epoch} batches/epoch left out: whole executions only)"
        return (
            f"{self.num_examples} examples, micro-batch {self.per_replica_batch_size} x "
            f"{self.num_replicas} replica(s) x {self.gradient_accumulation_steps} accumulation = "
            f"{self.effective_batch_size} per update{where}; {self.batches_per_epoch} batches/epoch, "
            f"{self.total_optimizer_steps} optimizer steps{execution}"
        )

    def _describe_packed(self) -> str:
        p = self.packing
        where = f" on {self.strategy}" if self.strategy != "default" else ""
        execution = f", {self.steps_per_execution} steps per execution" if self.steps_per_execution > 1 else ""
        if self.dropped_batches_per_epoch:
            execution += f" ({self.dropped_batches_per_epoch} batches/epoch left out: whole executions only)"
        return (
            f"{p.num_examples} examples packed into {p.num_packs} rows of {p.max_seq_length} tokens "
            f"(packing efficiency {p.efficiency:.1%} real tokens, {p.examples_per_pack:.2f} examples/pack); "
            f"micro-batch {self.per_replica_batch_size} packs x {self.num_replicas} replica(s) x "
            f"{self.gradient_accumulation_steps} accumulation = {self.effective_batch_size} packs "
            f"(~{self.examples_per_update:.1f} examples) per update{where}; {self.batches_per_epoch} batches/epoch, "
            f"{self.total_optimizer_steps} optimizer steps{execution}"
        )
