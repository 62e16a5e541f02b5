"""Keras mixed-precision policies (set before any layer is built), and ``auto``'s choice among them."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import tf_keras

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
AUTO = "auto"
#: Linux /proc/cpuinfo flags of CPUs whose oneDNN kernels multiply in bfloat16.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def set_precision(policy: str) -> tf_keras.mixed_precision.Policy:
    """Set the global policy for tf_keras (the Keras that transformers' TF models use).

    The classifier's last layer is always created with ``dtype="float32"`` so logits, softmax and
    loss stay in float32; ``mixed_float16`` also wraps the optimizer in a LossScaleOptimizer
    (see `tfbert.training.optimization.make_optimizer`), which skips steps with inf/NaN
    gradients and lowers the loss scale instead of writing NaNs into the weights.
    """
    if policy == AUTO:
        policy = resolve_policy(policy).policy
    if policy not in POLICIES:
        raise ValueError(f"unknown precision policy {policy!r}")
    tf_keras.mixed_precision.set_global_policy(policy)
    return tf_keras.mixed_precision.global_policy()


@dataclass(frozen=True)
class PrecisionChoice:
    """The policy a run uses and why (the trainer's ``precision:`` line)."""

    policy: str
    reason: str

    def describe(self) -> str:
        return f"{self.policy} ({self.reason})"


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags Linux reports; empty where there is no such file."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def gpu_compute_capabilities() -> list[Optional[tuple[int, int]]]:
    """Compute capability of every visible GPU (None where TensorFlow does not report one)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        except (ValueError, RuntimeError):
            capability = None
        capabilities.append(tuple(capability) if capability else None)
    return capabilities


def resolve_policy(policy: str, strategy_kind: str = "default", *,
                   gpus: Optional[Sequence[Optional[tuple[int, int]]]] = None,
                   flags: Optional[frozenset[str]] = None) -> PrecisionChoice:
    """The concrete policy for ``precision.policy`` (``auto`` chooses by the hardware).

    ``auto``: mixed_bfloat16 on TPUs and on CPUs with bfloat16 arithmetic (AVX512_BF16 or AMX:
    oneDNN multiplies in bfloat16 at about twice the float32 rate), mixed_float16 when every
    visible GPU has float16 tensor cores (compute capability 7.0 or later), float32 otherwise.
    `gpus` and `flags` replace the detection (tests).
    """
    if policy != AUTO:
        if policy not in POLICIES:
            raise ValueError(f"unknown precision policy {policy!r}")
        return PrecisionChoice(policy, "set by precision.policy")
    if strategy_kind == "tpu":
        return PrecisionChoice("mixed_bfloat16", "auto: TPU matrix units multiply in bfloat16")
    if strategy_kind == "ipu":
        # IPUs have no bfloat16, and float16 there needs Graphcore's own loss-scaling settings.
        return PrecisionChoice("float32", "auto: no automatic choice on IPU; set precision.policy to change it")
    gpus = gpu_compute_capabilities() if gpus is None else list(gpus)
    if gpus:
        if all(cc is not None and tuple(cc) >= (7, 0) for cc in gpus):
            lowest = min(tuple(cc) for cc in gpus)
            return PrecisionChoice("mixed_float16", f"auto: GPU compute capability {lowest[0]}.{lowest[1]} "
                                                    "has float16 tensor cores")
        shown = ", ".join("unknown" if cc is None else f"{cc[0]}.{cc[1]}" for cc in gpus)
        return PrecisionChoice("float32", f"auto: GPU compute capability {shown}: not every GPU has float16 "
                                          "tensor cores (7.0 or later)")
    if flags is None:
        if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
            return PrecisionChoice("float32", "auto: bfloat16 arithmetic is detected on Linux x86 CPUs only")
        flags = cpu_flags()
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if not found:
        return PrecisionChoice("float32", "auto: no GPU, and the CPU has no bfloat16 arithmetic "
                                          "(AVX512_BF16 or AMX_BF16)")
    names = "/".join(f.upper() for f in found)
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        # Without oneDNN, bfloat16 matmuls fall back to kernels slower than float32.
        return PrecisionChoice("float32", f"auto: the CPU has {names}, but oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)")
    return PrecisionChoice("mixed_bfloat16", f"auto: the CPU has {names} bfloat16 arithmetic")
