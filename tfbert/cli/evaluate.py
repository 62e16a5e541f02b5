"""`tools/evaluate.py --model RUN/model --file data.tsv`: metrics JSON for a fine-tuned model."""
from __future__ import annotations

import argparse
import dataclasses
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
    args = parser.parse_args(argv)
    common.quiet_libraries()

    from tfbert.config import apply_overrides, validate
    from tfbert.data.classification import load_classification_data
    from tfbert.evaluation.classification import classification_metrics, softmax_cross_entropy
    from tfbert.evaluation.predict import predict_logits
    from tfbert.modeling.saving import load_pretrained, read_config
    from tfbert.utils.files import write_json

    config = read_config(args.model)
    apply_overrides(config, args.overrides)
    validate(config)
    loaded = load_pretrained(args.model, num_labels=config.task.num_labels)
    data_config = dataclasses.replace(config.data)
    if args.file:
        data_config = dataclasses.replace(data_config, train_file=None, validation_file=None, test_file=args.file,
                                          validation_split=0.0, test_split=0.0)
    data = load_classification_data(data_config, loaded.tokenizer, seed=config.training.seed,
                                    label_names=loaded.label_names)
    split = next((s for s in ("test", "validation") if s in data.splits), None)
    if split is None:
        from tfbert.errors import DataError

        raise DataError("no evaluation data: pass --file or train with a validation/test split")
    encoded = data.splits[split]
    logits = predict_logits(loaded.model, encoded, config.training.per_device_eval_batch_size,
                            loaded.tokenizer.pad_token_id)
    report = classification_metrics(encoded.labels, logits.argmax(axis=1), loaded.label_names)
    report["loss"] = softmax_cross_entropy(logits, encoded.labels)
    report["data"] = args.file or f"{split} split of {config.data.train_file}"
    name = f"eval_{Path(args.file).stem}.json" if args.file else "eval_results.json"
    output = Path(args.output) if args.output else Path(args.model).resolve().parent / name
    write_json(output, report)
    print(f"accuracy {report['accuracy']:.4f}  macro F1 {report['macro_f1']:.4f}  "
          + "  ".join(f"{n} F1 {s['f1']:.4f}" for n, s in report["per_class"].items()))
    print(f"report: {output}")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
