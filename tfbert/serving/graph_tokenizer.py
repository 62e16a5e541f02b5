"""In-graph BERT WordPiece tokenization that gives the same ids as a Hugging Face fast tokenizer.

:class:`GraphBertTokenizer` turns a batch of raw strings into ``input_ids``, ``attention_mask`` and
(when the tokenizer has them) ``token_type_ids`` with TensorFlow and tensorflow-text ops only, so it
can be part of a SavedModel that takes raw strings.

For token classification and extractive QA it also gives character offsets and windows:

* :meth:`~GraphBertTokenizer.tokenize_with_offsets`: word pieces with Hugging Face's
  ``offset_mapping`` (code point offsets into the original strings) and ``word_ids()``;
* :meth:`~GraphBertTokenizer.encode_with_offsets`: model inputs (as ``__call__``, truncated)
  with ``offsets_start``/``offsets_end``/``word_ids`` aligned to them, -1 where Hugging Face has
  ``(0, 0)``/``None`` (special tokens, padding);
* :meth:`~GraphBertTokenizer.encode_qa_windows`: ``[CLS] question [SEP] context [SEP]`` windows
  as ``truncation="only_second"`` with ``stride=doc_stride``, questions cut to
  ``max_query_length`` word pieces, offsets for the context tokens only.

Loading: the graph uses tensorflow-text kernels (``RegexSplitWithOffsets``,
``FastWordpieceTokenizeWithOffsets``). A process that loads such a SavedModel must run
``import tensorflow_text`` before ``tf.saved_model.load`` (or the load fails with an unknown op).

How it matches Hugging Face exactly. Rather than re-implementing the Rust ``BertNormalizer`` and
``BertPreTokenizer`` with ICU-based TF ops (whose Unicode tables and rules differ: NFKC folding,
context-dependent final sigma, newer case mappings, control characters), the character behaviour is
measured from the installed ``tokenizers`` library when the tokenizer is built: every code point is
run through the normalizer and the pre-tokenizer once (about 2 s, cached per setting). That gives

* the code points ``clean_text`` deletes, and the per-character output of the rest of the
  normalizer (whitespace to space, NFD + removal of non-spacing marks, ``char::to_lowercase``),
  applied in the graph as a code point lookup;
* the characters ``handle_chinese_chars`` pads and the characters the pre-tokenizer treats as
  whitespace or punctuation, applied in the graph as one RE2 split.

Offsets: see `tfbert.serving.text_offsets`; windows: `tfbert.serving.windows`.

Words longer than ``max_input_chars_per_word`` *characters* become ``[UNK]`` as in Hugging Face
(tensorflow-text's ``max_bytes_per_word`` counts bytes, so it is set high enough to never trigger
and the character limit is applied separately). Added tokens (``[CLS]``, ``[MASK]``, tokens from
``add_tokens``) are split out of the raw text, or of the normalized text for tokens with
``normalized=True``, before WordPiece, as the Rust ``AddedVocabulary`` does. Truncation follows the
Rust ``LongestFirst`` strategy; padding pads to the longest sequence in the batch.

Remaining differences from Hugging Face (tests/serving/test_tokenizer_properties.py pins the
first and excludes exactly that class from its random texts):

* With accent stripping on, NFD is applied character by character, so the canonical reordering of
  combining marks is not done. Non-spacing marks (``Mn``) are deleted either way; the difference
  shows only when a run of marks out of canonical order (after ``clean_text``'s deletions, which
  can bring marks together) holds a spacing mark with a combining class (``Mc``: U+302E, U+302F,
  U+1D165, U+1D166, U+1D16D..U+1D172 and a few viramas such as U+1B44, U+A953), e.g. U+0314
  U+302F. Ids change only in a vocabulary that contains such a mark
  (BERT vocabularies make the word ``[UNK]`` either way); offsets do: Hugging Face aligns the
  reordered marks by position, giving the kept mark the offset of the mark that stood first, ours
  keep its own.
* Bytes that are not valid UTF-8 are decoded as Python's ``bytes.decode("utf-8",
  errors="replace")`` does (:func:`valid_utf8`: one U+FFFD for each maximal ill-formed
  subsequence) before anything else; ids and offsets are those Hugging Face gives for that decoded
  string (``clean_text`` then deletes the U+FFFD characters).
* tf-text's ``regex_split`` stops at U+0000, so NUL is replaced by U+0001 first. Both are deleted by
  ``clean_text`` (or both kept as unknown characters without it), so ids do not change; a tokenizer
  whose vocabulary contains either character keeps NUL and its text is cut there.
* Added tokens with ``single_word=True`` are not supported (:class:`~tfbert.errors.ModelError`);
  ``lstrip``/``rstrip`` only move whitespace, which never becomes a token, so they are ignored
  for ids. Hugging Face's offsets of such a token take in the whitespace it strips; ours are
  those of its content (BERT checkpoints' added tokens have neither flag).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.errors import ConfigError, ModelError
from tfbert.serving.normalization_tables import (_normalizer_tables, _pre_tokenizer_classes, _regex_class,
                                                 nul_substitution_is_exact, tokenizer_settings)
from tfbert.serving.text_offsets import OffsetsMixin, _channels, valid_utf8
from tfbert.serving.windows import WindowsMixin, _longest_first

_SUPPORTED_SIDES = ("right", "left")


def _check_arguments(vocab: list[str], unk_token: str, padding_side: str, truncation_side: str,
                     added_tokens: Sequence[Mapping[str, Any]]) -> None:
    if unk_token not in vocab:
        raise ModelError(f"tokenizer vocabulary has no unknown token {unk_token!r}")
    for side_name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
        if side not in _SUPPORTED_SIDES:
            raise ConfigError(f"{side_name} must be 'right' or 'left', got {side!r}")
    for token in added_tokens:
        if token.get("single_word"):
            raise ModelError(f"added token {token['content']!r} has single_word=True, which in-graph "
                             "tokenization does not support")


# ----------------------------------------------------------------------------------------------


class GraphBertTokenizer(WindowsMixin, OffsetsMixin, tf.Module):
    """Tokenizes tf.string batches in the graph exactly like a Hugging Face BERT fast tokenizer.

    Build it with :meth:`from_hf_tokenizer`; call it with a ``tf.string`` tensor of shape
    ``[batch]`` (and optionally a second one for text pairs).
    """

    def __init__(
        self,
        *,
        vocab: Sequence[str],
        max_seq_length: int,
        unk_token: str = "[UNK]",
        continuing_subword_prefix: str = "##",
        max_input_chars_per_word: int = 100,
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        lowercase: bool = True,
        single_template: Sequence[Mapping[str, Any]],
        pair_template: Sequence[Mapping[str, Any]],
        added_tokens: Sequence[Mapping[str, Any]] = (),
        pad_token_id: int = 0,
        pad_token_type_id: int = 0,
        return_token_type_ids: bool = True,
        padding_side: str = "right",
        truncation_side: str = "right",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        vocab = list(vocab)
        _check_arguments(vocab, unk_token, padding_side, truncation_side, added_tokens)
        config: dict[str, Any] = {
            "max_seq_length": int(max_seq_length),
            "unk_token": unk_token,
            "continuing_subword_prefix": continuing_subword_prefix,
            "max_input_chars_per_word": int(max_input_chars_per_word),
            "clean_text": bool(clean_text),
            "handle_chinese_chars": bool(handle_chinese_chars),
            "strip_accents": strip_accents,
            "lowercase": bool(lowercase),
            "single_template": [dict(item) for item in single_template],
            "pair_template": [dict(item) for item in pair_template],
            "added_tokens": [
                {k: token[k] for k in ("content", "id", "normalized", "lstrip", "rstrip",
                                       "single_word", "special") if k in token}
                for token in added_tokens
            ],
            "pad_token_id": int(pad_token_id),
            "pad_token_type_id": int(pad_token_type_id),
            "return_token_type_ids": bool(return_token_type_ids),
            "padding_side": padding_side,
            "truncation_side": truncation_side,
        }
        # Kept as JSON: tf.Module would wrap a dict attribute in tracking containers.
        self._config_json = json.dumps(config)
        self._num_added_single = sum(len(i.get("special_ids", ())) for i in single_template)
        self._num_added_pair = sum(len(i.get("special_ids", ())) for i in pair_template)
        needed = max(self._num_added_single, self._num_added_pair)
        if max_seq_length < needed:
            raise ConfigError(
                f"max_seq_length must be at least {needed} (the special tokens it adds), "
                f"got {max_seq_length}"
            )
        strip = lowercase if strip_accents is None else bool(strip_accents)
        self._build_character_steps(bool(clean_text), bool(handle_chinese_chars), strip, bool(lowercase),
                                    added_tokens, vocab)
        self._build_wordpiece(vocab, unk_token, continuing_subword_prefix, int(max_input_chars_per_word))

    def _build_character_steps(self, clean_text: bool, handle_chinese_chars: bool, strip_accents: bool,
                               lowercase: bool, added_tokens: Sequence[Mapping[str, Any]], vocab: list[str]) -> None:
        """Normalizer and pre-tokenizer tables, as measured from `tokenizers` (see module docstring)."""
        deleted, replacements, cjk = _normalizer_tables(clean_text, handle_chinese_chars, strip_accents, lowercase)
        self._deleted_starts = np.array([a for a, _ in deleted], np.int32)
        self._deleted_ends = np.array([b for _, b in deleted], np.int32)
        self._replace_keys = np.array([c for c, _ in replacements], np.int32)
        self._replace_values = np.array([v.encode("utf-8") for _, v in replacements], object)

        # Pre-tokenizer: split on whitespace, keep punctuation and padded CJK characters as words.
        whitespace, punctuation = _pre_tokenizer_classes()
        self._split_pattern = _regex_class(tuple(whitespace) + tuple(punctuation) + cjk)
        self._keep_pattern = _regex_class(tuple(punctuation) + cjk)

        # Added tokens: matched on the raw text, or on the normalized text when normalized=True
        # (their pattern then uses the normalized content, as the Rust AddedVocabulary does).
        self._raw_added = [(t["content"], int(t["id"])) for t in added_tokens if not t.get("normalized")]
        self._normalized_added = [(self._normalize_py(t["content"]), int(t["id"]))
                                  for t in added_tokens if t.get("normalized")]
        self._substitute_nul = nul_substitution_is_exact(
            deleted, replacements, set(whitespace) | set(punctuation) | set(cjk),
            [t["content"] for t in added_tokens] + vocab)

    def _build_wordpiece(self, vocab: list[str], unk_token: str, prefix: str, max_chars: int) -> None:
        self._unk_id = vocab.index(unk_token)
        self._max_chars = max_chars
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocab,
            suffix_indicator=prefix,
            # Hugging Face limits characters, tf-text bytes: never let the byte limit trigger for a
            # word within the character limit (UTF-8 is at most 4 bytes a character).
            max_bytes_per_word=4 * max_chars + 4,
            token_out_type=tf.int32,
            unknown_token=unk_token,
            no_pretokenization=True,
        )
        self._vocab_size = len(vocab)

    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_hf_tokenizer(cls, hf_tokenizer: Any, max_seq_length: int) -> "GraphBertTokenizer":
        """Builds the in-graph tokenizer from a transformers ``PreTrainedTokenizerFast``."""
        return cls(max_seq_length=max_seq_length, **tokenizer_settings(hf_tokenizer))

    def get_config(self) -> dict[str, Any]:
        """Settings as a plain dict (``GraphBertTokenizer(vocab=..., **config)`` rebuilds it)."""
        return json.loads(self._config_json)

    @property
    def _settings(self) -> dict[str, Any]:
        return json.loads(self._config_json)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def max_seq_length(self) -> int:
        return self._settings["max_seq_length"]

    # ------------------------------------------------------------------------------------------

    def __call__(
        self, texts: tf.Tensor, text_pairs: tf.Tensor | None = None
    ) -> dict[str, tf.Tensor]:
        """``[batch]`` strings (and pairs) -> int32 ``[batch, longest]`` model inputs."""
        with tf.name_scope("graph_bert_tokenizer"):
            texts = tf.convert_to_tensor(texts, dtype=tf.string)
            sequences = [self._tokenize(texts)]
            if text_pairs is None:
                template = self._settings["single_template"]
                budget = self.max_seq_length - self._num_added_single
                keep = [tf.minimum(sequences[0].row_lengths(), budget)]
            else:
                text_pairs = tf.convert_to_tensor(text_pairs, dtype=tf.string)
                with tf.control_dependencies([
                    tf.debugging.assert_equal(
                        tf.size(texts), tf.size(text_pairs),
                        message="texts and text_pairs must have the same batch size",
                    )
                ]):
                    sequences.append(self._tokenize(text_pairs))
                template = self._settings["pair_template"]
                budget = self.max_seq_length - self._num_added_pair
                keep = list(_longest_first(
                    sequences[0].row_lengths(), sequences[1].row_lengths(), budget
                ))
            sequences = [
                self._truncate({"input_ids": s}, k) for s, k in zip(sequences, keep)
            ]
            return self._pad(self._apply_template(template, sequences, tf.shape(texts)[0]))

    def tokenize_with_offsets(
        self, texts: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """``[batch]`` strings -> ``(token_ids, starts, ends, word_ids)``, int32 ragged.

        All four are ``[batch, (tokens)]`` with the same row splits: word pieces without special
        tokens or truncation. ``starts``/``ends`` are code point offsets into the original
        strings (Hugging Face's ``offset_mapping``), ``word_ids`` the index of each piece's
        pre-tokenizer word (Hugging Face's ``word_ids()``).
        """
        with tf.name_scope("graph_bert_tokenizer"):
            return tuple(self._tokenize_with_offsets(tf.convert_to_tensor(texts, tf.string)))

    def encode_with_offsets(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """``[batch]`` strings -> int32 ``[batch, longest]`` model inputs with offsets.

        ``input_ids``/``attention_mask``/``token_type_ids`` as :meth:`__call__` gives them for
        single texts (truncated to ``max_seq_length``), plus ``offsets_start``/``offsets_end``
        (code point span in the original string) and ``word_ids``, -1 for special tokens and
        padding. Texts over ``max_seq_length`` lose their end.
        """
        with tf.name_scope("graph_bert_tokenizer"):
            texts = tf.convert_to_tensor(texts, dtype=tf.string)
            tokens = self._tokenize_with_offsets(texts)
            budget = self.max_seq_length - self._num_added_single
            sequence = self._truncate(
                _channels(tokens), tf.minimum(tokens.ids.row_lengths(), budget)
            )
            return self._pad(self._apply_template(
                self._settings["single_template"], [sequence], tf.shape(texts)[0]
            ))


    # -- steps ----------------------------------------------------------------------------------

    def _tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] strings -> [batch, (tokens)] int32 ids without special tokens or truncation."""
        pieces = self._prepare(texts)
        piece_ids = tf.fill(tf.shape(texts), -1)
        nested_splits = []
        if self._raw_added:
            pieces, piece_ids, splits, _, _ = self._split_added(pieces, piece_ids, self._raw_added)
            nested_splits.append(splits)
        pieces = self._normalize(pieces)
        if self._normalized_added:
            pieces, piece_ids, splits, _, _ = self._split_added(
                pieces, piece_ids, self._normalized_added
            )
            nested_splits.append(splits)

        tokens = self._wordpiece_pieces(pieces)
        # Added-token pieces tokenized to nothing (empty text); append their id instead.
        added = tf.ragged.boolean_mask(piece_ids[:, None], (piece_ids >= 0)[:, None])
        tokens = tf.concat([tokens, added], axis=1)
        for splits in reversed(nested_splits):
            tokens = tf.RaggedTensor.from_row_splits(tokens, splits, validate=False)
            tokens = tokens.merge_dims(1, 2)
        return tokens


    def _prepare(self, texts: tf.Tensor) -> tf.Tensor:
        """Valid UTF-8 (see :func:`valid_utf8`), NUL substituted where that is exact."""
        # Byte-level steps (the added-token split, character counting) would otherwise see
        # ill-formed sequences differently from the code point decoding that gives offsets.
        texts = valid_utf8(texts)
        if self._substitute_nul:
            return tf.strings.regex_replace(texts, "\\x00", "\x01")
        return texts


    def _normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The BertNormalizer (without CJK padding, which the split does) on [n] strings."""
        if self._deleted_starts.size == 0 and self._replace_keys.size == 0:
            return texts
        return tf.strings.reduce_join(self._normalized_chars(texts), axis=1)


    def _wordpiece_pieces(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalized [n] strings -> [n, (tokens)] WordPiece ids."""
        words = tf_text.regex_split(texts, self._split_pattern, self._keep_pattern)
        flat = words.flat_values
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > self._max_chars
        ids = self._wordpiece.tokenize(tf.where(too_long, "", flat))
        unk = tf.ragged.boolean_mask(tf.fill([tf.size(flat), 1], self._unk_id), too_long[:, None])
        ids = tf.concat([ids, unk], axis=1)
        ids = tf.RaggedTensor.from_row_splits(ids, words.row_splits, validate=False)
        return ids.merge_dims(1, 2)


    def _truncate(
        self, sequence: Mapping[str, tf.RaggedTensor], keep: tf.Tensor
    ) -> dict[str, tf.RaggedTensor]:
        """Keeps `keep` tokens of each row (at the tokenizer's truncation side), every channel."""
        lengths = sequence["input_ids"].row_lengths()
        positions = tf.ragged.range(lengths)
        if self._settings["truncation_side"] == "right":
            mask = positions < keep[:, None]
        else:
            mask = positions >= (lengths - keep)[:, None]
        return {name: tf.ragged.boolean_mask(value, mask) for name, value in sequence.items()}

    def _apply_template(
        self, template: Sequence[Mapping[str, Any]],
        sequences: Sequence[Mapping[str, tf.RaggedTensor]], batch_size: tf.Tensor,
    ) -> dict[str, tf.RaggedTensor]:
        """Joins the sequences and special tokens; adds ``token_type_ids``.

        Every sequence has the same channels (``input_ids`` and optionally offsets/word ids);
        special tokens get -1 in the channels other than the ids.
        """
        names = list(sequences[0])
        parts: dict[str, list[tf.RaggedTensor]] = {name: [] for name in names}
        parts["token_type_ids"] = []
        for item in template:
            if "sequence" in item:
                part = dict(sequences[item["sequence"]])
            else:
                special = tf.constant([item["special_ids"]], tf.int32)
                ids = tf.RaggedTensor.from_tensor(tf.tile(special, [batch_size, 1]))
                part = {name: tf.ones_like(ids) * -1 for name in names}
                part["input_ids"] = ids
            part["token_type_ids"] = tf.ones_like(part["input_ids"]) * item["type_id"]
            for name, value in part.items():
                parts[name].append(value)
        return {name: tf.concat(values, axis=1) for name, values in parts.items()}

    def _pad(self, ragged: Mapping[str, tf.RaggedTensor]) -> dict[str, tf.Tensor]:
        """Pads every channel to the longest row: ids and type ids with the tokenizer's pad
        values, the other channels with -1; adds ``attention_mask``."""
        ids = ragged["input_ids"]
        outputs = {
            "input_ids": ids.to_tensor(default_value=self._settings["pad_token_id"]),
            "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
        }
        if self._settings["return_token_type_ids"]:
            outputs["token_type_ids"] = ragged["token_type_ids"].to_tensor(
                default_value=self._settings["pad_token_type_id"]
            )
        for name, value in ragged.items():
            if name not in ("input_ids", "token_type_ids"):
                outputs[name] = value.to_tensor(default_value=-1)
        if self._settings["padding_side"] == "left":
            # Rotate each row right by its padding so the padding comes first.
            width = tf.shape(outputs["input_ids"])[1]
            shift = width - tf.cast(ids.row_lengths(), tf.int32)
            index = tf.math.floormod(
                tf.range(width)[None, :] - shift[:, None], tf.maximum(width, 1)
            )
            outputs = {k: tf.gather(v, index, batch_dims=1) for k, v in outputs.items()}
        return outputs

    # -- helpers --------------------------------------------------------------------------------

    def _normalize_py(self, text: str) -> str:
        """The normalizer in Python, for added-token contents.

        Without CJK padding: the graph's normalized text has none either (the split isolates CJK).
        """
        from tokenizers import normalizers

        c = self._settings
        return normalizers.BertNormalizer(
            clean_text=c["clean_text"], handle_chinese_chars=False,
            strip_accents=c["strip_accents"], lowercase=c["lowercase"],
        ).normalize_str(text)
