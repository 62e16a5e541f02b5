"""Group per-word tags into entities (IOB1, IOB2 and BIOES), in Python.

The SavedModel does the same grouping in the graph (`tfbert.tasks.token_classification.serving`); this module is
the reference the tests compare it with, and the Python-side prediction path.
"""
from __future__ import annotations

from dataclasses import dataclass

PREFIXES = "OBIES"


@dataclass(frozen=True)
class Entity:
    """A typed span of the original text: ``text == original[start:end]`` (code points)."""

    type: str
    start: int
    end: int
    text: str
    score: float


def split_tag(tag: str) -> tuple[str, str]:
    """``B-person`` -> (``B``, ``person``); ``O`` -> (``O``, ``""``)."""
    if tag == "O" or len(tag) < 3 or tag[1] != "-":
        return "O", ""
    return tag[0], tag[2:]


def starts_entity(prefix: str, entity_type: str, prev_prefix: str, prev_type: str) -> bool:
    """Whether a non-O word opens a new entity (the rule shared with the graph)."""
    return (prefix in ("B", "S") or prev_prefix in ("O", "E", "S") or prev_type != entity_type)


def group_entities(text: str, word_tags: list[str], word_spans: list[tuple[int, int]],
                   word_scores: list[float]) -> list[Entity]:
    """Entities from word tags, their character spans in `text` and their scores (mean over words)."""
    entities: list[Entity] = []
    current: list[int] = []
    prev_prefix, prev_type = "O", ""

    def close() -> None:
        if current:
            start, end = word_spans[current[0]][0], word_spans[current[-1]][1]
            score = sum(word_scores[i] for i in current) / len(current)
            entities.append(Entity(split_tag(word_tags[current[0]])[1], start, end, text[start:end], score))
            current.clear()

    for index, tag in enumerate(word_tags):
        prefix, entity_type = split_tag(tag)
        if prefix == "O":
            close()
        elif starts_entity(prefix, entity_type, prev_prefix, prev_type):
            close()
            current.append(index)
        else:
            current.append(index)
        prev_prefix, prev_type = prefix, entity_type
    close()
    return entities
