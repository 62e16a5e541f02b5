"""`tools/export.py --model RUN/model --output DIR`: raw-string SavedModel from a fine-tuned model."""
from __future__ import annotations

import argparse
import sys

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-export", description="Export a SavedModel that serves raw text.")
    parser.add_argument("--model", required=True, help="a model directory written by training (RUN/model)")
    parser.add_argument("--output", required=True, help="SavedModel directory to write")
    args = parser.parse_args(argv)
    common.quiet_libraries()

    from tfbert.modeling.saving import load_pretrained
    from tfbert.serving.export import export_saved_model

    loaded = load_pretrained(args.model)
    path = export_saved_model(loaded.model, loaded.tokenizer, loaded.label_names, args.output,
                              max_seq_length=loaded.config.data.max_seq_length,
                              text_pairs=bool(loaded.config.data.text_pair_column))
    print(f"SavedModel: {path}")
    print(f"inspect: saved_model_cli show --dir {path} --all")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
