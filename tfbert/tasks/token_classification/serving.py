"""SavedModel for token classification: raw strings in, entities with character offsets out.

`serving_default` takes ``text`` (tf.string [batch]) and returns, per input, padded to the most
entities in the batch (``num_entities`` says how many are real):

- ``entity_type`` (string), ``entity_text`` (string), ``entity_start`` / ``entity_end`` (int32
  code-point offsets into the original string, end exclusive; -1 in padding), ``entity_score``
  (float32: mean over the entity's words of the top label probability), ``num_entities`` (int32);
- ``word_label`` / ``word_start`` / ``word_end`` / ``word_score``: the per-word tags behind them.

Offsets count code points of the text decoded as UTF-8, ill-formed bytes replaced by U+FFFD as
Python's ``bytes.decode("utf-8", errors="replace")`` does; ``entity_text`` is cut from that text.

Everything runs in the graph: tokenization with offsets (`GraphBertTokenizer.encode_with_offsets`),
the model, one label per word from its first word piece (as in training), and the grouping of
B-/I-/E-/S- tags into entities with the same rule as `tfbert.evaluation.entities`. Inputs longer
than ``max_seq_length`` word pieces are truncated at serving time (training and evaluation window
them instead); split long documents into sentences before calling the model.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert.evaluation.entities import PREFIXES, split_tag
from tfbert.serving.base import ServingModule
from tfbert.serving.graph_tokenizer import valid_utf8


def _shift_right(x: tf.Tensor, fill) -> tf.Tensor:
    return tf.concat([tf.fill([tf.shape(x)[0], 1], fill), x[:, :-1]], axis=1)


def _shift_left(x: tf.Tensor, fill) -> tf.Tensor:
    return tf.concat([x[:, 1:], tf.fill([tf.shape(x)[0], 1], fill)], axis=1)


class NerServingModule(ServingModule):
    """Raw text -> word pieces with offsets -> per-token labels -> words -> entities."""

    def __init__(self, model, hf_tokenizer, label_names: list[str], config: ExperimentConfig):
        super().__init__(model, hf_tokenizer, label_names, config)
        prefixes, types = zip(*(split_tag(n) for n in label_names))
        type_names = sorted({t for t in types if t})
        self.label_names = tf.constant(label_names)
        self.type_names = tf.constant([""] + type_names)
        self.label_prefix = tf.constant([PREFIXES.index(p) for p in prefixes], tf.int32)
        self.label_type = tf.constant([0 if not t else 1 + type_names.index(t) for t in types], tf.int32)

    def _words(self, texts: tf.Tensor):
        """Per-word (label id, score, start, end) as ragged [batch, (words)], plus token outputs."""
        enc = self.tokenizer.encode_with_offsets(texts)
        logits = self.logits(enc, per_token=True)
        probs = tf.nn.softmax(logits, axis=-1)
        label = tf.argmax(probs, axis=-1, output_type=tf.int32)
        score = tf.reduce_max(probs, axis=-1)
        word_ids = enc["word_ids"]
        is_word = word_ids >= 0
        first = is_word & tf.not_equal(word_ids, _shift_right(word_ids, -1))
        last = is_word & tf.not_equal(word_ids, _shift_left(word_ids, -1))
        words = {
            "label": tf.ragged.boolean_mask(label, first),
            "score": tf.ragged.boolean_mask(score, first),
            "start": tf.ragged.boolean_mask(enc["offsets_start"], first),
            "end": tf.ragged.boolean_mask(enc["offsets_end"], last),
        }
        return words, logits

    def _entities(self, texts: tf.Tensor, words) -> dict[str, tf.Tensor]:
        label = words["label"]
        flat = label.flat_values
        rowids = label.value_rowids()
        row_starts = tf.concat([tf.ones_like(rowids[:1], tf.bool), tf.not_equal(rowids[1:], rowids[:-1])], axis=0)
        prefix = tf.gather(self.label_prefix, flat)
        kind = tf.gather(self.label_type, flat)
        prev_prefix = tf.where(row_starts, 0, tf.concat([[0], prefix[:-1]], axis=0))
        prev_kind = tf.where(row_starts, 0, tf.concat([[0], kind[:-1]], axis=0))
        inside = prefix > 0
        # Same rule as tfbert.evaluation.entities.starts_entity: B/S open; so does anything after
        # O, E or S, or after a different type.
        opens = inside & ((prefix == 1) | (prefix == 4) | (prev_prefix == 0) | (prev_prefix == 3)
                          | (prev_prefix == 4) | tf.not_equal(prev_kind, kind))
        entity_id = tf.cumsum(tf.cast(opens, tf.int32)) - 1
        member = tf.where(inside)[:, 0]
        segment = tf.gather(entity_id, member)
        count = tf.reduce_sum(tf.cast(opens, tf.int32))
        starts = tf.math.unsorted_segment_min(tf.gather(words["start"].flat_values, member), segment, count)
        ends = tf.math.unsorted_segment_max(tf.gather(words["end"].flat_values, member), segment, count)
        scores = tf.math.unsorted_segment_mean(tf.gather(words["score"].flat_values, member), segment, count)
        opener = tf.where(opens)[:, 0]
        types = tf.gather(self.type_names, tf.gather(kind, opener))
        rows = tf.gather(rowids, opener)
        text = tf.strings.substr(tf.gather(texts, rows), starts, ends - starts, unit="UTF8_CHAR")
        nrows = tf.shape(texts, out_type=tf.int64)[0]

        def per_row(values, default):
            return tf.RaggedTensor.from_value_rowids(values, rows, nrows=nrows).to_tensor(default_value=default)

        return {
            "entity_type": per_row(types, ""),
            "entity_text": per_row(text, ""),
            "entity_start": per_row(starts, -1),
            "entity_end": per_row(ends, -1),
            "entity_score": per_row(scores, 0.0),
            "num_entities": tf.cast(tf.math.bincount(tf.cast(rows, tf.int32), minlength=tf.cast(nrows, tf.int32),
                                                     maxlength=tf.cast(nrows, tf.int32)), tf.int32),
        }

    def serve_text(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        # Offsets count code points of the decoded text, so entity texts are cut from it too.
        texts = valid_utf8(texts)
        words, _ = self._words(texts)
        out = self._entities(texts, words)
        out.update({
            "word_label": tf.gather(self.label_names, words["label"]).to_tensor(default_value=""),
            "word_start": words["start"].to_tensor(default_value=-1),
            "word_end": words["end"].to_tensor(default_value=-1),
            "word_score": words["score"].to_tensor(default_value=0.0),
        })
        return out

    def serve_token_ids(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        logits = self.logits(features, per_token=True)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
                "label_id": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    @classmethod
    def recognizes(cls, inputs: set[str], outputs: set[str]) -> bool:
        return "entity_type" in outputs

    @classmethod
    def cli_record(cls, inputs: dict[str, Any], out: dict[str, Any], i: int) -> tuple[dict, str]:
        record = {k: v[i] for k, v in inputs.items()}
        n = int(out["num_entities"][i])
        record["entities"] = [
            {"type": t, "start": int(s), "end": int(e), "text": x, "score": float(p)}
            for t, s, e, x, p in zip(_decode(out["entity_type"][i][:n]), out["entity_start"][i][:n],
                                     out["entity_end"][i][:n], _decode(out["entity_text"][i][:n]),
                                     out["entity_score"][i][:n])
        ]
        shown = "  ".join(f"{e['type']}[{e['start']}:{e['end']}]={e['text']!r}" for e in record["entities"])
        return record, f"{record['text']}\t{shown or '(no entities)'}"


def _decode(values) -> list:
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
