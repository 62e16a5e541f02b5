"""Run a model over a tokenized split and get logits back in the split's original order."""
from __future__ import annotations

import numpy as np

from tfbert.data.encoding import EncodedSplit, select_rows
from tfbert.data.pipeline import make_dataset


def global_batch_size(model, per_replica_batch_size: int) -> int:
    """``training.per_device_eval_batch_size`` is per replica: times the replicas of the model's strategy."""
    strategy = getattr(model, "distribute_strategy", None)
    return per_replica_batch_size * (strategy.num_replicas_in_sync if strategy is not None else 1)


def predict_logits(model, split: EncodedSplit, batch_size: int, pad_token_id: int = 0) -> np.ndarray:
    """Logits [num_examples, num_labels]; `batch_size` per replica.

    Rows are sorted by length so each batch is padded only to its longest neighbour, then the
    predictions are put back in the original order.
    """
    batch_size = global_batch_size(model, batch_size)
    order = np.argsort(split.lengths, kind="stable")
    unlabelled = EncodedSplit(features=select_rows(split, order).features, labels=None)
    dataset = make_dataset(unlabelled, batch_size, padding="dynamic", pad_token_id=pad_token_id)
    logits = np.asarray(model.predict(dataset, verbose=0), dtype=np.float32)
    out = np.empty_like(logits)
    out[order] = logits
    return out


def predict_per_token(model, split: EncodedSplit, batch_size: int, pad_token_id: int = 0):
    """Per-example outputs trimmed to each example's length, in the split's original order.

    For a model with one output: a list of arrays [length, ...]; with named outputs (a dict):
    a dict of such lists. Batches of length-sorted rows keep padding small; `predict_on_batch`
    uses Keras' retracing-tolerant predict function, so varying batch widths are cheap. `batch_size`
    is per replica.
    """
    batch_size = global_batch_size(model, batch_size)
    order = np.argsort(split.lengths, kind="stable")
    lengths = split.lengths[order]
    unlabelled = EncodedSplit(features=select_rows(split, order).features, labels=None)
    dataset = make_dataset(unlabelled, batch_size, padding="dynamic", pad_token_id=pad_token_id)
    collected: dict = {}
    row = 0
    for features in dataset:
        outputs = model.predict_on_batch(features)
        named = outputs if isinstance(outputs, dict) else {"": outputs}
        n = next(iter(named.values())).shape[0]
        for name, value in named.items():
            value = np.asarray(value, dtype=np.float32)
            collected.setdefault(name, []).extend(value[i, :lengths[row + i]] for i in range(n))
        row += n
    result = {}
    for name, values in collected.items():
        ordered = [None] * len(values)
        for position, original in enumerate(order):
            ordered[original] = values[position]
        result[name] = ordered
    return result[""] if list(result) == [""] else result
