"""Finding, connecting and initialising a Cloud TPU, failing with one clear line when there is none.

TensorFlow's own failure modes are unhelpful without a TPU: ``TPUClusterResolver()`` raises
"Please provide a TPU Name", ``TPUClusterResolver(tpu="local")`` constructs and `TPUStrategy` then
raises an ``IndexError`` deep inside TF, and a TPU *name* makes the resolver query the GCE
metadata server. So tfbert looks for a TPU first and checks the devices after initialisation.
"""
from __future__ import annotations

import glob
import importlib.util
import os
from typing import Optional

import tensorflow as tf

from tfbert.errors import HardwareError

_TPU_ENV = ("TPU_NAME", "COLAB_TPU_ADDR")


def local_tpu_present() -> bool:
    """A TPU VM: TPU chips are attached to this host (``/dev/accel*`` or ``/dev/vfio`` + libtpu)."""
    if glob.glob("/dev/accel[0-9]*"):
        return True
    return bool(glob.glob("/dev/vfio/[0-9]*")) and importlib.util.find_spec("libtpu") is not None


def tpu_address(configured: Optional[str]) -> Optional[str]:
    """The TPU to use: ``distribution.tpu``, else ``$TPU_NAME`` / ``$COLAB_TPU_ADDR``, else "local" on a TPU VM."""
    if configured:
        return configured
    for name in _TPU_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return ("grpc://" + value) if name == "COLAB_TPU_ADDR" and "://" not in value else value
    return "local" if local_tpu_present() else None


def connect_tpu(tpu: Optional[str], zone: Optional[str] = None, project: Optional[str] = None,
                log=print) -> tf.distribute.TPUStrategy:
    """Resolve, connect to and initialise the TPU system; return a `TPUStrategy` over its cores."""
    address = tpu_address(tpu)
    if address is None:
        raise HardwareError(
            "--strategy tpu: no TPU found; set distribution.tpu (a TPU name, grpc://host:port or 'local' on a "
            "TPU VM) or the TPU_NAME environment variable"
        )
    if address == "local" and not local_tpu_present():
        raise HardwareError("--strategy tpu: distribution.tpu is 'local' but this machine has no TPU (/dev/accel*)")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address, zone=zone, project=project)
        if address != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HardwareError(f"--strategy tpu: cannot reach TPU {address!r} ({first})") from None
    cores = tf.config.list_logical_devices("TPU")
    if not cores:
        raise HardwareError(f"--strategy tpu: TPU {address!r} initialised but shows no TPU cores")
    log(f"tpu: {address}, {len(cores)} cores")
    return tf.distribute.TPUStrategy(resolver)
