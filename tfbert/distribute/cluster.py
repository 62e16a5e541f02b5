"""Multi-worker bookkeeping: who is the chief, where the others write, and the final barrier.

Every worker must run the same sequence of collective operations: saving a checkpoint or a model
reads per-replica (``ON_READ``) variables such as Keras metrics, which all-reduces across workers.
So every worker runs the whole run, callbacks and export included, but only the chief writes into
``training.output_dir``; the others write to a private scratch directory that is deleted at the
end (the pattern TensorFlow's multi-worker Keras guide prescribes).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import tempfile
from typing import Iterator, Optional

import tensorflow as tf

from tfbert.errors import HardwareError

SCRATCH_PREFIX = "tfbert-worker"
#: Graphcore's strategy classes (SDK only), recognised by name so the SDK is never imported here.
IPU_STRATEGY_NAMES = ("IPUStrategy", "IPUStrategyV1", "PopDistStrategy")


def read_tf_config() -> dict:
    """The parsed ``TF_CONFIG`` (``{}`` when unset), with a clear error when it is malformed."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HardwareError(f"TF_CONFIG: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster"), dict) or not isinstance(value.get("task"), dict):
        raise HardwareError('TF_CONFIG: expected {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}')
    return value


def cluster_size(tf_config: dict) -> int:
    """Number of tasks (workers + chief) that `TF_CONFIG` describes."""
    return sum(len(tasks) for job, tasks in tf_config.get("cluster", {}).items() if job in ("chief", "worker"))


def task_of(strategy: tf.distribute.Strategy) -> tuple[Optional[str], int]:
    """``(task_type, task_id)`` of this process in a multi-worker strategy, ``(None, 0)`` otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes checkpoints, exports and logs: ``chief`` if there is one, else worker 0."""
    task_type, task_id = task_of(strategy)
    if task_type is None:
        return _popdist_instance() == 0
    if task_type == "chief":
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().jobs
    return task_type == "worker" and task_id == 0 and not has_chief


def _popdist_instance() -> int:
    """Instance index under Graphcore's poprun (0 when not running under it)."""
    try:
        import popdist  # Graphcore SDK; absent everywhere else
    except ImportError:
        return 0
    return int(popdist.getInstanceIndex()) if popdist.isPopdistEnvSet() else 0


@contextlib.contextmanager
def writer_config(config, strategy: tf.distribute.Strategy) -> Iterator[object]:
    """Yield the config this process writes with: the chief's own, or a copy aimed at scratch space.

    Non-chief workers get ``training.output_dir`` replaced by a fresh temporary directory, which
    is removed when the block ends (normally or by an error).
    """
    if is_chief(strategy):
        yield config
        return
    task_type, task_id = task_of(strategy)
    # One name per (run, worker): a worker killed before its cleanup leaves its scratch behind,
    # and the rerun that resumes the run reuses and finally removes it.
    run_key = hashlib.sha1(os.path.abspath(config.training.output_dir).encode()).hexdigest()[:12]
    scratch = os.path.join(tempfile.gettempdir(), f"{SCRATCH_PREFIX}-{task_type or 'instance'}{task_id}-{run_key}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    worker_config = copy.deepcopy(config)
    worker_config.training.output_dir = scratch
    worker_config.training.overwrite_output_dir = True
    worker_config.training.verbose = 0  # the chief's progress is the run's progress
    try:
        yield worker_config
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def barrier(strategy: tf.distribute.Strategy) -> None:
    """An all-reduce every worker must reach: no worker leaves (and tears down) while others still work.

    Without it one worker exits after `fit` while another is still finishing, and the survivor
    logs ``UNAVAILABLE ... stopped sending heartbeats`` (shared/STACK-NOTES.md).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or type(strategy).__name__ in IPU_STRATEGY_NAMES:
        return

    @tf.function
    def sync():
        # A replica-context all_reduce always communicates; strategy.reduce of a value that is not
        # per-replica may be computed locally.
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.ones([])))

    total = strategy.experimental_local_results(sync())[0]
    if int(total.numpy()) != strategy.num_replicas_in_sync:
        raise HardwareError(f"multiworker barrier: {int(total.numpy())} of {strategy.num_replicas_in_sync} replicas answered")
