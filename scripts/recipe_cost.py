#!/usr/bin/env python3
"""Estimate a recipe's training time on this machine from a short timed run, per precision.

    python scripts/recipe_cost.py configs/sst2_minilm.yaml [--updates 60] \
        [--precision float32 mixed_bfloat16] [--set KEY=VALUE ...]

Recipes take 10 minutes to 2 hours, too long to run once per CPU class and precision. This script
runs ``tools/train.py`` on the recipe for `--updates` optimizer updates per precision (its data,
batch plan and model, nothing exported), reads the seconds of each logging window from the run's
``steps.jsonl``, drops the first window (graph tracing, oneDNN warm-up) and multiplies the median
seconds per update by the full recipe's updates (``N batches/epoch`` of its ``plan:`` line times
the epochs). Evaluation, saving and export are not in the estimate; on a machine shared with
other jobs every figure is high. It prints the CPU's model name and bfloat16 flags with each
line, since the same recipe differs by 3x between CPU classes (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfbert.config import load_config  # noqa: E402 - TF-free, like the run directory's readers
from tfbert.rundir import RunDir  # noqa: E402


def cpu_description() -> str:
    """'MODEL, N cores, bf16: FLAGS' from /proc/cpuinfo and the cores this process may use."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    bf16 = sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, bfloat16 units: {', '.join(bf16) or 'none'}"


def time_precision(config: str, precision: str, updates: int, overrides: list[str]) -> dict:
    """Run `updates` updates in `precision`; seconds per update after the first window and the full plan."""
    with tempfile.TemporaryDirectory(prefix="tfbert-cost-") as tmp:
        run = Path(tmp) / "run"
        command = [sys.executable, str(ROOT / "tools" / "train.py"), "--config", config,
                   "--set", f"precision.policy={precision}", "--set", f"training.max_steps={updates}",
                   "--set", "training.logging_steps=10", "--set", "export.at_end=false",
                   "--set", "training.do_predict=false", "--set", "training.tensorboard=false",
                   "--set", "training.verbose=2", "--set", "training.save_steps=100000",
                   "--set", f"training.output_dir={run}"]
        for override in overrides:
            command += ["--set", override]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise SystemExit(f"error: {config} ({precision}): training failed: {tail[0]}")
        windows = RunDir(run).read_steps()
        log = done.stdout + done.stderr
    plan = re.search(r"(\d+) batches/epoch", log)
    if not (plan and len(windows) > 1):
        raise SystemExit(f"error: {config} ({precision}): no batch plan or fewer than two logging windows")
    steps = [w["step"] for w in windows]
    seconds = [w["seconds"] / (s - p) for w, s, p in zip(windows[1:], steps[1:], steps[:-1])]
    recipe = load_config(config, overrides).training
    total = recipe.max_steps if recipe.max_steps > 0 else \
        int(plan.group(1)) * recipe.num_train_epochs / recipe.gradient_accumulation_steps
    per_update = statistics.median(seconds)
    return {"precision": precision, "seconds_per_update": per_update, "updates": int(total),
            "estimated_minutes": per_update * total / 60, "wall_seconds": time.monotonic() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a recipe, e.g. configs/sst2_minilm.yaml")
    parser.add_argument("--updates", type=int, default=60, help="updates to time per precision (the first 10 are dropped)")
    parser.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed on to tools/train.py (e.g. a faster variant's settings)")
    args = parser.parse_args(argv)
    if args.updates < 20:
        parser.error("--updates must be at least 20 (two logging windows after the first)")
    cpu = cpu_description()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"{args.config} {' '.join(args.overrides)} on {cpu} (load average {load:.1f} at the start)")
    for precision in args.precision:
        r = time_precision(args.config, precision, args.updates, args.overrides)
        print(f"  {precision}: {r['seconds_per_update']:.3f} s/update x {r['updates']} updates = "
              f"~{r['estimated_minutes']:.0f} min of training (timed run {r['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
