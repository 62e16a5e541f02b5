"""Interleaved A/B timing of ONNX files in one ONNX Runtime process: which graph is faster, noise aside.

``compare_training.py`` times each server in its own process, as a deployment runs; on a shared
2-core machine one process's batch-1 p50 varies by a third between rounds, more than the
difference between two spellings of the same model. This script loads every file given into one
process and alternates short blocks of calls between them, so every file sees the same machine
state; thread-pool spinning is off, or the idle sessions' spinning threads would take the cores
from the one being timed. Token ids are random (batch 1 × ``--length`` and batch 64 × 32), the
same for every file. Use it to decide between graph rewrites; quote ``compare_training.py`` for
end-to-end figures.

    .venv/bin/python benchmarks/compare_onnx.py exported/plain/model.onnx exported/optimized/model.onnx --threads 1 2
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _feed(session, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ids = rng.integers(1000, 20000, (batch, length))
    out = {}
    for value in session.get_inputs():
        data = {"input_ids": ids, "attention_mask": np.ones_like(ids)}.get(value.name, np.zeros_like(ids))
        out[value.name] = data.astype(np.int64 if "int64" in value.type else np.int32)
    return out


def compare(paths: list[str], threads: int, rounds: int, block: int, length: int) -> list[dict[str, float]]:
    """Per file: median over rounds of each block's median batch-1 ms, and median batch-64 examples/s."""
    import onnxruntime as ort

    sessions = []
    for path in paths:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions.append(ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]))
    ones = [_feed(s, 1, length, np.random.default_rng(1)) for s in sessions]
    wide = [_feed(s, 64, 32, np.random.default_rng(2)) for s in sessions]
    for session, feed in zip(sessions, ones):
        for _ in range(3 * block):
            session.run(None, feed)
    single = [[] for _ in sessions]
    batched = [[] for _ in sessions]
    for _ in range(rounds):
        for i, (session, feed) in enumerate(zip(sessions, ones)):
            times = []
            for _ in range(block):
                start = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - start)
            single[i].append(statistics.median(times) * 1e3)
        for i, (session, feed) in enumerate(zip(sessions, wide)):
            start = time.perf_counter()
            session.run(None, feed)
            batched[i].append(64 / (time.perf_counter() - start))
    return [{"batch1_ms": statistics.median(a), "batch64_ex_s": statistics.median(b)} for a, b in zip(single, batched)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="ONNX files taking input_ids / attention_mask (/ token_type_ids)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--block", type=int, default=20, help="batch-1 calls per file per round")
    parser.add_argument("--length", type=int, default=18, help="tokens of the batch-1 input")
    args = parser.parse_args(argv)
    print("| threads | file | batch-1 p50 (ms) | batch-64 × 32 (examples/s) |")
    print("|---|---|---|---|")
    for threads in args.threads:
        for path, row in zip(args.paths, compare(args.paths, threads, args.rounds, args.block, args.length)):
            print(f"| {threads} | `{path}` | {row['batch1_ms']:.3f} | {row['batch64_ex_s']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
