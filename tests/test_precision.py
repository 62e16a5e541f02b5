"""precision.policy: auto chooses by the hardware (detection mocked), and a run says what it chose."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tfbert.training import precision
from tfbert.training.precision import cpu_flags, resolve_policy


@pytest.fixture
def linux_x86(monkeypatch):
    """Detection as on a Linux x86 machine without GPUs; the test sets the CPU flags."""
    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [])
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)

    def with_flags(*flags: str) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda path="/proc/cpuinfo": frozenset(flags))
    return with_flags


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_explicit_policy_is_kept_whatever_the_hardware(policy):
    choice = resolve_policy(policy, "tpu", gpus=[(8, 0)], flags=frozenset({"amx_bf16"}))
    assert choice.policy == policy and choice.reason == "set by precision.policy"


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="float8"):
        resolve_policy("float8")


def test_tpu_gets_bfloat16():
    choice = resolve_policy("auto", "tpu", gpus=[], flags=frozenset())
    assert choice.policy == "mixed_bfloat16" and "TPU" in choice.reason


def test_ipu_stays_float32():
    assert resolve_policy("auto", "ipu", gpus=[], flags=frozenset({"amx_bf16"})).policy == "float32"


@pytest.mark.parametrize("gpus, policy, says", [
    ([(8, 0)], "mixed_float16", "8.0"),
    ([(9, 0), (7, 0)], "mixed_float16", "7.0"),  # the weakest GPU decides
    ([(7, 5), (6, 1)], "float32", "6.1"),
    ([None], "float32", "unknown"),
])
def test_gpus_get_float16_only_with_tensor_cores(gpus, policy, says):
    # A GPU decides even on a bfloat16 CPU: the model runs on the GPU.
    choice = resolve_policy("auto", "mirrored", gpus=gpus, flags=frozenset({"avx512_bf16"}))
    assert choice.policy == policy and says in choice.reason and choice.reason.startswith("auto: ")


@pytest.mark.parametrize("flags, policy, says", [
    ({"avx512f", "avx512_bf16"}, "mixed_bfloat16", "AVX512_BF16"),
    ({"amx_tile", "amx_bf16", "avx512_bf16"}, "mixed_bfloat16", "AVX512_BF16/AMX_BF16"),
    ({"avx2", "avx512f", "avx512_vnni"}, "float32", "no bfloat16 arithmetic"),
    (set(), "float32", "no bfloat16 arithmetic"),
])
def test_cpu_bfloat16_from_flags(flags, policy, says):
    choice = resolve_policy("auto", "default", gpus=[], flags=frozenset(flags))
    assert choice.policy == policy and says in choice.reason
    assert choice.describe() == f"{policy} ({choice.reason})"


def test_onednn_off_keeps_float32(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    choice = resolve_policy("auto", "default", gpus=[], flags=frozenset({"amx_bf16"}))
    assert choice.policy == "float32" and "oneDNN" in choice.reason


def test_detection_reads_linux_flags(linux_x86):
    linux_x86("fpu", "avx512_bf16")
    assert resolve_policy("auto").policy == "mixed_bfloat16"
    linux_x86("fpu", "avx2")
    assert resolve_policy("auto").policy == "float32"


def test_other_platforms_are_not_guessed(linux_x86, monkeypatch):
    linux_x86("avx512_bf16")
    monkeypatch.setattr(precision.platform, "machine", lambda: "arm64")
    choice = resolve_policy("auto")
    assert choice.policy == "float32" and "Linux x86" in choice.reason


def test_cpu_flags_parses_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx512_bf16 amx_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse avx512_bf16 amx_bf16\n")
    assert cpu_flags(info) == {"fpu", "sse", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_auto_run_trains_in_the_chosen_policy_and_says_why(tiny_config, linux_x86):
    import tf_keras

    from tfbert.run.experiment import build_experiment
    from tfbert.run.trainer import train

    linux_x86("avx512_bf16", "amx_bf16")
    experiment = build_experiment(tiny_config("precision.policy=auto"))
    assert experiment.config.precision.policy == "mixed_bfloat16"
    assert tf_keras.mixed_precision.global_policy().name == "mixed_bfloat16"

    linux_x86("avx2")
    lines: list[str] = []
    config = tiny_config("precision.policy=auto", "export.at_end=false")
    train(config, log=lambda *a: lines.append(" ".join(str(x) for x in a)))
    said = [line for line in lines if line.startswith("precision: ")]
    assert said == ["precision: float32 (auto: no GPU, and the CPU has no bfloat16 arithmetic "
                    "(AVX512_BF16 or AMX_BF16))"], lines
    saved = yaml.safe_load((Path(config.training.output_dir) / "config.yaml").read_text())
    assert saved["precision"]["policy"] == "float32"
