"""`tools/make_tfrecords.py --config X.yaml --output DIR|gs://bucket/dir [--splits train,validation] [--shards N]`.

Tokenizes the configured data once, exactly as training would (same splits, same tokenizer), and
writes sharded TFRecords that ``data.tfrecords`` points a run at (e.g. on a TPU VM).
"""
from __future__ import annotations

import argparse
import sys

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-make-tfrecords",
                                     description="Write already-tokenized, sharded TFRecords of a config's data.")
    common.add_config_args(parser)
    parser.add_argument("--output", required=True, help="directory or gs:// prefix to write")
    parser.add_argument("--splits", default="train",
                        help="comma-separated splits to write (default: train; validation/test for tasks "
                             "whose evaluation needs nothing but the tokens, such as classification)")
    parser.add_argument("--shards", type=int, default=4, help="files per split (default 4)")
    parser.add_argument("--overwrite", action="store_true", help="write into a directory that holds files")
    args = parser.parse_args(argv)
    from tfbert.config import load_config

    config = load_config(args.config, args.overrides)  # a config error stops here, before TensorFlow loads
    common.quiet_libraries()
    from tfbert.data.tfrecords import SPLITS, write_tfrecords
    from tfbert.errors import ConfigError
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    task = get_task(config.task.type)
    wanted = [s.strip() for s in args.splits.split(",") if s.strip()]
    for split in wanted:
        if split not in SPLITS:
            raise ConfigError(f"--splits: {split!r} is not a split; expected some of {', '.join(SPLITS)}")
        if split != "train" and not task.evaluates_from_records:
            raise ConfigError(f"--splits: {split} records are for tasks evaluated per example; {config.task.type} "
                              "evaluation needs the original file (keep data.validation_file/test_file)")
    if config.data.tfrecords:
        raise ConfigError("config key 'data.tfrecords': the source must be data files, not records")
    tokenizer = load_tokenizer(config.model.name_or_path)
    data = task.load_data(config, tokenizer, seed=config.training.seed)
    missing = [s for s in wanted if s not in data.splits]
    if missing:
        raise ConfigError(f"--splits: the config yields no {', '.join(missing)} split (it has {', '.join(data.splits)})")
    metadata = write_tfrecords(
        args.output, {s: data.splits[s] for s in wanted}, data.label_names, task_type=config.task.type,
        max_seq_length=config.data.max_seq_length, tokenizer=tokenizer, source=config.model.name_or_path,
        num_shards=args.shards, overwrite=args.overwrite, label_dtype=task.record_label_dtype,
    )
    for split, info in metadata["splits"].items():
        print(f"{split}: {info['num_examples']} examples in {len(info['files'])} file(s)")
    print(f"wrote {args.output} (set data.tfrecords={args.output})")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
