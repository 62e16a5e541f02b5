"""The Python-side NER pipeline: raw strings -> HF fast tokenizer -> model -> entities.

The exported SavedModel does the same in the graph; tests hold the two to the same answers.
"""
from __future__ import annotations

import numpy as np

from tfbert.evaluation.entities import Entity, group_entities


def predict_entities(model, tokenizer, texts: list[str], label_names: list[str], max_seq_length: int) -> list[list[Entity]]:
    """Entities per text; each word takes its first word piece's label (as in training)."""
    enc = tokenizer(texts, truncation=True, max_length=max_seq_length, padding=True,
                    return_offsets_mapping=True, return_tensors="np")
    inputs = {name: enc[name].astype(np.int32) for name in model.input_names}
    logits = np.asarray(model(inputs, training=False), dtype=np.float32)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    results = []
    for row, text in enumerate(texts):
        word_ids = enc.word_ids(row)
        tags, spans, scores = [], [], []
        for position, word in enumerate(word_ids):
            if word is None:
                continue
            start, end = (int(x) for x in enc["offset_mapping"][row, position])
            if position == 0 or word_ids[position - 1] != word:
                tags.append(label_names[int(probs[row, position].argmax())])
                scores.append(float(probs[row, position].max()))
                spans.append((start, end))
            else:
                spans[-1] = (spans[-1][0], end)
        results.append(group_entities(text, tags, spans, scores))
    return results
