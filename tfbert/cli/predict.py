"""`tools/predict.py --model DIR "some text" ...`: run an export on raw text.

``--model`` (alias ``--saved-model``) is a SavedModel directory, or an ONNX or LiteRT export
(``tools/export.py --format onnx|litert``: the directory or its model file), told apart by the
files it holds; for the latter the runtime computes the logits and the task's serving module
tokenizes and post-processes exactly as the SavedModel does (`tfbert.deploy.runtime`).

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
    from tfbert.errors import ModelError
    from tfbert.serving.base import saved_model_task
    from tfbert.tasks import get_task, task_types

    task_type = saved_model_task(directory)
    if task_type is not None:
        return get_task(task_type).serving_module_class()
    # Exported before the task type was recorded: each task's serving module knows its signature.
    inputs, outputs = set(signature.structured_input_signature[1]), set(signature.structured_outputs)
    for candidate in task_types():
        module = get_task(candidate).serving_module_class()
        if module.recognizes(inputs, outputs):
            return module
    raise ModelError(f"{directory}: no task's serving signature has inputs {sorted(inputs)} and outputs {sorted(outputs)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-predict", description="Run an export (SavedModel, ONNX, LiteRT) on raw text.")
    parser.add_argument("--model", "--saved-model", dest="model", required=True,
                        help="a SavedModel directory (training or tools/export.py), or an ONNX or LiteRT export "
                             "(tools/export.py --format onnx|litert: its directory, model.onnx or model.tflite)")
    parser.add_argument("texts", nargs="*", help="texts to classify or tag")
    parser.add_argument("--file", help="UTF-8 file: one text per line, or JSONL question/context pairs for QA")
    parser.add_argument("--pair", action="append", default=[], help="second text for pair tasks (one per text)")
    parser.add_argument("--question", action="append", default=[], help="QA: a question (one per --context)")
    parser.add_argument("--context", action="append", default=[], help="QA: the passage to answer from")
    parser.add_argument("--json", action="store_true", help="print one JSON object per input")
    parser.add_argument("--batch-size", type=int, default=64)
    common.add_verbose_arg(parser)
    args = parser.parse_args(argv)

    from tfbert.deploy.artefact import detect
    from tfbert.errors import ModelError

    runtime = detect(args.model)
    if runtime is None and not Path(args.model, "saved_model.pb").is_file():
        raise ModelError(f"{args.model}: neither a SavedModel directory (no saved_model.pb) nor an ONNX or "
                         "LiteRT export (no model.onnx or model.tflite)")

    common.quiet_tensorflow(args.verbose)
    import tensorflow as tf

    if runtime is not None:
        # ONNX Runtime or LiteRT computes the logits; tokenization and post-processing are the SavedModel's own.
        from tfbert.deploy.runtime import open_serving_module

        module = open_serving_module(args.model)
        names = [spec.name for spec in module.text_specs()]
        serve = lambda **texts: module.serve_text(*(texts[n] for n in names))  # noqa: E731
        inputs = module.cli_inputs(args, read_lines, set(names))
    else:
        from tfbert.serving.base import SIGNATURE_TEXT, load_saved_model

        serve = load_saved_model(args.model).signatures[SIGNATURE_TEXT]
        module = serving_class(args.model, serve)
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
