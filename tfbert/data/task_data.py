"""The data of one task: tokenized splits, label names and what evaluation needs besides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from tfbert.data.encoding import EncodedSplit, select_rows


@dataclass
class TaskData:
    """Tokenized splits (model inputs + labels), label names and whatever evaluation needs.

    `extras[split]` holds task-specific data for a split, e.g. raw examples and window offsets
    for QA or word-level tags for NER.
    """

    label_names: list[str]
    splits: dict[str, EncodedSplit] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def limit_train(self, max_samples: Optional[int], seed: int) -> None:
        """Keep `max_samples` training examples drawn with `seed` (``data.max_train_samples``).

        Sorted, so the subset keeps the file's order (the epoch shuffle is the stream's job).
        """
        train = self.splits["train"]
        if max_samples is None or max_samples >= len(train):
            return
        chosen = np.sort(np.random.default_rng(seed).choice(len(train), max_samples, replace=False))
        self.splits["train"] = select_rows(train, chosen)
