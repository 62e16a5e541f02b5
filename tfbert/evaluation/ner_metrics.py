"""Entity-level precision/recall/F1 (seqeval) per type, micro and macro, plus word accuracy."""
from __future__ import annotations

import numpy as np
from seqeval.metrics import classification_report
from seqeval.scheme import IOBES


def entity_metrics(true_tags: list[list[str]], pred_tags: list[list[str]], scheme: str = "iob2") -> dict:
    """seqeval report; IOB1/IOB2 use the CoNLL evaluation (``conlleval``-compatible), BIOES strict mode."""
    kwargs: dict = {"output_dict": True, "zero_division": 0}
    if scheme == "bioes":
        kwargs.update(mode="strict", scheme=IOBES)
    report = classification_report(true_tags, pred_tags, **kwargs)
    per_type = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
               "support": int(v["support"])}
        for name, v in report.items() if not name.endswith(" avg")
    }
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    macro = report.get("macro avg", {"f1-score": 0.0})
    words = np.array([t for s in true_tags for t in s])
    predicted = np.array([t for s in pred_tags for t in s])
    return {
        "num_examples": len(true_tags),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "macro_f1": float(macro["f1-score"]),
        "token_accuracy": float((words == predicted).mean()) if len(words) else 0.0,
        "per_class": per_type,
    }

