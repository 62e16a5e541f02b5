"""`tools/predict.py --saved-model DIR "some text" ...`: run an exported SavedModel on raw text.

The export records its task type (`tfbert.serving.base.SERVING_INFO`); that task's serving module
reads the arguments and prints each result:
- classification (``text`` [+ ``text_pair``] in, ``label``/``probabilities`` out): one line per text;
- NER (``text`` in, ``entity_*`` out): the entities of each text with character offsets;
- QA (``question`` + ``context`` in): the answer span of each question.
Texts come from the command line or ``--file`` (one per line; for QA a JSONL file of
``{"question": ..., "context": ...}`` objects).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tfbert.cli import common


def read_lines(path: str) -> list[str]:
    """One text per line (blank lines skipped); a clear error for missing or non-UTF-8 files."""
    from tfbert.data.readers import check_utf8
    from tfbert.errors import DataError

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    check_utf8(file)
    lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{file}: no text lines")
    return lines


def serving_class(directory: str, signature):
    """The export's serving module class: by the task type it recorded, else (older exports) by its signature."""
    from tfbert.serving.base import saved_model_task
    from tfbert.tasks import get_task

    task_type = saved_model_task(directory)
    if task_type is None:
        # Exported before the task type was recorded: the three tasks' signatures differ.
        task_type = ("question_answering" if "question" in signature.structured_input_signature[1]
                     else "token_classification" if "entity_type" in signature.structured_outputs
                     else "sequence_classification")
    return get_task(task_type).serving_module_class()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-predict", description="Run an exported SavedModel on raw text.")
    parser.add_argument("--saved-model", required=True, help="directory written by training or tools/export.py")
    parser.add_argument("texts", nargs="*", help="texts to classify or tag")
    parser.add_argument("--file", help="UTF-8 file: one text per line, or JSONL question/context pairs for QA")
    parser.add_argument("--pair", action="append", default=[], help="second text for pair tasks (one per text)")
    parser.add_argument("--question", action="append", default=[], help="QA: a question (one per --context)")
    parser.add_argument("--context", action="append", default=[], help="QA: the passage to answer from")
    parser.add_argument("--json", action="store_true", help="print one JSON object per input")
    parser.add_argument("--batch-size", type=int, default=64)
    common.add_verbose_arg(parser)
    args = parser.parse_args(argv)

    from tfbert.errors import ModelError

    if not Path(args.saved_model, "saved_model.pb").is_file():
        raise ModelError(f"{args.saved_model}: not a SavedModel directory (no saved_model.pb)")

    import tensorflow as tf

    from tfbert.serving.base import SIGNATURE_TEXT, load_saved_model

    serve = load_saved_model(args.saved_model).signatures[SIGNATURE_TEXT]
    module = serving_class(args.saved_model, serve)
    inputs = module.cli_inputs(args, read_lines, set(serve.structured_input_signature[1]))
    total = len(next(iter(inputs.values())))
    for start in range(0, total, args.batch_size):
        batch = {k: v[start:start + args.batch_size] for k, v in inputs.items()}
        out = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in batch.items()}).items()}
        for i in range(len(next(iter(batch.values())))):
            record, line = module.cli_record(batch, out, i)
            print(json.dumps(record, ensure_ascii=False) if args.json else line)
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
