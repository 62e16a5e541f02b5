"""`tools/predict.py --saved-model DIR "some text" ...` or `--file texts.txt`: classify raw text."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfbert-predict", description="Classify raw text with an exported SavedModel.")
    parser.add_argument("--saved-model", required=True, help="directory written by training or tools/export.py")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--file", help="a UTF-8 file with one text per line")
    parser.add_argument("--pair", action="append", default=[], help="second text for pair tasks (one per text)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from tfbert.errors import DataError, ModelError

    texts = list(args.texts) + (read_lines(args.file) if args.file else [])
    if not texts:
        raise DataError("nothing to classify: give texts or --file")
    if not Path(args.saved_model, "saved_model.pb").is_file():
        raise ModelError(f"{args.saved_model}: not a SavedModel directory (no saved_model.pb)")

    import tensorflow as tf

    from tfbert.serving.export import SIGNATURE_TEXT, load_saved_model

    serve = load_saved_model(args.saved_model).signatures[SIGNATURE_TEXT]
    takes_pairs = "text_pair" in serve.structured_input_signature[1]
    if takes_pairs and len(args.pair) != len(texts):
        raise DataError(f"this model classifies text pairs: give one --pair per text ({len(texts)} texts, {len(args.pair)} pairs)")
    for start in range(0, len(texts), args.batch_size):
        batch = texts[start:start + args.batch_size]
        inputs = {"text": tf.constant(batch)}
        if takes_pairs:
            inputs["text_pair"] = tf.constant(args.pair[start:start + args.batch_size])
        out = serve(**inputs)
        labels = [b.decode("utf-8") for b in out["label"].numpy()]
        probs = out["probabilities"].numpy()
        for text, label, p in zip(batch, labels, probs):
            if args.json:
                print(json.dumps({"text": text, "label": label, "score": float(p.max()),
                                  "probabilities": [float(x) for x in p]}, ensure_ascii=False))
            else:
                print(f"{label}\t{p.max():.4f}\t{text}")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
