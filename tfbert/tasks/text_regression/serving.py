"""SavedModel for text regression: raw strings in, one score per text (or text pair) out.

``serving_default`` takes ``text`` (tf.string [batch]), plus ``text_pair`` for pair tasks (STS-B),
and returns ``score`` float32 [batch] (the head's one output, no squashing: what the model was
trained to predict) and ``logits`` [batch, 1]; ``serve_token_ids`` returns the same from token ids.
The inputs and the command-line reading of texts and ``--pair`` are the classifier's.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfbert.tasks.sequence_classification.serving import ClassifierServingModule


class RegressionServingModule(ClassifierServingModule):
    """The classifier's graph (raw text -> tokens -> the head) returning the score instead of a label."""

    def outputs(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": logits, "score": logits[:, 0]}

    @classmethod
    def cli_record(cls, inputs: dict[str, Any], out: dict[str, Any], i: int) -> tuple[dict, str]:
        record = {k: v[i] for k, v in inputs.items()}
        record["score"] = float(out["score"][i])
        texts = "\t".join(record[k] for k in ("text", "text_pair") if k in record)
        return record, f"{record['score']:.4f}\t{texts}"

    @classmethod
    def recognizes(cls, inputs: set[str], outputs: set[str]) -> bool:
        # QA also returns a "score", next to its answer; a regression export returns nothing else.
        return outputs == {"score", "logits"}


__all__ = ["RegressionServingModule"]
