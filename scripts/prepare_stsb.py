#!/usr/bin/env python3
"""Split the public STS-B training pairs into train, dev and held-out test pairs that share no sentence.

    python scripts/prepare_stsb.py [--input ../shared/data/stsb/train.tsv] [--output data/stsb]
                                   [--test 0.15] [--dev 0.10] [--seed 0]

GLUE's STS-B pairs reuse sentences: 411 of the 7,910 distinct sentences of the 4,249 training pairs
occur in several pairs ("A man is playing a guitar." in 35), so a random split of pairs puts the
same sentence on both sides and a held-out score reads high. This script joins pairs that share a
sentence (compared lower-cased, whitespace collapsed) into groups (the connected components of the
sentence graph: 3,703 groups, the largest 102 pairs) and assigns whole groups: `--test` of the pairs
to ``test.tsv`` (held out: score a finished recipe on it, never choose one by it), then `--dev` of
the pairs to ``dev.tsv`` (carved from the training part, to choose the recipe and its epoch), the
rest to ``train.tsv``. No sentence occurs in two files. The files keep the input's header and its
rows unchanged (``index genre filename year old_index source1 source2 sentence1 sentence2 score``,
raw TSV); the output is a pure function of the input, the fractions and ``--seed``.

``train_both_orders.tsv`` holds each training pair twice, as it is and with ``sentence1`` and
``sentence2`` exchanged (similarity is symmetric, but a cross-encoder reading one concatenated
pair is not; sentence-transformers trains its STS-B cross-encoders on both orders).
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]


def read_pairs(path: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """(header line, [(raw line, sentence1, sentence2)]); exits with one line naming a bad row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != COLUMNS:
        sys.exit(f"error: {path}: expected the GLUE STS-B header {' '.join(COLUMNS)!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            sys.exit(f"error: {path}, line {number}: {len(fields)} tab-separated fields, expected {len(COLUMNS)}")
        try:
            score = float(fields[-1])
        except ValueError:
            score = math.nan
        if not 0.0 <= score <= 5.0:
            sys.exit(f"error: {path}, line {number}: score {fields[-1]!r} is not a number from 0 to 5")
        rows.append((line, fields[7], fields[8]))
    return lines[0], rows


def sentence_key(sentence: str) -> str:
    """What counts as the same sentence: case and runs of whitespace ignored."""
    return " ".join(sentence.lower().split())


def groups_of(rows: list[tuple[str, str, str]]) -> list[list[int]]:
    """Row indices grouped so that every pair sharing a sentence is in one group (in file order)."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving
            key = parent[key]
        return key

    for _, first, second in rows:
        a, b = root(sentence_key(first)), root(sentence_key(second))
        if a != b:
            parent[a] = b
    groups: dict[str, list[int]] = {}
    for i, (_, first, _) in enumerate(rows):
        groups.setdefault(root(sentence_key(first)), []).append(i)
    return list(groups.values())


def split(rows: list[tuple[str, str, str]], test: float, dev: float, seed: int) -> dict[str, list[int]]:
    """``{"train", "dev", "test"}`` -> sorted row indices; whole groups, shuffled with `seed`, fill test then dev."""
    order = groups_of(rows)
    random.Random(seed).shuffle(order)
    parts: dict[str, list[int]] = {"test": [], "dev": [], "train": []}
    targets = {"test": round(test * len(rows)), "dev": round(dev * len(rows))}
    for group in order:
        name = next((n for n in ("test", "dev") if len(parts[n]) < targets[n]), "train")
        parts[name].extend(group)
    return {name: sorted(index) for name, index in parts.items()}


def swapped(line: str) -> str:
    """The row with its two sentences exchanged (every other field as it is)."""
    fields = line.split("\t")
    fields[7], fields[8] = fields[8], fields[7]
    return "\t".join(fields)


def write(path: Path, header: str, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT.parent / "shared" / "data" / "stsb" / "train.tsv")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "stsb")
    parser.add_argument("--test", type=float, default=0.15, help="share of the pairs held out as test.tsv")
    parser.add_argument("--dev", type=float, default=0.10, help="share of the pairs carved out as dev.tsv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.input.is_file():
        sys.exit(f"error: {args.input}: no such file (the public STS-B training pairs, see ../shared/data/README.md)")
    if not (0 < args.test < 1 and 0 < args.dev < 1 and args.test + args.dev < 1):
        sys.exit("error: --test and --dev must be in (0, 1) and leave pairs to train on")
    header, rows = read_pairs(args.input)
    parts = split(rows, args.test, args.dev, args.seed)
    sentences = {name: {sentence_key(s) for i in index for s in rows[i][1:]} for name, index in parts.items()}
    shared = (sentences["train"] & sentences["dev"]) | (sentences["train"] & sentences["test"]) | (
        sentences["dev"] & sentences["test"])
    assert not shared, f"a sentence on two sides: {sorted(shared)[:3]}"
    args.output.mkdir(parents=True, exist_ok=True)
    for name, index in parts.items():
        write(args.output / f"{name}.tsv", header, [rows[i][0] for i in index])
    write(args.output / "train_both_orders.tsv", header,
          [line for i in parts["train"] for line in (rows[i][0], swapped(rows[i][0]))])
    print(f"{len(rows)} pairs in {len(groups_of(rows))} groups of pairs sharing sentences -> "
          + ", ".join(f"{name} {len(index)} pairs ({len(sentences[name])} sentences)" for name, index in parts.items())
          + "; no sentence on two sides")
    print(f"wrote {', '.join(str(args.output / f'{name}.tsv') for name in [*parts, 'train_both_orders'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
