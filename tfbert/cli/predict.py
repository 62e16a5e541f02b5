"""`tools/predict.py --saved-model DIR "some text" ...`: run an exported SavedModel on raw text.

The SavedModel's signature tells the task:
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


def read_qa_pairs(path: str) -> tuple[list[str], list[str]]:
    """(questions, contexts) from a JSONL file, naming the line of a bad record."""
    from tfbert.errors import DataError

    questions, contexts = [], []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            record = json.loads(line)
            questions.append(str(record["question"]))
            contexts.append(str(record["context"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path}, line {number}: expected a JSON object with 'question' and 'context'") from None
    return questions, contexts


def _decode(values) -> list:
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


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

    from tfbert.errors import DataError, ModelError

    if not Path(args.saved_model, "saved_model.pb").is_file():
        raise ModelError(f"{args.saved_model}: not a SavedModel directory (no saved_model.pb)")

    import tensorflow as tf

    from tfbert.serving.export import SIGNATURE_TEXT, load_saved_model

    serve = load_saved_model(args.saved_model).signatures[SIGNATURE_TEXT]
    input_names = set(serve.structured_input_signature[1])
    if "question" in input_names:
        questions, contexts = (read_qa_pairs(args.file) if args.file else (list(args.question), list(args.context)))
        if not questions or len(questions) != len(contexts):
            raise DataError(f"this model answers questions: give one --context per --question "
                            f"({len(questions)} questions, {len(contexts)} contexts) or a JSONL --file")
        inputs = {"question": questions, "context": contexts}
    else:
        texts = list(args.texts) + (read_lines(args.file) if args.file else [])
        if not texts:
            raise DataError("nothing to run: give texts or --file")
        inputs = {"text": texts}
        if "text_pair" in input_names:
            if len(args.pair) != len(texts):
                raise DataError(f"this model classifies text pairs: give one --pair per text "
                                f"({len(texts)} texts, {len(args.pair)} pairs)")
            inputs["text_pair"] = list(args.pair)

    total = len(next(iter(inputs.values())))
    for start in range(0, total, args.batch_size):
        batch = {k: v[start:start + args.batch_size] for k, v in inputs.items()}
        out = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in batch.items()}).items()}
        for i in range(len(next(iter(batch.values())))):
            record = {k: v[i] for k, v in batch.items()}
            if "answer" in out:
                record.update(answer=out["answer"][i].decode("utf-8"), start=int(out["answer_start"][i]),
                              end=int(out["answer_end"][i]), score=float(out["score"][i]))
                line = f"{record['answer']!r}\t[{record['start']}:{record['end']}]\t{record['score']:.3f}\t{record['question']}"
            elif "entity_type" in out:
                n = int(out["num_entities"][i])
                record["entities"] = [
                    {"type": t, "start": int(s), "end": int(e), "text": x, "score": float(p)}
                    for t, s, e, x, p in zip(_decode(out["entity_type"][i][:n]), out["entity_start"][i][:n],
                                             out["entity_end"][i][:n], _decode(out["entity_text"][i][:n]),
                                             out["entity_score"][i][:n])
                ]
                shown = "  ".join(f"{e['type']}[{e['start']}:{e['end']}]={e['text']!r}" for e in record["entities"])
                line = f"{record['text']}\t{shown or '(no entities)'}"
            else:
                probs = out["probabilities"][i]
                record.update(label=out["label"][i].decode("utf-8"), score=float(probs.max()),
                              probabilities=[float(p) for p in probs])
                line = f"{record['label']}\t{record['score']:.4f}\t{record['text']}"
            print(json.dumps(record, ensure_ascii=False) if args.json else line)
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
