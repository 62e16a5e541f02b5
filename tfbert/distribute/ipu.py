"""Graphcore IPUs through the Poplar SDK's TensorFlow 2 API (``tensorflow.python.ipu``).

The SDK ships its own TensorFlow wheel and cannot be installed from PyPI, so it is imported only
when ``--strategy ipu`` runs; without it the run stops with one line naming the missing SDK.
Written against Graphcore's documented API (IPUConfig, ``configure_ipu_system``, IPUStrategy,
PopDistStrategy under ``poprun``, ``set_gradient_accumulation_options``,
``set_pipelining_options``); not executed on IPU hardware here.

Gradient accumulation on IPU is the SDK's (its optimizer wrapper, with mean reduction so N
micro-batches give the mean gradient, as tfbert's own accumulation does elsewhere); tfbert's
`TaskModel` accumulation is switched off. Those options are not saved with a model: call
`apply_ipu_options` again after loading one.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

from tfbert.errors import HardwareError

IPU_MODULE = "tensorflow.python.ipu"
_POPDIST_STRATEGY_MODULES = (
    "tensorflow.python.ipu.distributed.popdist_strategy",  # SDK 3.x
    "tensorflow.python.ipu.horovod.popdist_strategy",  # SDK 2.x
)


def import_ipu() -> ModuleType:
    """Graphcore's ``tensorflow.python.ipu``, or a one-line HardwareError naming the missing SDK."""
    try:
        return importlib.import_module(IPU_MODULE)
    except ImportError:
        raise HardwareError(
            "--strategy ipu: Graphcore's Poplar SDK is not installed (no module tensorflow.python.ipu); "
            "install the SDK's TensorFlow 2 wheel and source its enable.sh"
        ) from None


def _popdist() -> Optional[ModuleType]:
    """The ``popdist`` module when this process was started by ``poprun``, else None."""
    try:
        import popdist
    except ImportError:
        return None
    return popdist if popdist.isPopdistEnvSet() else None


def num_replicas(distribution) -> int:
    """Data-parallel model replicas in the whole job (poprun decides it under PopDist)."""
    popdist = _popdist()
    return int(popdist.getNumTotalReplicas()) if popdist else distribution.replication_factor


def make_ipu_config(ipu: ModuleType, distribution, popdist: Optional[ModuleType] = None):
    """An `IPUConfig` acquiring ipus_per_replica x replication_factor IPUs (or what poprun assigns)."""
    config = ipu.config.IPUConfig()
    if popdist is not None:
        import popdist.tensorflow

        popdist.tensorflow.set_ipu_config(config, ipus_per_replica=distribution.ipus_per_replica, configure_device=True)
    elif distribution.auto_select_ipus:
        config.auto_select_ipus = distribution.ipus_per_replica * distribution.replication_factor
    else:
        config.select_ipus = distribution.select_ipus
    return config


def ipu_strategy(distribution, log=print):
    """Configure the IPU system and return IPUStrategy, or PopDistStrategy when run by poprun."""
    ipu = import_ipu()
    popdist = _popdist()
    config = make_ipu_config(ipu, distribution, popdist)
    try:
        config.configure_ipu_system()
    except Exception as exc:  # the SDK raises its own error types when IPUs cannot be attached
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HardwareError(f"--strategy ipu: cannot attach the IPUs ({first})") from None
    if popdist is None:
        log(f"ipu: {distribution.ipus_per_replica} IPU(s) per replica x {distribution.replication_factor} replica(s)")
        return ipu.ipu_strategy.IPUStrategy()
    for name in _POPDIST_STRATEGY_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        log(f"ipu: poprun instance {popdist.getInstanceIndex()} of {popdist.getNumInstances()}, "
            f"{popdist.getNumTotalReplicas()} replicas in all")
        return module.PopDistStrategy()
    raise HardwareError("--strategy ipu: running under poprun but this SDK has no PopDistStrategy")


def apply_ipu_options(model, gradient_accumulation_steps: int, distribution, ipu: Optional[ModuleType] = None) -> None:
    """Gradient accumulation (and pipelining) through the SDK; call after compile and after every load.

    `model` must be a Keras model created in the IPUStrategy's scope (the SDK adds these methods
    to it). With ``distribution.pipeline_splits`` it must be the unrolled model from
    `tfbert.distribute.ipu_pipeline.unroll_for_pipelining`.
    """
    ipu = ipu or import_ipu()
    # The SDK's optimizer wrapper accumulates; tfbert's TaskModel must not accumulate as well.
    model.gradient_accumulation_steps = 1
    if distribution.pipeline_splits:
        from tfbert.distribute.ipu_pipeline import set_pipeline_stages

        stages = set_pipeline_stages(model, distribution.pipeline_splits)
        schedule = getattr(ipu.ops.pipelining_ops.PipelineSchedule, distribution.pipeline_schedule.capitalize())
        model.set_pipelining_options(
            gradient_accumulation_steps_per_replica=gradient_accumulation_steps,
            device_mapping=list(range(stages)),
            pipeline_schedule=schedule,
            gradient_accumulation_reduction_method="mean",
        )
    elif gradient_accumulation_steps > 1:
        model.set_gradient_accumulation_options(
            gradient_accumulation_steps_per_replica=gradient_accumulation_steps,
            gradient_accumulation_reduction_method="mean",
        )
