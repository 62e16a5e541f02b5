#!/usr/bin/env python3
"""Split the public SST-2 training file into training and held-out *sentences* with no shared text.

    python scripts/prepare_sst2.py [--input ../shared/data/sst2/train.tsv] [--output data/sst2] [--held-out 1000]

GLUE's SST-2 training file holds every phrase of the treebank's parse trees, so a whole sentence
and the phrases cut from it sit side by side: a random row split puts phrases of a held-out
sentence into training, and accuracy on such a split reads about 3 points higher than on unseen
sentences. This script holds out whole sentences (phrases no other phrase contains, at least
`--min-words` words) and drops from training every phrase contained in a held-out sentence, word
for word. It writes ``train.tsv`` and ``validation.tsv`` (``sentence<TAB>label`` with a header,
as the input) and prints what it kept; the output is a pure function of the input and ``--seed``.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_rows(path: Path) -> list[tuple[str, str]]:
    """(phrase, label) rows, phrases stripped, in file order; the first occurrence of a phrase wins."""
    rows, seen = [], set()
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != ["sentence", "label"]:
            sys.exit(f"error: {path}: expected the header 'sentence<TAB>label', got {header!r}")
        for number, row in enumerate(reader, start=2):
            if len(row) != 2 or row[1] not in ("0", "1"):
                sys.exit(f"error: {path}, line {number}: expected a phrase and a label 0 or 1")
            phrase = " ".join(row[0].split())
            if phrase and phrase not in seen:
                seen.add(phrase)
                rows.append((phrase, row[1]))
    return rows


def contained_phrases(sentence: str, phrases: set[str]) -> set[str]:
    """The phrases of `phrases` that occur in `sentence` as whole words (the sentence itself too)."""
    words = sentence.split()
    found = set()
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            piece = " ".join(words[i:j])
            if piece in phrases:
                found.add(piece)
    return found


def split(rows: list[tuple[str, str]], held_out: int, min_words: int, seed: int
          ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training rows, held-out sentence rows) with no held-out text inside any training row."""
    phrases = {p for p, _ in rows}
    inside_another: set[str] = set()
    for phrase, _ in rows:
        inside_another |= contained_phrases(phrase, phrases) - {phrase}
    sentences = [row for row in rows if row[0] not in inside_another and len(row[0].split()) >= min_words]
    if len(sentences) < held_out:
        sys.exit(f"error: only {len(sentences)} sentences of at least {min_words} words; ask for fewer")
    chosen = random.Random(seed).sample(sentences, held_out)
    leaked: set[str] = set()
    for sentence, _ in chosen:
        leaked |= contained_phrases(sentence, phrases)
    return [row for row in rows if row[0] not in leaked], chosen


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{phrase}\t{label}\n" for phrase, label in rows)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT.parent / "shared" / "data" / "sst2" / "train.tsv")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "sst2")
    parser.add_argument("--held-out", type=int, default=1000, help="sentences to hold out (GLUE's dev has 872)")
    parser.add_argument("--min-words", type=int, default=5, help="shortest held-out sentence, in words")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.input.is_file():
        sys.exit(f"error: {args.input}: no such file (the public SST-2 training file, see ../shared/data/README.md)")
    rows = read_rows(args.input)
    train, held = split(rows, args.held_out, args.min_words, args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    write(args.output / "train.tsv", train)
    write(args.output / "validation.tsv", held)
    print(f"{len(rows)} distinct phrases -> {len(train)} for training, {len(held)} held-out sentences "
          f"({len(rows) - len(train) - len(held)} phrases of held-out sentences dropped from training)")
    print(f"wrote {args.output / 'train.tsv'} and {args.output / 'validation.tsv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
