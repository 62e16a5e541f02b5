"""`tools/export.py --model RUN/model --output DIR [--format saved_model|transformers|onnx|litert]`.

``saved_model`` (default): the raw-string SavedModel of the model's task. ``transformers``: the
model as a transformers directory (what training writes); it reads either model-directory format,
so it also migrates a directory written before format 2 (``--output`` may be the same directory).
``onnx`` / ``litert``: ``DIR/model.onnx`` / ``DIR/model.tflite`` (token ids in, logits out) with the
tokenizer files beside it (`tfbert.deploy`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfbert.cli import common
from tfbert.rundir import RunDir


def _run_card(loaded, output: Path) -> str:
    """The model card from the run the model came from (its evaluation and history, when present)."""
    from tfbert.model_card import render_model_card
    from tfbert.modeling.saving import head_note

    run = RunDir(Path(loaded.directory).resolve().parent)
    evaluation = run.read_evaluation()
    if evaluation is not None and "metrics" not in evaluation:
        evaluation = None
    history = run.read_metrics()
    config = loaded.config
    note = None
    from tfbert.tasks import get_task

    if not get_task(config.task.type).has_hf_head(config):
        note = head_note(config)
    name = run.path.name if output.resolve() == run.model_dir else output.name
    return render_model_card(config, None, history, evaluation, loaded.label_names, model_name=name,
                             evaluated_on=(evaluation or {}).get("split", "test"), head_note=note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-export",
                                     description="Export a fine-tuned model: a raw-text SavedModel, a transformers directory, "
                                                 "or ONNX / LiteRT models for CPU runtimes.")
    parser.add_argument("--model", required=True, help="a model directory written by training (RUN/model), either format")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--format", choices=("saved_model", "transformers", "onnx", "litert"), default="saved_model",
                        help="saved_model: serving graph that takes raw strings (default); transformers: a "
                             "directory TFAutoModelFor*.from_pretrained and pipeline() load (migrates old ones); "
                             "onnx: model.onnx for ONNX Runtime; litert: model.tflite for LiteRT (both: token ids "
                             "in, logits out, tokenizer files beside them)")
    parser.add_argument("--optimize", action="store_true",
                        help="onnx only: fuse each attention block into ONNX Runtime's com.microsoft.Attention "
                             "(faster there; the file then needs ONNX Runtime, as optimum's --optimize)")
    common.add_verbose_arg(parser)
    args = parser.parse_args(argv)
    if args.optimize and args.format != "onnx":
        parser.error(f"--optimize applies to --format onnx only, not {args.format}")
    common.quiet_libraries(args.verbose)

    from tfbert.modeling.saving import load_pretrained, save_pretrained
    from tfbert.tasks import get_task

    loaded = load_pretrained(args.model)
    output = Path(args.output)
    if args.format == "transformers":
        card = _run_card(loaded, output)
        path = save_pretrained(output, loaded.model, loaded.tokenizer, loaded.config, loaded.label_names, card=card)
        print(f"transformers directory: {path}")
        return 0
    if args.format in ("onnx", "litert"):
        from tfbert.deploy.litert import export_litert
        from tfbert.deploy.onnx import export_onnx

        if args.format == "onnx":
            path = export_onnx(loaded.model, loaded.tokenizer, loaded.config, loaded.label_names, output,
                               optimize=args.optimize)
        else:
            path = export_litert(loaded.model, loaded.tokenizer, loaded.config, loaded.label_names, output)
        print(f"{'ONNX' if args.format == 'onnx' else 'LiteRT'} model: {path}")
        print(f"run: tools/predict.py --model {path.parent} \"some text\"")
        return 0
    # The task knows its serving module (classification, NER entities, QA spans).
    path = get_task(loaded.config.task.type).export(loaded.model, loaded.tokenizer, loaded.label_names,
                                                    output, loaded.config)
    print(f"SavedModel: {path}")
    print(f"inspect: saved_model_cli show --dir {path} --all")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
