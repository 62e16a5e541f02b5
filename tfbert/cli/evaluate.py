"""`tools/evaluate.py --model RUN/model --file data.tsv`: metrics JSON for a fine-tuned model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-evaluate", description="Evaluate a fine-tuned model on labelled data.")
    parser.add_argument("--model", required=True, help="a model directory written by training (RUN/model)")
    parser.add_argument("--file", help="labelled data file (default: the run's test or validation data)")
    parser.add_argument("--output", help="where to write the JSON report (default: next to the run)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override data.* keys of the saved config, e.g. data.text_column=sentence")
    common.add_verbose_arg(parser)
    args = parser.parse_args(argv)
    common.quiet_libraries(args.verbose)

    from tfbert.config import apply_overrides, validate
    from tfbert.errors import DataError
    from tfbert.modeling.saving import load_pretrained, read_config
    from tfbert.tasks import get_task
    from tfbert.utils.files import write_json

    config = read_config(args.model)
    apply_overrides(config, args.overrides)
    validate(config)
    loaded = load_pretrained(args.model, num_labels=config.task.num_labels)
    task = get_task(config.task.type)
    data = task.load_data(config, loaded.tokenizer, seed=config.training.seed, label_names=loaded.label_names,
                          splits={"test": args.file} if args.file else None)
    split = next((s for s in ("test", "validation") if s in data.splits), None)
    if split is None:
        raise DataError("no evaluation data: pass --file or train with a validation/test split")
    report = task.evaluate(loaded.model, data, split, config, loaded.tokenizer)
    report["data"] = args.file or f"{split} split of {config.data.train_file_label()}"
    name = f"eval_{Path(args.file).stem}.json" if args.file else "eval_results.json"
    output = Path(args.output) if args.output else Path(args.model).resolve().parent / name
    write_json(output, report)
    print(task.summary(report))
    print(f"report: {output}")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
