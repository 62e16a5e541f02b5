"""The side-by-side benchmark's smoke mode runs, so the script cannot rot (the full run is not CI)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_DATA

SST2 = SHARED_DATA / "sst2" / "train.tsv"


def test_flop_formula_and_ratios():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compare_training as ct

    shape = {"d_model": 4, "n_layers": 2, "d_ff": 8, "params_matmul": 2 * (4 * 16 + 2 * 4 * 8)}
    result = {"timed_seconds": 2.0, "examples": 4, "real_tokens": 10, "padded_tokens": 16,
              "sum_sq_real": 30, "sum_sq_padded": 64}
    out = ct.derive(result, shape, peak_gflops=1e-9)  # peak 1 FLOP/s: MFU = FLOP/s
    assert out["mfu"] == pytest.approx((6 * 256 * 10 + 12 * 2 * 4 * 30) / 2.0)
    assert out["hfu"] == pytest.approx((6 * 256 * 16 + 12 * 2 * 4 * 64) / 2.0)
    assert out["real_tokens_per_s"] == 5.0 and out["padded_tokens_per_s"] == 8.0

    log = ct.StepLog()
    for lengths in ([3, 5], [2, 2], [4, 1], [9, 9]):  # one batch more than steps: prefetched, not trained
        log.add_batch(lengths, 6)
    for step in (1, 2, 3):
        log.step_done(step)
    summary = log.summary({"spawn_time": 0.0})
    assert summary["timed_steps"] == 2 and summary["examples"] == 4
    assert summary["real_tokens"] == 9 and summary["padded_tokens"] == 24
    assert summary["sum_sq_real"] == 4 + 4 + 16 + 1


def test_packed_batches_count_examples_and_rows():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compare_training as ct

    # Two packed rows of width 8: examples of 3 and 4 tokens, then one of 5 (the rest padding).
    example_ids = [[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 1, 1, 0, 0, 0]]
    assert ct._example_lengths(example_ids) == [3, 4, 5]
    log = ct.StepLog()
    log.add_batch(ct._example_lengths(example_ids), 8, rows=2)
    log.add_batch(ct._example_lengths(example_ids), 8, rows=2)
    log.step_done(1)
    log.step_done(2)
    summary = log.summary({"spawn_time": 0.0})
    assert summary["examples"] == 3 and summary["real_tokens"] == 12 and summary["padded_tokens"] == 16
    assert summary["sum_sq_real"] == 9 + 16 + 25 and summary["sum_sq_padded"] == 2 * 64


def test_targets_pick_tfbert_best_mode_and_fastest_trainer():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import compare_training as ct

    def m(real, acc=0.86, rss=1500.0, mfu=0.4):
        return {"real_tokens_per_s": real, "accuracy": acc, "peak_rss_mib": rss, "mfu": mfu, "hfu": mfu}
    med = {"tfbert": m(3000), "tfbert-packed-bf16": m(7000, mfu=0.55, rss=1400), "tfbert-packed": m(4000),
           "tfbert-max-length": m(500), "torch-trainer-grouped": m(2000, rss=1600),
           "torch-trainer-grouped-bf16": m(3000, acc=0.875, rss=1500)}
    serving = {"infer-tfbert": [{"latency_p50_ms": 3.0, "throughput_ex_s": 300.0}],
               "infer-onnx": [{"latency_p50_ms": 2.4, "throughput_ex_s": 271.0}]}
    lines = ct.targets(med, serving, {"sst2": {"efficiency": 0.995}, "sms_spam": {"efficiency": 0.94}})
    text = "\n".join(lines)
    assert "best mode: tfbert packed, mixed_bfloat16" in text
    assert "(PyTorch Trainer (group_by_length=True, bf16=True)): 2.33× — **met**" in text
    assert "MFU ≥ 50% of the matmul peak of the precision used: 55.0%" in text
    assert "largest gap 0.0150 (PyTorch Trainer (group_by_length=True, bf16=True)) — **missed**" in text
    assert "SST-2 `train.tsv`: 99.5% — **met**" in text and "SMS spam" in text and "94.0% — **missed**" in text
    assert "packed ≥ 6× max_length (float32, tfbert padding=max_length, float32): 8.00× — **met**" in text
    assert "1,400 vs 1,500 MiB — **met**" in text
    assert "300.0 vs 271.0 examples/s — **met**" in text
    assert "3.00 ms vs 2.40 ms (ONNX Runtime + HF fast tokenizer) — **missed**" in text


@pytest.mark.skipif(not SST2.is_file(), reason=f"{SST2} absent")
def test_smoke_mode_runs_installed_contenders():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_training.py"), "--smoke", "--data", str(SST2)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    rows = {}
    for label in ("| tfbert (defaults: bucket, float32) |", "| tfbert packed, mixed_bfloat16 |", "| seeds' recipe"):
        rows[label] = next(line for line in out.splitlines() if line.startswith(label))
        assert "skipped" not in rows[label]
    # MFU against the peak of the contender's own precision, and the packed rows nearly all real tokens.
    assert "| bfloat16 |" in rows["| tfbert packed, mixed_bfloat16 |"]
    assert "| float32 |" in rows["| tfbert (defaults: bucket, float32) |"]
    packed_fraction = float(rows["| tfbert packed, mixed_bfloat16 |"].split("|")[6])
    assert packed_fraction >= 0.9
    # Every contender either ran or says why not.
    for label in ("PyTorch Trainer (defaults)", "PyTorch Trainer (group_by_length=True)",
                  "PyTorch Trainer (group_by_length=True, bf16=True)", "KerasHub"):
        assert label in out
    assert "MFU" in out and "Targets:" in out and "bfloat16" in out.split("Matmul peaks")[1].splitlines()[0]
    for name in ("SST-2 `train.tsv`", "SMS spam"):
        assert re.search(rf"packing efficiency ≥ 95% real tokens on {re.escape(name)}.*: \d+\.\d% — \*\*(met|missed)", out)
