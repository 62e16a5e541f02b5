"""`tools/train.py --config X.yaml [--set key=value ...] [--strategy {default,mirrored,multiworker,tpu,ipu,auto}]`."""
from __future__ import annotations

import argparse
import sys

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    from tfbert.config import STRATEGIES

    parser = argparse.ArgumentParser(prog="tfbert-train", description="Fine-tune a BERT-family model.")
    common.add_config_args(parser)
    parser.add_argument("--strategy", default=None, choices=STRATEGIES,
                        help="tf.distribute strategy; overrides distribution.strategy (default there: one device). "
                             "multiworker reads TF_CONFIG (tools/launch_local.py sets it for N local workers)")
    args = parser.parse_args(argv)
    from tfbert.config import load_config

    config = load_config(args.config, args.overrides)  # a config error stops here, before TensorFlow loads
    from tfbert.run.start import plan_start

    plan_start(config, resolved=False)  # and so does a refused output directory (a finished run, another config)
    common.quiet_libraries()
    from tfbert.run.trainer import train

    train(config, args.strategy)
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
