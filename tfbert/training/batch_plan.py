"""One object that derives batch sizes and step counts and rejects impossible combinations."""
from __future__ import annotations

import math
from dataclasses import dataclass

from tfbert.errors import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    """Batch arithmetic for one run.

    - ``global_batch_size`` = per-replica micro-batch × replicas: what one `tf.data` batch holds
      (Keras splits it across replicas);
    - ``effective_batch_size`` = global batch × gradient accumulation: examples per optimizer update;
    - step counts are in micro-batches (``batches_per_epoch``) and optimizer updates
      (``total_optimizer_steps``, which the learning-rate schedule counts).
    """

    num_examples: int
    per_replica_batch_size: int
    num_replicas: int = 1
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 1.0
    steps_per_execution: int = 1
    drop_remainder: bool = False

    def __post_init__(self) -> None:
        if self.num_examples < 1:
            raise ConfigError("training data: no examples to train on")
        if self.batches_per_epoch < 1:
            raise ConfigError(
                f"config key 'training.per_device_train_batch_size': global batch "
                f"{self.global_batch_size} is larger than the {self.num_examples} training examples"
            )
        if self.steps_per_execution > self.batches_per_epoch:
            raise ConfigError(
                f"config key 'training.steps_per_execution': {self.steps_per_execution} exceeds the "
                f"{self.batches_per_epoch} batches in an epoch"
            )

    @property
    def global_batch_size(self) -> int:
        return self.per_replica_batch_size * self.num_replicas

    @property
    def effective_batch_size(self) -> int:
        return self.global_batch_size * self.gradient_accumulation_steps

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_remainder:
            return self.num_examples // self.global_batch_size
        return math.ceil(self.num_examples / self.global_batch_size)

    @property
    def epochs(self) -> int:
        """Whole epochs passed to `fit` (a fractional epoch count is rounded up)."""
        return max(1, math.ceil(self.num_train_epochs))

    @property
    def total_micro_steps(self) -> int:
        return max(1, round(self.batches_per_epoch * self.num_train_epochs))

    @property
    def total_optimizer_steps(self) -> int:
        return max(1, self.total_micro_steps // self.gradient_accumulation_steps)

    @property
    def steps_per_epoch_for_fit(self) -> int | None:
        """`fit(steps_per_epoch=...)`: set only for a fractional epoch count."""
        if float(self.num_train_epochs).is_integer():
            return None
        return max(1, math.ceil(self.total_micro_steps / self.epochs))

    def describe(self) -> str:
        return (
            f"{self.num_examples} examples, micro-batch {self.per_replica_batch_size} x "
            f"{self.num_replicas} replica(s) x {self.gradient_accumulation_steps} accumulation = "
            f"{self.effective_batch_size} per update; {self.batches_per_epoch} batches/epoch, "
            f"{self.total_optimizer_steps} optimizer steps"
        )
