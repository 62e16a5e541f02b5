"""`tools/export.py --model RUN/model --output DIR`: raw-string SavedModel from a fine-tuned model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-export", description="Export a SavedModel that serves raw text.")
    parser.add_argument("--model", required=True, help="a model directory written by training (RUN/model)")
    parser.add_argument("--output", required=True, help="SavedModel directory to write")
    args = parser.parse_args(argv)
    common.quiet_libraries()

    from tfbert.modeling.saving import load_pretrained
    from tfbert.tasks import get_task

    loaded = load_pretrained(args.model)
    # The task knows its serving module (classification, NER entities, QA spans).
    path = get_task(loaded.config.task.type).export(loaded.model, loaded.tokenizer, loaded.label_names,
                                                    Path(args.output), loaded.config)
    print(f"SavedModel: {path}")
    print(f"inspect: saved_model_cli show --dir {path} --all")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
