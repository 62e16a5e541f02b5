"""In-graph BERT WordPiece tokenization that gives the same ids as a Hugging Face fast tokenizer.

:class:`GraphBertTokenizer` turns a batch of raw strings into ``input_ids``, ``attention_mask`` and
(when the tokenizer has them) ``token_type_ids`` with TensorFlow and tensorflow-text ops only, so it
can be part of a SavedModel that takes raw strings.

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

Words longer than ``max_input_chars_per_word`` *characters* become ``[UNK]`` as in Hugging Face
(tensorflow-text's ``max_bytes_per_word`` counts bytes, so it is set high enough to never trigger
and the character limit is applied separately). Added tokens (``[CLS]``, ``[MASK]``, tokens from
``add_tokens``) are split out of the raw text, or of the normalized text for tokens with
``normalized=True``, before WordPiece, as the Rust ``AddedVocabulary`` does. Truncation follows the
Rust ``LongestFirst`` strategy; padding pads to the longest sequence in the batch.

Remaining differences from Hugging Face (none occur in the tests):

* With accent stripping on, NFD is applied character by character, so the canonical reordering of
  adjacent combining marks that are not non-spacing marks (``Mc`` such as U+1D165..U+1D172) is not
  done. Non-spacing marks are deleted either way, so this can only change ids for such out-of-order
  mark pairs in a vocabulary that contains them.
* Bytes that are not valid UTF-8 become U+FFFD (Python strings given to Hugging Face are always
  valid).
* tf-text's ``regex_split`` stops at U+0000, so NUL is replaced by U+0001 first. Both are deleted by
  ``clean_text`` (or both kept as unknown characters without it), so ids do not change; a tokenizer
  whose vocabulary contains either character keeps NUL and its text is cut there.
* Added tokens with ``single_word=True`` are not supported (:class:`~tfbert.errors.ModelError`);
  ``lstrip``/``rstrip`` only move whitespace, which never becomes a token, so they are ignored.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.errors import ConfigError, ModelError

_SUPPORTED_SIDES = ("right", "left")
_MAX_CODE_POINT = 0x10FFFF


# ----------------------------------------------------------------------------------------------
# Character tables measured from the `tokenizers` library.


@functools.lru_cache(maxsize=1)
def _all_chars() -> tuple[str, ...]:
    """Every Unicode scalar value (surrogates cannot be in a Python/Rust string)."""
    return tuple(chr(c) for c in range(_MAX_CODE_POINT + 1) if not 0xD800 <= c <= 0xDFFF)


def _changed_chars(normalize: Any, sep: str) -> dict[int, str]:
    """Runs `normalize` on every character alone; returns {code point: output} where it changes.

    One call on all characters joined by `sep` (which `normalize` must leave alone and never
    produce) instead of a million calls.
    """
    chars = [c for c in _all_chars() if c != sep]
    outputs = normalize(sep + sep.join(chars) + sep).split(sep)[1:-1]
    if len(outputs) != len(chars):
        raise RuntimeError("probing the Hugging Face normalizer failed: separator was altered")
    changed = {ord(c): out for c, out in zip(chars, outputs) if out != c}
    sep_out = normalize(sep)
    if sep_out != sep:
        changed[ord(sep)] = sep_out
    return changed


@functools.lru_cache(maxsize=8)
def _normalizer_tables(
    clean_text: bool, handle_chinese_chars: bool, strip_accents: bool, lowercase: bool
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, str], ...], tuple[int, ...]]:
    """(deleted code point ranges, sorted per-character replacements, padded CJK code points)."""
    from tokenizers import normalizers  # only needed to build, not to run, the graph

    def bert(clean: bool, chinese: bool, strip: bool, lower: bool) -> Any:
        return normalizers.BertNormalizer(
            clean_text=clean, handle_chinese_chars=chinese, strip_accents=strip, lowercase=lower
        ).normalize_str

    # clean_text runs first in the Rust normalizer and only deletes characters or maps whitespace
    # to a space; the later steps are per character too (NFD aside, see module docstring), so the
    # whole normalizer is the composition of the two probes below.
    cleaned = _changed_chars(bert(True, False, False, False), "a") if clean_text else {}
    rest = _changed_chars(bert(False, handle_chinese_chars, strip_accents, lowercase), "\x01")
    deleted = sorted(c for c, out in cleaned.items() if out == "")
    replacements: dict[int, str] = {c: out for c, out in cleaned.items() if out != ""}
    cjk: list[int] = []
    for c, out in rest.items():
        if c in replacements or (cleaned.get(c) == ""):
            continue
        if handle_chinese_chars and len(out) >= 3 and out[0] == " " and out[-1] == " ":
            cjk.append(c)
            out = out[1:-1]
            if out == chr(c):
                continue
        replacements[c] = out
    return _to_ranges(deleted), tuple(sorted(replacements.items())), tuple(sorted(cjk))


@functools.lru_cache(maxsize=1)
def _pre_tokenizer_classes() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(whitespace, punctuation) code points of the Rust BertPreTokenizer."""
    from tokenizers import pre_tokenizers

    sep = "a"
    pre_tokenize = pre_tokenizers.BertPreTokenizer().pre_tokenize_str
    if pre_tokenize(sep) != [(sep, (0, 1))]:
        raise RuntimeError("probing the Hugging Face pre-tokenizer failed: separator was split")
    joined = sep + sep.join(c for c in _all_chars() if c != sep) + sep
    covered = bytearray(len(joined))
    punctuation = set()
    for word, (start, end) in pre_tokenize(joined):
        covered[start:end] = b"\x01" * (end - start)
        # Every character sits between two separators, so only an isolated one stands alone.
        if len(word) == 1 and word != sep:
            punctuation.add(ord(word))
    whitespace = {ord(joined[m.start()]) for m in re.finditer(b"\x00", bytes(covered))}
    return tuple(sorted(whitespace)), tuple(sorted(punctuation))


def _to_ranges(code_points: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Sorted code points -> inclusive (first, last) runs."""
    ranges: list[tuple[int, int]] = []
    for c in code_points:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return tuple(ranges)


def _regex_class(code_points: Sequence[int]) -> str:
    """An RE2 character class for the code points ('' when empty)."""
    if not code_points:
        return ""
    parts = [
        f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}"
        for a, b in _to_ranges(sorted(set(code_points)))
    ]
    return "[" + "".join(parts) + "]"


def _regex_literal(text: str) -> str:
    return "".join(f"\\x{{{ord(ch):x}}}" for ch in text)


def _alternation(contents: Sequence[str]) -> str:
    # RE2 takes the first alternative that matches at the leftmost position; longest first gives
    # the leftmost-longest match of the Rust Aho-Corasick matcher.
    ordered = sorted(contents, key=lambda s: (-len(s), s))
    return "|".join(_regex_literal(c) for c in ordered)


# ----------------------------------------------------------------------------------------------
# Reading a Hugging Face tokenizer.


def _template_from_post_processor(
    post: Mapping[str, Any] | None, name: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(single, pair) templates as [{"sequence": 0|1, "type_id"} | {"special_ids", "type_id"}]."""
    kind = (post or {}).get("type")
    if kind == "BertProcessing":
        cls_id, sep_id = int(post["cls"][1]), int(post["sep"][1])
        single = [
            {"special_ids": [cls_id], "type_id": 0},
            {"sequence": 0, "type_id": 0},
            {"special_ids": [sep_id], "type_id": 0},
        ]
        pair = single + [{"sequence": 1, "type_id": 1}, {"special_ids": [sep_id], "type_id": 1}]
        return single, pair
    if kind == "TemplateProcessing":
        specials = post.get("special_tokens", {})

        def convert(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for item in items:
                if "Sequence" in item:
                    seq = item["Sequence"]
                    index = 0 if seq["id"] == "A" else 1
                    out.append({"sequence": index, "type_id": seq["type_id"]})
                else:
                    tok = item["SpecialToken"]
                    ids = [int(i) for i in specials[tok["id"]]["ids"]]
                    out.append({"special_ids": ids, "type_id": tok["type_id"]})
            return out

        return convert(post["single"]), convert(post["pair"])
    raise ModelError(
        f"{name}: in-graph tokenization supports BERT WordPiece tokenizers only; "
        f"post-processor {kind or 'None'} is not supported (expected BertProcessing or "
        "TemplateProcessing)"
    )


def _type_name(component: Mapping[str, Any] | None) -> str:
    return str((component or {}).get("type"))


# ----------------------------------------------------------------------------------------------


class GraphBertTokenizer(tf.Module):
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
        if unk_token not in vocab:
            raise ModelError(f"tokenizer vocabulary has no unknown token {unk_token!r}")
        for side_name, side in (("padding_side", padding_side),
                                ("truncation_side", truncation_side)):
            if side not in _SUPPORTED_SIDES:
                raise ConfigError(f"{side_name} must be 'right' or 'left', got {side!r}")
        for token in added_tokens:
            if token.get("single_word"):
                raise ModelError(
                    f"added token {token['content']!r} has single_word=True, which in-graph "
                    "tokenization does not support"
                )
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

        # Normalizer, as measured from `tokenizers` (see module docstring).
        strip = lowercase if strip_accents is None else bool(strip_accents)
        deleted, replacements, cjk = _normalizer_tables(
            bool(clean_text), bool(handle_chinese_chars), strip, bool(lowercase)
        )
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
        self._raw_added = [
            (t["content"], int(t["id"])) for t in added_tokens if not t.get("normalized")
        ]
        self._normalized_added = [
            (self._normalize_py(t["content"]), int(t["id"]))
            for t in added_tokens if t.get("normalized")
        ]

        # tf-text's regex_split cuts strings at U+0000, so NUL becomes U+0001 first; that is only
        # exact where both characters behave alike and appear in no token (always so for BERT).
        def in_ranges(c: int) -> bool:
            return any(a <= c <= b for a, b in deleted)

        replaced = {c for c, _ in replacements}
        special_classes = set(whitespace) | set(punctuation) | set(cjk)
        contents = [t["content"] for t in added_tokens] + vocab
        self._substitute_nul = (
            in_ranges(0) == in_ranges(1)
            and not {0, 1} & (replaced | special_classes)
            and not any("\x00" in t or "\x01" in t for t in contents)
        )

        self._unk_id = vocab.index(unk_token)
        self._max_chars = int(max_input_chars_per_word)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocab,
            suffix_indicator=continuing_subword_prefix,
            # Hugging Face limits characters, tf-text bytes: never let the byte limit trigger for a
            # word within the character limit (UTF-8 is at most 4 bytes a character).
            max_bytes_per_word=4 * self._max_chars + 4,
            token_out_type=tf.int32,
            unknown_token=unk_token,
            no_pretokenization=True,
        )
        self._vocab_size = len(vocab)

    # ------------------------------------------------------------------------------------------

    @classmethod
    def from_hf_tokenizer(cls, hf_tokenizer: Any, max_seq_length: int) -> "GraphBertTokenizer":
        """Builds the in-graph tokenizer from a transformers ``PreTrainedTokenizerFast``."""
        name = type(hf_tokenizer).__name__
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelError(
                f"{name}: in-graph tokenization supports BERT WordPiece tokenizers only and needs "
                "a fast tokenizer (transformers PreTrainedTokenizerFast)"
            )
        spec = json.loads(backend.to_str())
        normalizer, pre_tokenizer = spec.get("normalizer"), spec.get("pre_tokenizer")
        model = spec["model"]
        if (
            _type_name(normalizer) != "BertNormalizer"
            or _type_name(pre_tokenizer) != "BertPreTokenizer"
            or _type_name(model) != "WordPiece"
        ):
            raise ModelError(
                f"{name}: in-graph tokenization supports BERT WordPiece tokenizers only "
                "(BertNormalizer + BertPreTokenizer + WordPiece), got "
                f"{_type_name(normalizer)} + {_type_name(pre_tokenizer)} + {_type_name(model)}"
            )
        single, pair = _template_from_post_processor(spec.get("post_processor"), name)

        # The WordPiece model's own vocabulary: tokens added later are not WordPiece pieces.
        by_id = sorted((int(i), tok) for tok, i in model["vocab"].items())
        if [i for i, _ in by_id] != list(range(len(by_id))):
            raise ModelError(f"{name}: WordPiece vocabulary ids are not contiguous from 0")

        skip_special = bool(getattr(backend, "encode_special_tokens", False))
        added = [
            t for t in spec.get("added_tokens", [])
            if not (skip_special and t.get("special"))
        ]
        if hf_tokenizer.pad_token_id is None:
            raise ModelError(f"{name}: tokenizer has no pad token, needed to pad batches")

        return cls(
            vocab=[tok for _, tok in by_id],
            max_seq_length=max_seq_length,
            unk_token=model["unk_token"],
            continuing_subword_prefix=model.get("continuing_subword_prefix") or "##",
            max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
            clean_text=bool(normalizer.get("clean_text", True)),
            handle_chinese_chars=bool(normalizer.get("handle_chinese_chars", True)),
            strip_accents=normalizer.get("strip_accents"),
            lowercase=bool(normalizer.get("lowercase", True)),
            single_template=single,
            pair_template=pair,
            added_tokens=added,
            pad_token_id=int(hf_tokenizer.pad_token_id),
            pad_token_type_id=int(getattr(hf_tokenizer, "pad_token_type_id", 0) or 0),
            return_token_type_ids="token_type_ids" in hf_tokenizer.model_input_names,
            padding_side=getattr(hf_tokenizer, "padding_side", "right"),
            truncation_side=getattr(hf_tokenizer, "truncation_side", "right"),
        )

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
            sequences = [self._truncate(s, k) for s, k in zip(sequences, keep)]
            ids, type_ids = self._apply_template(template, sequences, tf.shape(texts)[0])
            return self._pad(ids, type_ids)

    # -- steps ----------------------------------------------------------------------------------

    def _tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] strings -> [batch, (tokens)] int32 ids without special tokens or truncation."""
        pieces = texts
        if self._substitute_nul:
            pieces = tf.strings.regex_replace(pieces, "\\x00", "\x01")
        piece_ids = tf.fill(tf.shape(texts), -1)
        nested_splits = []
        if self._raw_added:
            pieces, piece_ids, splits = self._split_added(pieces, piece_ids, self._raw_added)
            nested_splits.append(splits)
        pieces = self._normalize(pieces)
        if self._normalized_added:
            pieces, piece_ids, splits = self._split_added(pieces, piece_ids, self._normalized_added)
            nested_splits.append(splits)

        tokens = self._wordpiece_pieces(pieces)
        # Added-token pieces tokenized to nothing (empty text); append their id instead.
        added = tf.ragged.boolean_mask(piece_ids[:, None], (piece_ids >= 0)[:, None])
        tokens = tf.concat([tokens, added], axis=1)
        for splits in reversed(nested_splits):
            tokens = tf.RaggedTensor.from_row_splits(tokens, splits, validate=False)
            tokens = tokens.merge_dims(1, 2)
        return tokens

    def _split_added(
        self, texts: tf.Tensor, ids: tf.Tensor, tokens: Sequence[tuple[str, int]]
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Splits the plain pieces (id -1) at added tokens; returns (pieces, ids, row_splits)."""
        tokens = [(content, token_id) for content, token_id in tokens if content]
        if not tokens:
            return texts, ids, tf.range(tf.size(ids, out_type=tf.int64) + 1)
        contents = [content for content, _ in tokens]
        token_ids = [token_id for _, token_id in tokens]
        plain = ids < 0
        pattern = _alternation(contents)
        split = tf_text.regex_split(tf.where(plain, texts, ""), pattern, pattern)
        values = split.flat_values
        equal = tf.equal(values[:, None], tf.constant(list(contents))[None, :])
        which = tf.argmax(tf.cast(equal, tf.int32), axis=1, output_type=tf.int32)
        matched = tf.reduce_any(equal, axis=1)
        values_ids = tf.where(
            matched, tf.gather(tf.constant(list(token_ids), tf.int32), which), -1
        )
        # Added-token pieces keep no text (only their id); earlier ones pass through as they are.
        passed = (~plain)[:, None]
        out_texts = tf.concat(
            [
                split.with_flat_values(tf.where(matched, "", values)),
                tf.ragged.boolean_mask(tf.fill([tf.size(ids), 1], ""), passed),
            ],
            axis=1,
        )
        out_ids = tf.concat(
            [split.with_flat_values(values_ids), tf.ragged.boolean_mask(ids[:, None], passed)],
            axis=1,
        )
        return out_texts.flat_values, out_ids.flat_values, out_texts.row_splits

    def _normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The BertNormalizer (without CJK padding, which the split does) on [n] strings."""
        if self._deleted_starts.size == 0 and self._replace_keys.size == 0:
            return texts
        code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        flat = code_points.flat_values
        chars = tf.strings.unicode_encode(flat[:, None], "UTF-8")
        if self._replace_keys.size:
            keys = tf.constant(self._replace_keys)
            index = tf.minimum(tf.searchsorted(keys, flat), self._replace_keys.size - 1)
            hit = tf.equal(tf.gather(keys, index), flat)
            chars = tf.where(hit, tf.gather(tf.constant(self._replace_values), index), chars)
        chars = code_points.with_flat_values(chars)
        if self._deleted_starts.size:
            starts = tf.constant(self._deleted_starts)
            index = tf.searchsorted(starts, flat, side="right") - 1
            inside = (index >= 0) & (
                flat <= tf.gather(tf.constant(self._deleted_ends), tf.maximum(index, 0))
            )
            chars = tf.ragged.boolean_mask(chars, code_points.with_flat_values(~inside))
        return tf.strings.reduce_join(chars, axis=1)

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

    def _truncate(self, ids: tf.RaggedTensor, keep: tf.Tensor) -> tf.RaggedTensor:
        positions = tf.ragged.range(ids.row_lengths())
        if self._settings["truncation_side"] == "right":
            mask = positions < keep[:, None]
        else:
            mask = positions >= (ids.row_lengths() - keep)[:, None]
        return tf.ragged.boolean_mask(ids, mask)

    def _apply_template(
        self, template: Sequence[Mapping[str, Any]], sequences: Sequence[tf.RaggedTensor],
        batch_size: tf.Tensor,
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        ids_parts, type_parts = [], []
        for item in template:
            if "sequence" in item:
                part = sequences[item["sequence"]]
            else:
                special = tf.constant([item["special_ids"]], tf.int32)
                part = tf.RaggedTensor.from_tensor(tf.tile(special, [batch_size, 1]))
            ids_parts.append(part)
            type_parts.append(tf.ones_like(part) * item["type_id"])
        return tf.concat(ids_parts, axis=1), tf.concat(type_parts, axis=1)

    def _pad(self, ids: tf.RaggedTensor, type_ids: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        outputs = {
            "input_ids": ids.to_tensor(default_value=self._settings["pad_token_id"]),
            "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
        }
        if self._settings["return_token_type_ids"]:
            outputs["token_type_ids"] = type_ids.to_tensor(
                default_value=self._settings["pad_token_type_id"]
            )
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


def _longest_first(n1: tf.Tensor, n2: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-row lengths to keep, as the Rust ``truncate_encodings`` LongestFirst strategy.

    With the shorter length s and the longer l: l keeps max(s, budget - s) (or s when s alone is
    over budget); if that is still over budget the shorter keeps budget // 2 and the longer
    budget // 2 + budget % 2. Rows within budget come out with limits >= their lengths.
    """
    swap = n1 > n2
    short = tf.minimum(n1, n2)
    budget_t = tf.constant(budget, n1.dtype)
    long_keep = tf.where(short > budget_t, short, tf.maximum(short, budget_t - short))
    over = short + long_keep > budget_t
    short_keep = tf.where(over, budget_t // 2, short)
    long_keep = tf.where(over, budget_t // 2 + budget_t % 2, long_keep)
    return tf.where(swap, long_keep, short_keep), tf.where(swap, short_keep, long_keep)
