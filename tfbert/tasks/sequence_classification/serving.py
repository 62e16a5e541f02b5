"""SavedModel for sequence classification: raw strings in, probabilities and label names out.

``serving_default`` takes ``text`` (tf.string [batch]), plus ``text_pair`` for pair tasks, and
returns ``probabilities`` [batch, num_labels] float32, ``label`` (names), ``label_id`` (int32) and
``logits``; ``serve_token_ids`` returns the same from token ids.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert.serving.base import ServingModule


class ClassifierServingModule(ServingModule):
    """Raw text -> tokens -> logits -> softmax probabilities and the arg-max label, in one graph."""

    def __init__(self, model, hf_tokenizer, label_names: list[str], config: ExperimentConfig):
        super().__init__(model, hf_tokenizer, label_names, config)
        self.text_pairs = bool(config.data.text_pair_column)
        self.label_table = tf.constant(label_names, dtype=tf.string)

    def text_specs(self) -> list[tf.TensorSpec]:
        specs = [tf.TensorSpec([None], tf.string, name="text")]
        if self.text_pairs:
            specs.append(tf.TensorSpec([None], tf.string, name="text_pair"))
        return specs

    def outputs(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        """Logits -> the signature's outputs (subclasses change the decision rule)."""
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1), "label_id": label_id,
                "label": tf.gather(self.label_table, label_id)}

    def serve_text(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        return self.outputs(self.logits(self.tokenizer(text, text_pair)))

    def serve_token_ids(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.outputs(self.logits(features))

    @classmethod
    def cli_inputs(cls, args, read_lines, input_names: set[str]) -> dict[str, list[str]]:
        from tfbert.errors import DataError

        inputs = super().cli_inputs(args, read_lines, input_names)
        if "text_pair" in input_names:
            if len(args.pair) != len(inputs["text"]):
                raise DataError(f"this model classifies text pairs: give one --pair per text "
                                f"({len(inputs['text'])} texts, {len(args.pair)} pairs)")
            inputs["text_pair"] = list(args.pair)
        return inputs

    @classmethod
    def cli_record(cls, inputs: dict[str, Any], out: dict[str, Any], i: int) -> tuple[dict, str]:
        record = {k: v[i] for k, v in inputs.items()}
        probs = out["probabilities"][i]
        record.update(label=out["label"][i].decode("utf-8"), score=float(probs.max()),
                      probabilities=[float(p) for p in probs])
        return record, f"{record['label']}\t{record['score']:.4f}\t{record['text']}"

    @classmethod
    def recognizes(cls, inputs: set[str], outputs: set[str]) -> bool:
        return "label" in outputs and "probabilities" in outputs


__all__ = ["ClassifierServingModule"]
