"""`tools/search.py --config X.yaml --space space.yaml --trials N [--storage URL] [--study-name S] ...`."""
from __future__ import annotations

import argparse
import sys

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    from tfbert.config import STRATEGIES

    parser = argparse.ArgumentParser(
        prog="tfbert-search",
        description="Hyperparameter search with Optuna (TPE sampler, median pruning on the per-epoch validation "
                    "metric). Rerun the same command to continue a killed search; give several machines the same "
                    "--storage URL and --study-name to run trials of one study at once.")
    common.add_config_args(parser)
    parser.add_argument("--space", required=True,
                        help="search-space YAML: config key -> {type: float|int|categorical, low, high, log, step, "
                             "choices}")
    parser.add_argument("--trials", type=int, required=True,
                        help="trials in the study in all (finished, pruned, failed and running ones count)")
    parser.add_argument("--output-dir", default=None,
                        help="trial run directories, study.db, summary (default: training.output_dir + '-search')")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL, e.g. postgresql://user:pw@host/db (default: sqlite in --output-dir)")
    parser.add_argument("--study-name", default=None, help="study name in the storage (default: the output dir's name)")
    parser.add_argument("--startup-trials", type=int, default=5,
                        help="random trials before TPE, and finished trials before pruning starts (default 5)")
    parser.add_argument("--warmup-epochs", type=int, default=0,
                        help="epochs every trial runs before it can be pruned (default 0)")
    parser.add_argument("--seed", type=int, default=None,
                        help="sampler seed (default random; machines sharing a study need different seeds)")
    parser.add_argument("--strategy", default=None, choices=STRATEGIES, help="tf.distribute strategy of each trial")
    args = parser.parse_args(argv)
    if not args.config:
        parser.error("--config is required")
    common.quiet_tensorflow()
    from tfbert.search import SearchSettings, run_search

    settings = SearchSettings(
        config=args.config, space=args.space, trials=args.trials, overrides=args.overrides,
        output_dir=args.output_dir, storage=args.storage, study_name=args.study_name, strategy=args.strategy,
        startup_trials=args.startup_trials, warmup_epochs=args.warmup_epochs, seed=args.seed)
    run_search(settings, log=lambda line: print(line, flush=True))
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
