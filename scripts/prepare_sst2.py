#!/usr/bin/env python3
"""Split the public SST-2 training file into training and held-out sentences that share no phrase tree.

    python scripts/prepare_sst2.py [--input ../shared/data/sst2/train.tsv] [--output data/sst2]
                                   [--held-out 1000] [--link-words 3] [--random-held-out 0] [--seed 0]

GLUE's SST-2 training file holds every phrase of the treebank's parse trees: each sentence (a
phrase no other phrase contains, the root of its tree) sits beside the phrases cut from it, and
sentences of one review or about one film share phrases of their own ("the one that i want"). A
random row split puts phrases of a held-out sentence into training and reads about 3 points too
high. This script holds out whole *groups* of sentences: two sentences are in one group when their
trees share a phrase of at least ``--link-words`` words (3: 6,210 groups of the 6,885 sentences,
the largest 75), so no held-out sentence shares a phrase of that length with a training sentence.
Groups are drawn with the seed until ``--held-out`` sentences are held out (a group that would
overshoot is passed over whole; SST-2 has thousands of one-sentence groups, so the count comes out
exact), and every phrase contained in a held-out sentence, word for word, is dropped from training
(its whole tree, including the short phrases it shares with other trees).

``--random-held-out N`` also holds out N sentences drawn one by one, as earlier versions of this
script did (their group-mates stay in training), into ``validation_random.tsv``: one model then
scores both held-out sets, and the difference is what grouping changes (docs/benchmarks.md).

Writes ``train.tsv`` and ``validation.tsv`` (``sentence<TAB>label`` with a header, as the input;
and ``validation_random.tsv``) and prints what it kept; the output is a pure function of the input
and the options.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

Row = tuple[str, str]


def read_rows(path: Path) -> list[Row]:
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


def sentence_trees(rows: list[Row]) -> dict[str, set[str]]:
    """Each sentence (a phrase inside no other phrase) -> the phrases of its tree, in file order."""
    phrases = {p for p, _ in rows}
    trees = {phrase: contained_phrases(phrase, phrases) for phrase, _ in rows}
    inside_another = set().union(*(tree - {phrase} for phrase, tree in trees.items()))
    return {phrase: trees[phrase] for phrase, _ in rows if phrase not in inside_another}


def sentence_groups(trees: dict[str, set[str]], link_words: int) -> list[list[str]]:
    """Sentences joined (transitively) when their trees share a phrase of at least `link_words` words."""
    sentences = list(trees)
    parent = list(range(len(sentences)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owners: dict[str, list[int]] = defaultdict(list)
    for i, sentence in enumerate(sentences):
        for phrase in trees[sentence]:
            if len(phrase.split()) >= link_words:
                owners[phrase].append(i)
    for members in owners.values():
        for j in members[1:]:
            parent[find(j)] = find(members[0])
    groups: dict[int, list[str]] = defaultdict(list)
    for i, sentence in enumerate(sentences):
        groups[find(i)].append(sentence)
    return list(groups.values())  # in order of each group's first sentence


def split(rows: list[Row], held_out: int, link_words: int, random_held_out: int, seed: int
          ) -> tuple[list[Row], list[Row], list[Row]]:
    """(training rows, held-out group sentences, sentences held out one by one): no held-out
    sentence's phrases are in training, and no held-out group shares a long phrase with training."""
    labels = dict(rows)
    trees = sentence_trees(rows)
    groups = sentence_groups(trees, link_words)
    if held_out + random_held_out > len(trees):
        sys.exit(f"error: only {len(trees)} sentences; ask for fewer than {held_out + random_held_out}")
    rng = random.Random(seed)
    grouped: list[str] = []
    for group in rng.sample(groups, len(groups)):
        if len(grouped) + len(group) <= held_out:  # a group that would overshoot is passed over, whole
            grouped.extend(group)
    taken = set(grouped)
    singles = rng.sample([s for s in trees if s not in taken], random_held_out)
    dropped = set().union(*(trees[s] for s in grouped + singles))
    train = [row for row in rows if row[0] not in dropped]
    return train, [(s, labels[s]) for s in grouped], [(s, labels[s]) for s in singles]


def write(path: Path, rows: list[Row]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write("sentence\tlabel\n")
        f.writelines(f"{phrase}\t{label}\n" for phrase, label in rows)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT.parent / "shared" / "data" / "sst2" / "train.tsv")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "sst2")
    parser.add_argument("--held-out", type=int, default=1000,
                        help="sentences to hold out, in whole groups (GLUE's dev has 872)")
    parser.add_argument("--link-words", type=int, default=3,
                        help="sentences sharing a phrase of this many words go to the same side")
    parser.add_argument("--random-held-out", type=int, default=0,
                        help="also hold out this many sentences one by one, into validation_random.tsv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.input.is_file():
        sys.exit(f"error: {args.input}: no such file (the public SST-2 training file, see ../shared/data/README.md)")
    if args.held_out < 1 or args.link_words < 1 or args.random_held_out < 0:
        sys.exit("error: --held-out and --link-words must be at least 1, --random-held-out at least 0")
    rows = read_rows(args.input)
    train, held, singles = split(rows, args.held_out, args.link_words, args.random_held_out, args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    write(args.output / "train.tsv", train)
    write(args.output / "validation.tsv", held)
    written = [args.output / "train.tsv", args.output / "validation.tsv"]
    if singles:
        write(args.output / "validation_random.tsv", singles)
        written.append(args.output / "validation_random.tsv")
    dropped = len(rows) - len(train) - len(held) - len(singles)
    print(f"{len(rows)} distinct phrases -> {len(train)} for training, {len(held)} held-out sentences in whole "
          f"groups{f', {len(singles)} held out one by one' if singles else ''} ({dropped} phrases of held-out "
          "sentences dropped from training)")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
