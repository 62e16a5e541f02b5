"""Word tags -> subword labels, and sentences longer than the model -> windows of whole words."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfbert.data.conll import TaggedSentence
from tfbert.data.encoding import IGNORE_INDEX, EncodedSplit, RaggedLabels


@dataclass
class WordWindows:
    """Where each window comes from: sentence index, and the sentence word index of each token."""

    sentence_index: np.ndarray          # [windows]
    token_word: list[np.ndarray]        # per window, per token: word index in its sentence, -1 for specials


def continuation_tag(tag: str) -> str:
    """The tag a non-first subword gets when all subwords are labelled (B-X -> I-X, S-X -> I-X or E-X)."""
    if tag.startswith(("B-", "S-")):
        return "I-" + tag[2:]
    return tag


def encode_tagged(
    sentences: list[TaggedSentence],
    tokenizer,
    label2id: dict[str, int] | None,
    max_seq_length: int,
    label_all_subwords: bool = False,
) -> tuple[EncodedSplit, WordWindows]:
    """Tokenize words, label the first subword of each word (others IGNORE_INDEX, or all subwords),
    and split sentences whose subwords do not fit into consecutive windows at word boundaries."""
    budget = max_seq_length - 2  # [CLS] ... [SEP]
    encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, add_special_tokens=False,
                        return_attention_mask=False, return_token_type_ids=False)
    ids_out, labels_out, words_out, sentence_of = [], [], [], []
    for index, sentence in enumerate(sentences):
        piece_ids = encoded["input_ids"][index]
        word_ids = encoded.word_ids(index)
        # Windows end at word boundaries; a single word longer than a window is cut (rare: >126 pieces).
        start = 0
        while start < len(piece_ids) or (start == 0 and not piece_ids):
            end = min(start + budget, len(piece_ids))
            if end < len(piece_ids):
                boundary = end
                while boundary > start and word_ids[boundary] == word_ids[boundary - 1]:
                    boundary -= 1
                end = boundary if boundary > start else end
            window_words = word_ids[start:end]
            ids = [tokenizer.cls_token_id, *piece_ids[start:end], tokenizer.sep_token_id]
            token_word = [-1, *window_words, -1]
            labels = [IGNORE_INDEX] * len(ids)
            if label2id is not None:
                previous = None if start == 0 else word_ids[start - 1]
                for position, word in enumerate(window_words, start=1):
                    tag = sentence.tags[word]
                    if word != previous:
                        labels[position] = label2id[tag]
                    elif label_all_subwords:
                        labels[position] = label2id.get(continuation_tag(tag), label2id[tag])
                    previous = word
            ids_out.append(ids)
            labels_out.append(labels)
            words_out.append(np.asarray(token_word, dtype=np.int32))
            sentence_of.append(index)
            if end == start:
                break
            start = end
    lengths = np.array([len(x) for x in ids_out], dtype=np.int64)
    row_splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.fromiter((t for x in ids_out for t in x), dtype=np.int32, count=int(row_splits[-1]))
    features = {"input_ids": (flat, row_splits)}
    if "token_type_ids" in tokenizer.model_input_names:
        features["token_type_ids"] = (np.zeros_like(flat), row_splits)
    labels = None
    if label2id is not None:
        labels = RaggedLabels(np.fromiter((t for x in labels_out for t in x), dtype=np.int32,
                                          count=int(row_splits[-1])), row_splits)
    return EncodedSplit(features=features, labels=labels), WordWindows(np.asarray(sentence_of), words_out)


def word_predictions(token_label_ids: list[np.ndarray], windows: WordWindows, sentences: list[TaggedSentence],
                     id2label: list[str], outside: str = "O") -> list[list[str]]:
    """Per-word tags from per-token predictions: each word takes its first subword's label.

    Words the tokenizer dropped entirely (e.g. only zero-width characters) are tagged `outside`.
    """
    tags = [[outside] * len(s.words) for s in sentences]
    seen = [np.zeros(len(s.words), dtype=bool) for s in sentences]
    for window, predicted in enumerate(token_label_ids):
        sentence = windows.sentence_index[window]
        for position, word in enumerate(windows.token_word[window]):
            if word >= 0 and not seen[sentence][word]:
                tags[sentence][word] = id2label[int(predicted[position])]
                seen[sentence][word] = True
    return tags
