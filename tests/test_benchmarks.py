"""The side-by-side benchmark's smoke mode runs, so the script cannot rot (the full run is not CI)."""
from __future__ import annotations

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


@pytest.mark.skipif(not SST2.is_file(), reason=f"{SST2} absent")
def test_smoke_mode_runs_installed_contenders():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_training.py"), "--smoke", "--data", str(SST2)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for label in ("| tfbert (defaults) |", "| seeds' recipe"):
        row = next(line for line in out.splitlines() if line.startswith(label))
        assert "skipped" not in row
    # Every contender either ran or says why not.
    for label in ("PyTorch Trainer (defaults)", "PyTorch Trainer (group_by_length=True)", "KerasHub"):
        assert label in out
    assert "MFU" in out and "Targets:" in out
