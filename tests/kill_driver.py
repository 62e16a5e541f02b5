"""Run `tools/train.py` in this process and SIGKILL it at a chosen point (for the resume tests).

    KILL_AT=step:5 [KILL_WORKER=1] python tests/kill_driver.py TRAIN_ARGS...

The environment variable KILL_AT is ``step:N`` (at the end of the N-th fit step, i.e. micro-batch), ``term:N`` (a real
SIGTERM at the same point, which the run must answer with a backup and exit 143), ``write:N`` (inside the
N-th backup write, after the TensorFlow checkpoint is written and before its state file) or
unset (run normally). With KILL_WORKER only that multiworker worker (TF_CONFIG's task index) is
killed; `tools/launch_local.py --script tests/kill_driver.py` runs it as each worker. The kill is a real ``SIGKILL`` of this process: no Python cleanup runs, as when a VM is
preempted or the OOM killer strikes.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    kill_at, argv = os.environ.get("KILL_AT", ""), sys.argv[1:]
    worker = os.environ.get("KILL_WORKER")
    if worker is not None and json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index") != int(worker):
        kill_at = ""
    if kill_at:
        _arm(kill_at)
    from tfbert.cli import common, train

    return common.run(train.main, argv)


def _arm(kill_at: str) -> None:
    """Patch tfbert's backup callback to kill this process at `kill_at` (imported only then: a run
    that is refused before training, e.g. a changed config, never loads TensorFlow)."""
    from tfbert.training import backup

    if kill_at.startswith(("step:", "term:")):
        target = int(kill_at.split(":")[1])
        sig = signal.SIGKILL if kill_at.startswith("step:") else signal.SIGTERM
        original = backup.RunBackup.on_train_batch_end

        def on_train_batch_end(self, batch, logs=None):
            if self.fit_steps_done + 1 == target:
                os.kill(os.getpid(), sig)  # delivered before this step's backup decision
            original(self, batch, logs)

        backup.RunBackup.on_train_batch_end = on_train_batch_end
    elif kill_at.startswith("write:"):
        target = int(kill_at.split(":")[1])
        calls = {"n": 0}
        original_write = backup.write_json

        def write_json(path, payload):
            if Path(path).name == backup.STATE_FILE:
                calls["n"] += 1
                if calls["n"] >= target:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original_write(path, payload)

        backup.write_json = write_json


if __name__ == "__main__":
    sys.exit(main())
