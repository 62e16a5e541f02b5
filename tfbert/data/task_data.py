"""The data of one task: tokenized splits, label names and what evaluation needs besides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfbert.data.encoding import EncodedSplit


@dataclass
class TaskData:
    """Tokenized splits (model inputs + labels), label names and whatever evaluation needs.

    `extras[split]` holds task-specific data for a split, e.g. raw examples and window offsets
    for QA or word-level tags for NER.
    """

    label_names: list[str]
    splits: dict[str, EncodedSplit] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
