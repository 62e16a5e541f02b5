#!/usr/bin/env python3
"""Average the weights of a run's last backups into a new model directory (checkpoint averaging).

    python scripts/average_checkpoints.py runs/sst2_minilm [--last 2] [--output runs/sst2_minilm/model_avg]

Late in a linear-decay schedule consecutive epochs sit near one another in weight space, and their
mean often generalises a little better than either (Izmailov et al. 2018, "Averaging weights leads
to wider optima"); whether it does for a recipe is measured, not assumed (docs/benchmarks.md). The
run must have written one backup per epoch (``training.save_steps: epoch`` and a
``training.save_total_limit`` of at least `--last`). The architecture, tokenizer and config come
from ``RUN/model``; the result is an ordinary model directory that ``tools/evaluate.py`` and
``tools/export.py`` take as they are.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run directory (RUN/model and RUN/checkpoints/step-N)")
    parser.add_argument("--last", type=int, default=2, help="how many of the newest backups to average")
    parser.add_argument("--output", type=Path, help="model directory to write (default: RUN/model_avgK)")
    args = parser.parse_args(argv)

    from tfbert.cli import common

    common.quiet_libraries(False)
    import numpy as np
    import tensorflow as tf

    from tfbert.errors import ConfigError
    from tfbert.modeling.saving import load_pretrained, save_pretrained
    from tfbert.rundir import RunDir
    from tfbert.training.backup import CHECKPOINT_PREFIX

    run = RunDir(args.run)
    backups = run.backups()
    if args.last < 1 or len(backups) < args.last:
        raise ConfigError(f"--last {args.last}: {args.run} holds {len(backups)} backup(s) "
                          "(train with training.save_steps: epoch and a save_total_limit of at least --last)")
    chosen = backups[-args.last:]
    loaded = load_pretrained(run.model_dir)
    total = None
    for backup in chosen:
        status = tf.train.Checkpoint(model=loaded.model).read(str(backup / CHECKPOINT_PREFIX))
        try:
            status.assert_existing_objects_matched()
        except AssertionError as exc:
            raise ConfigError(f"{backup}: does not fit {run.model_dir} ({str(exc).splitlines()[0]})") from None
        status.expect_partial()  # the optimizer's slots are not needed
        weights = [w.astype(np.float64) for w in loaded.model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    loaded.model.set_weights([(t / len(chosen)).astype(w.dtype)
                              for t, w in zip(total, loaded.model.get_weights())])
    output = args.output or args.run / f"model_avg{args.last}"
    save_pretrained(output, loaded.model, loaded.tokenizer, loaded.config, loaded.label_names)
    print(f"averaged {', '.join(b.name for b in chosen)} -> {output}")
    return 0


if __name__ == "__main__":
    from tfbert.cli import common

    sys.exit(common.run(main))
