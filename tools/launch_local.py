#!/usr/bin/env python
"""Start N MultiWorkerMirrored workers on this machine (127.0.0.1), for trying multiworker out.

    tools/launch_local.py --workers 2 -- --config configs/sms_spam_minilm.yaml --set training.output_dir=runs/mw

Everything after ``--`` goes to ``tools/train.py`` (``--strategy multiworker`` is added unless
given). Each worker gets its own ``TF_CONFIG`` (free ports on 127.0.0.1, worker 0 is the chief),
an equal share of the CPU threads, and its output prefixed with ``[worker i]``. If a worker
fails, the others are stopped; the exit code is the first failure's (0 when all succeed).

On real clusters set ``TF_CONFIG`` on each machine yourself (or let your scheduler do it) and run
``tools/train.py --strategy multiworker`` there; this script only covers the one-machine case.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    """The ``TF_CONFIG`` of worker `index` in a cluster of local workers on `ports`."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def worker_env(ports: list[int], index: int, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CONFIG"] = tf_config(ports, index)
    # N workers on one machine: each gets its share of the cores instead of all of them.
    env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    return env


def _relay(stream, prefix: str) -> None:
    for line in iter(stream.readline, ""):
        sys.stdout.write(f"{prefix}{line}")
        sys.stdout.flush()
    stream.close()


def launch(workers: int, train_args: list[str], script: Path, threads: int, grace: float = 10.0) -> int:
    """Run `script` in `workers` processes with TF_CONFIG; returns the first non-zero exit code or 0."""
    if "--strategy" not in train_args and not any(a.startswith("--strategy=") for a in train_args):
        train_args = ["--strategy", "multiworker", *train_args]
    ports = free_ports(workers)
    processes, relays = [], []
    for index in range(workers):
        process = subprocess.Popen(
            [sys.executable, str(script), *train_args], env=worker_env(ports, index, threads),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=os.getcwd(),
        )
        relay = threading.Thread(target=_relay, args=(process.stdout, f"[worker {index}] "), daemon=True)
        relay.start()
        processes.append(process)
        relays.append(relay)
    code = 0
    try:
        while any(p.poll() is None for p in processes):
            failed = [p.returncode for p in processes if p.returncode not in (None, 0)]
            if failed:
                code = failed[0]
                break
            time.sleep(0.2)
        else:
            code = next((p.returncode for p in processes if p.returncode), 0)
    except KeyboardInterrupt:
        code = 130
    # A failed worker leaves the others waiting on collectives forever: stop them.
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.time() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for relay in relays:
        relay.join(timeout=5)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, train_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(prog="launch_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", "-n", type=int, default=2, help="number of worker processes (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=0,
                        help="TensorFlow threads per worker (default: CPU cores / workers, at least 1)")
    parser.add_argument("--script", default=str(ROOT / "tools" / "train.py"), help="the program each worker runs")
    args, extra = parser.parse_known_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    threads = args.threads_per_worker or max(1, (os.cpu_count() or 1) // args.workers)
    return launch(args.workers, extra + train_args, Path(args.script), threads)


if __name__ == "__main__":
    sys.exit(main())
