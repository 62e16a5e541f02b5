"""Where a `tf.distribute` strategy is chosen, and what each strategy needs from the rest of tfbert.

``--strategy`` (or ``distribution.strategy``):

- ``default``: one device (the CPU or one GPU);
- ``mirrored``: `MirroredStrategy` over ``distribution.devices`` (default: every local GPU);
- ``multiworker``: `MultiWorkerMirroredStrategy` over the cluster in ``TF_CONFIG``;
- ``tpu``: `TPUStrategy` on the TPU named by ``distribution.tpu`` / ``$TPU_NAME`` / a TPU VM;
- ``ipu``: Graphcore's IPUStrategy (PopDistStrategy under poprun), from the Poplar SDK;
- ``auto``: the first of ipu (SDK present), tpu (one is named or attached), multiworker
  (``TF_CONFIG`` lists several tasks), mirrored (several GPUs or devices), default.

Build the model, optimizer and metrics inside ``strategy.scope()`` (`build_experiment` does).

What each strategy needs lives beside this module:

- `cluster`: multi-worker bookkeeping (TF_CONFIG, chief, per-worker scratch output, final barrier);
- `tpu`: finding and initialising a Cloud TPU;
- `ipu`: Graphcore's SDK (imported lazily), IPUConfig, gradient accumulation and pipelining options;
- `ipu_pipeline`: the BERT task model unrolled into embeddings / encoder layers / head for IPU
  pipelining.
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Optional

import tensorflow as tf

from tfbert.config import STRATEGIES, DistributionConfig
from tfbert.distribute.cluster import IPU_STRATEGY_NAMES, barrier, cluster_size, is_chief, read_tf_config, writer_config
from tfbert.distribute.ipu_pipeline import serving_model
from tfbert.errors import ConfigError, HardwareError

__all__ = [
    "STRATEGIES", "barrier", "choose_strategy", "is_chief", "num_replicas", "prepare_model", "resolve_strategy_name",
    "serving_model", "shard_by_data", "strategy_kind", "writer_config",
]


def _ipu_sdk_present() -> bool:
    try:
        return importlib.util.find_spec("tensorflow.python.ipu") is not None
    except (ImportError, ValueError):
        return False


def resolve_strategy_name(name: str, distribution: DistributionConfig) -> str:
    """The concrete strategy for `name`; ``auto`` looks at the SDKs, environment and devices."""
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy: {name!r} is not available; expected one of {', '.join(STRATEGIES)}")
    if name != "auto":
        return name
    from tfbert.distribute.tpu import tpu_address

    if _ipu_sdk_present():
        return "ipu"
    if tpu_address(distribution.tpu):
        return "tpu"
    if cluster_size(read_tf_config()) > 1:
        return "multiworker"
    if (distribution.devices and len(distribution.devices) > 1) or len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def choose_strategy(name: Optional[str] = None, distribution: Optional[DistributionConfig] = None,
                    log: Callable[[str], None] = print) -> tf.distribute.Strategy:
    """The strategy for ``--strategy NAME`` (default: ``distribution.strategy``).

    Call it first, before any other TensorFlow work: logical CPU devices and the multi-worker
    runtime can only be set up before TensorFlow initialises.
    """
    distribution = distribution or DistributionConfig()
    requested = name or distribution.strategy
    name = resolve_strategy_name(requested, distribution)
    if requested == "auto":
        log(f"strategy: auto chose {name}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored(distribution.devices)
    if name == "multiworker":
        return _multiworker(distribution.communication)
    if name == "tpu":
        from tfbert.distribute.tpu import connect_tpu

        return connect_tpu(distribution.tpu, distribution.tpu_zone, distribution.tpu_project, log=log)
    from tfbert.distribute.ipu import ipu_strategy

    return ipu_strategy(distribution, log=log)


def _ensure_logical_cpus(devices: list[str]) -> None:
    """Split the CPU into as many logical devices as ``/cpu:N`` entries ask for (before TF starts)."""
    wanted = [tf.DeviceSpec.from_string(d) for d in devices]
    needed = max([(spec.device_index or 0) + 1 for spec in wanted if (spec.device_type or "").upper() == "CPU"],
                 default=0)
    if needed <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or []
    if len(current) >= needed:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * needed)
    except RuntimeError:
        raise HardwareError(
            f"config key 'distribution.devices': {needed} logical CPU devices must be set up before TensorFlow "
            "starts; choose the strategy first in a fresh process (tools/train.py does)"
        ) from None


def _mirrored(devices: Optional[list[str]]) -> tf.distribute.MirroredStrategy:
    if not devices:
        return tf.distribute.MirroredStrategy()
    _ensure_logical_cpus(devices)
    present = {(d.device_type.upper(), int(d.name.rsplit(":", 1)[-1])) for d in tf.config.list_logical_devices()}
    for device in devices:
        spec = tf.DeviceSpec.from_string(device)
        if ((spec.device_type or "").upper(), spec.device_index or 0) not in present:
            raise HardwareError(f"config key 'distribution.devices': no device {device} on this machine")
    return tf.distribute.MirroredStrategy(devices)


def _multiworker(communication: str) -> tf.distribute.MultiWorkerMirroredStrategy:
    tf_config = read_tf_config()
    if not tf_config:
        raise HardwareError(
            "--strategy multiworker: TF_CONFIG is not set; start every worker with its TF_CONFIG "
            "(tools/launch_local.py does this for N workers on one machine)"
        )
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[communication]
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    """``default``, ``mirrored``, ``multiworker``, ``tpu`` or ``ipu`` for a strategy object."""
    # Graphcore's classes exist only in the SDK (PopDistStrategy derives from a TF strategy):
    # recognise them first, by name, without importing the SDK.
    if type(strategy).__name__ in IPU_STRATEGY_NAMES:
        return "ipu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multiworker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy)):
        return "tpu"
    return "default"


def num_replicas(strategy: tf.distribute.Strategy, distribution: DistributionConfig) -> int:
    """Data-parallel replicas: TF's count, except on IPU where replication happens inside Poplar."""
    if strategy_kind(strategy) == "ipu":
        from tfbert.distribute.ipu import num_replicas as ipu_replicas

        return ipu_replicas(distribution)
    return strategy.num_replicas_in_sync


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard across workers by element, explicitly: the default (by file) fails with few or no files."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def prepare_model(model, strategy: tf.distribute.Strategy, gradient_accumulation_steps: int,
                  distribution: DistributionConfig, pooling: str = "cls",
                  compile_fn: Optional[Callable[[object], None]] = None):
    """Strategy-specific model set-up after compile, inside the strategy's scope; returns the model to fit.

    On IPU: the SDK's gradient accumulation (and, with ``distribution.pipeline_splits``, an
    unrolled, pipelined model compiled by `compile_fn`). Elsewhere the model is returned as is.
    """
    if strategy_kind(strategy) != "ipu":
        return model
    from tfbert.distribute.ipu import apply_ipu_options

    if distribution.pipeline_splits:
        from tfbert.distribute.ipu_pipeline import unroll_for_pipelining

        model = unroll_for_pipelining(model, pooling)
        if compile_fn is None:
            raise ConfigError("config key 'distribution.pipeline_splits': the pipelined model needs compiling")
        compile_fn(model)
    apply_ipu_options(model, gradient_accumulation_steps, distribution)
    return model
