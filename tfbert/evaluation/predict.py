"""Run a model over a tokenized split and get logits back in the split's original order."""
from __future__ import annotations

import numpy as np

from tfbert.data.encoding import EncodedSplit, select_rows
from tfbert.data.pipeline import make_dataset


def predict_logits(model, split: EncodedSplit, batch_size: int, pad_token_id: int = 0) -> np.ndarray:
    """Logits [num_examples, num_labels].

    Rows are sorted by length so each batch is padded only to its longest neighbour, then the
    predictions are put back in the original order.
    """
    order = np.argsort(split.lengths, kind="stable")
    unlabelled = EncodedSplit(features=select_rows(split, order).features, labels=None)
    dataset = make_dataset(unlabelled, batch_size, padding="dynamic", pad_token_id=pad_token_id)
    logits = np.asarray(model.predict(dataset, verbose=0), dtype=np.float32)
    out = np.empty_like(logits)
    out[order] = logits
    return out
