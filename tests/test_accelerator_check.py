"""scripts/accelerator_check.sh needs a GPU: without one it says so in one line and exits 2."""
from __future__ import annotations

import os
import subprocess

from tests.conftest import ROOT


def test_without_a_gpu_it_stops_with_one_line(tmp_path):
    out = tmp_path / "check"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU, even on a machine that has one
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "accelerator_check.sh"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: accelerator_check: no GPU visible to TensorFlow") and "not run" in lines[0]
    assert "CUDA_VISIBLE_DEVICES hides every GPU" in lines[0]
    assert not out.exists()  # nothing half-written


def test_table_marks_skipped_and_failed_configurations(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import accelerator_check as ac

    ran = {"precision": "mixed_float16", "padding": "packed", "xla": True, "replicas": 2, "examples_per_s": 1234.5,
           "real_tokens_per_s": 16000.0, "real_fraction": 0.981, "time_to_first_step_s": 21.0,
           "peak_gpu_memory_mib": 3072.0}
    table = ac.markdown([ran, {"precision": "float32", "padding": "bucket", "xla": True, "skipped": "time budget (450 s)"},
                         {"precision": "float32", "padding": "max_length", "xla": False, "error": "OOM"}], "header")
    rows = table.splitlines()
    assert rows[0] == "header"
    assert "| mixed_float16 | packed | on | 2 | 1,234.5 | 16,000 | 0.98 | 21.0 | 3,072 |" in rows
    assert any("| float32 | bucket | on |" in r and "skipped: time budget" in r for r in rows)
    assert any("| float32 | max_length | off |" in r and "failed: OOM" in r for r in rows)
    assert len(ac.CONFIGS) == 12 and len(set(ac.CONFIGS)) == 12  # precision x padding x XLA
