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
* :meth:`~GraphBertTokenizer.encode_windows`: the same, long texts split into overlapping windows
  (``return_overflowing_tokens=True`` with a ``stride``) instead of truncated;
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

Offsets follow from the same character tables: every normalized byte is produced by one original
character (deleted characters produce none, an expansion such as lowercase ``İ`` -> ``i̇``
several), so a byte -> code point map travels with the normalized text, and a token spans from
the source of its first byte to the source of its last byte plus one, as Hugging Face's
alignments give.
Characters deleted at a token's edge (a combining mark after ``cafe``) are therefore outside it,
those inside it within it. Windows follow the Rust ``Encoding::truncate`` with a stride.

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
* A window ``stride`` must be smaller than the room a window has for the sequence it cuts (for
  QA: ``max_seq_length - max_query_length - 3``), checked when the graph is built
  (:class:`~tfbert.errors.ConfigError`); Hugging Face checks (and panics) only when a sequence
  actually overflows.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Mapping, NamedTuple, Sequence

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
# Graph helpers.


class _Pieces(NamedTuple):
    """Flat [n] pieces of text on their way to tokens.

    ``ids`` is the added token's id (-1 for plain text); ``starts``/``ends`` are code point
    offsets into the original string: where a plain piece's text starts, an added token's span;
    ``bases`` is where a normalized piece's bytes start in the byte -> code point map.
    """

    texts: tf.Tensor
    ids: tf.Tensor
    starts: tf.Tensor
    ends: tf.Tensor
    bases: tf.Tensor


class _Tokens(NamedTuple):
    """Word pieces of a batch of strings, each [batch, (tokens)] int32 with shared row splits."""

    ids: tf.RaggedTensor
    starts: tf.RaggedTensor
    ends: tf.RaggedTensor
    word_ids: tf.RaggedTensor


class _Windows(NamedTuple):
    """Windows over token sequences: the example each comes from (int32) and its token range
    ``[starts, stops)`` in that example's sequence (int64), all ``[windows]``."""

    examples: tf.Tensor
    starts: tf.Tensor
    stops: tf.Tensor


def _channels(tokens: _Tokens) -> dict[str, tf.RaggedTensor]:
    """Tokens as the ragged channels the template and padding steps take."""
    return {
        "input_ids": tokens.ids,
        "offsets_start": tokens.starts,
        "offsets_end": tokens.ends,
        "word_ids": tokens.word_ids,
    }


def _take_windows(
    sequence: Mapping[str, tf.RaggedTensor], windows: _Windows
) -> dict[str, tf.RaggedTensor]:
    """[batch, (tokens)] channels -> [windows, (tokens)]: each window's range of its example."""
    bases = tf.gather(sequence["input_ids"].row_starts(), windows.examples)
    index = tf.ragged.range(bases + windows.starts, bases + windows.stops)
    return {
        name: index.with_flat_values(tf.gather(value.values, index.flat_values))
        for name, value in sequence.items()
    }


def _check_stride(stride: int, room: int, room_text: str) -> None:
    # The Rust tokenizer panics on such a stride when a sequence overflows; fail early instead.
    if not 0 <= stride < room:
        raise ConfigError(
            f"stride {stride} must be at least 0 and smaller than {room_text}"
        )


def _lookup(values: tf.Tensor, index: tf.Tensor | tf.RaggedTensor) -> tf.Tensor | tf.RaggedTensor:
    """``values[index]`` for a dense or ragged index.

    Indices outside ``values`` are clipped: they only occur in `tf.where` branches whose results
    are thrown away, and tf.gather would fail on them.
    """
    if isinstance(index, tf.RaggedTensor):
        return index.with_flat_values(_lookup(values, index.flat_values))
    padded = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)
    return tf.gather(padded, tf.clip_by_value(index, 0, tf.size(values, out_type=index.dtype)))


def valid_utf8(texts: tf.Tensor) -> tf.Tensor:
    """Strings with every ill-formed UTF-8 sequence replaced by U+FFFD; valid text is unchanged.

    The replacement follows the Unicode "maximal subpart" rule, one U+FFFD for each maximal
    invalid subsequence, which is what Python's ``bytes.decode("utf-8", errors="replace")`` does
    (tests check the two agree on random bytes). Every later step, and every offset, works on this
    decoded text.
    """
    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def _count_chars(texts: tf.Tensor, byte_offsets: tf.Tensor) -> tf.Tensor:
    """Number of code points before each byte offset in the (same-shaped) texts, int64."""
    prefixes = tf.strings.substr(texts, tf.zeros_like(byte_offsets), byte_offsets)
    return tf.cast(tf.strings.length(prefixes, unit="UTF8_CHAR"), tf.int64)


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
        padding. Texts over ``max_seq_length`` lose their end; :meth:`encode_windows` keeps it.
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

    def encode_windows(self, texts: tf.Tensor, stride: int) -> dict[str, tf.Tensor]:
        """``[batch]`` strings -> overlapping windows of at most ``max_seq_length`` tokens.

        As Hugging Face's ``tokenizer(texts, truncation=True, max_length=max_seq_length,
        stride=stride, return_overflowing_tokens=True, padding=True)``: a text within
        ``max_seq_length`` is one window; a longer one is cut into windows whose word pieces
        overlap by `stride`. Outputs are those of :meth:`encode_with_offsets`, one row per window
        (``[windows, longest]``), and ``window_to_example`` (int32 ``[windows]``, the text each
        window comes from; windows of a text are consecutive and in order).
        """
        room = self.max_seq_length - self._num_added_single
        _check_stride(stride, room, f"the {room} tokens a window has room for "
                                    f"(max_seq_length {self.max_seq_length} - "
                                    f"{self._num_added_single} special tokens)")
        with tf.name_scope("graph_bert_tokenizer"):
            texts = tf.convert_to_tensor(texts, dtype=tf.string)
            tokens = self._tokenize_with_offsets(texts)
            lengths = tokens.ids.row_lengths()
            budgets = tf.fill(tf.shape(lengths), tf.constant(room, tf.int64))
            windows = self._window_ranges(lengths, budgets, stride)
            sequence = _take_windows(_channels(tokens), windows)
            outputs = self._pad(self._apply_template(
                self._settings["single_template"], [sequence], tf.size(windows.examples)
            ))
            outputs["window_to_example"] = windows.examples
            return outputs

    def encode_qa_windows(
        self, questions: tf.Tensor, contexts: tf.Tensor, doc_stride: int,
        max_query_length: int = 64,
    ) -> dict[str, tf.Tensor]:
        """(question, context) ``[batch]`` strings -> extractive QA windows ``[windows, longest]``.

        Each question is cut to its first `max_query_length` word pieces; then, as Hugging Face's
        ``tokenizer(questions, contexts, truncation="only_second", max_length=max_seq_length,
        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
        padding=True)``, each window is ``[CLS] question [SEP] context chunk [SEP]`` with
        consecutive chunks of a context overlapping by `doc_stride` word pieces.

        Outputs (int32): ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the model
        has them), ``offsets_start``/``offsets_end`` (code point span in the context, -1 for
        question, special and padding tokens), all ``[windows, longest]``, and
        ``window_to_example`` ``[windows]`` (Hugging Face's ``overflow_to_sample_mapping``).
        """
        if max_query_length < 1:
            raise ConfigError(f"max_query_length must be at least 1, got {max_query_length}")
        room = self.max_seq_length - self._num_added_pair - max_query_length
        if room < 1:
            raise ConfigError(
                f"max_seq_length {self.max_seq_length} leaves no room for the context after a "
                f"question of max_query_length {max_query_length} and {self._num_added_pair} "
                "special tokens"
            )
        _check_stride(doc_stride, room, f"the {room} context tokens a window has room for "
                                        f"(max_seq_length {self.max_seq_length} - "
                                        f"max_query_length {max_query_length} - "
                                        f"{self._num_added_pair} special tokens)")
        with tf.name_scope("graph_bert_tokenizer"):
            questions = tf.convert_to_tensor(questions, dtype=tf.string)
            contexts = tf.convert_to_tensor(contexts, dtype=tf.string)
            with tf.control_dependencies([
                tf.debugging.assert_equal(
                    tf.size(questions), tf.size(contexts),
                    message="questions and contexts must have the same batch size",
                )
            ]):
                question_ids = self._tokenize(questions)[:, :max_query_length]
            context = self._tokenize_with_offsets(contexts)
            # The question is never cut further: the context gets what the question leaves.
            budgets = (self.max_seq_length - self._num_added_pair) - question_ids.row_lengths()
            windows = self._window_ranges(context.ids.row_lengths(), budgets, doc_stride)
            context_part = _take_windows(
                {"input_ids": context.ids, "offsets_start": context.starts,
                 "offsets_end": context.ends},
                windows,
            )
            question_part = tf.gather(question_ids, windows.examples)
            not_context = tf.ones_like(question_part) * -1
            question_part = {"input_ids": question_part, "offsets_start": not_context,
                             "offsets_end": not_context}
            outputs = self._pad(self._apply_template(
                self._settings["pair_template"], [question_part, context_part],
                tf.size(windows.examples),
            ))
            outputs["window_to_example"] = windows.examples
            return outputs

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

    def _tokenize_with_offsets(self, texts: tf.Tensor) -> _Tokens:
        """Like :meth:`_tokenize`, also giving each token's code point span and word index.

        The same steps as :meth:`_tokenize`, each also tracking where its pieces come from: raw
        pieces by their first code point, normalized text by a map from each normalized byte to
        the original code point it was produced from (the normalizer works character by
        character). A token's span runs from the source of its first byte to the source of its
        last byte plus one, which is how Hugging Face converts normalized offsets back.
        """
        zeros = tf.zeros(tf.shape(texts), tf.int64)
        pieces = _Pieces(self._prepare(texts), tf.fill(tf.shape(texts), -1),
                         starts=zeros, ends=zeros, bases=zeros)
        nested_splits = []
        if self._raw_added:
            pieces, splits = self._split_raw_added(pieces)
            nested_splits.append(splits)
        pieces, char_map = self._normalize_with_map(pieces)
        if self._normalized_added:
            pieces, splits = self._split_normalized_added(pieces, char_map)
            nested_splits.append(splits)

        word_splits, words = self._words_with_offsets(pieces)
        ids, starts, ends = self._word_tokens_with_offsets(words, char_map)
        # [words, (tokens)] -> [batch, (words), (tokens)]: word_ids come from the word level.
        nested = tf.RaggedTensor.from_row_splits(ids, word_splits, validate=False)
        for splits in reversed(nested_splits):
            nested = tf.RaggedTensor.from_row_splits(nested, splits, validate=False)
            nested = nested.merge_dims(1, 2)
        word_index = tf.cast(tf.ragged.range(nested.row_lengths()).flat_values, tf.int32)
        word_ids = tf.repeat(word_index, nested.values.row_lengths())
        token_ids = nested.merge_dims(1, 2)
        return _Tokens(
            ids=token_ids,
            starts=token_ids.with_flat_values(tf.cast(starts.flat_values, tf.int32)),
            ends=token_ids.with_flat_values(tf.cast(ends.flat_values, tf.int32)),
            word_ids=token_ids.with_flat_values(word_ids),
        )

    def _prepare(self, texts: tf.Tensor) -> tf.Tensor:
        """Valid UTF-8 (see :func:`valid_utf8`), NUL substituted where that is exact."""
        # Byte-level steps (the added-token split, character counting) would otherwise see
        # ill-formed sequences differently from the code point decoding that gives offsets.
        texts = valid_utf8(texts)
        if self._substitute_nul:
            return tf.strings.regex_replace(texts, "\\x00", "\x01")
        return texts

    def _split_added(
        self, texts: tf.Tensor, ids: tf.Tensor, tokens: Sequence[tuple[str, int]]
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Splits the plain pieces (id -1) at added tokens.

        Returns (pieces, ids, row_splits, byte starts, byte ends), the byte span of each new
        piece in its parent (0, 0 for pieces passed through).
        """
        tokens = [(content, token_id) for content, token_id in tokens if content]
        if not tokens:
            zeros = tf.zeros(tf.shape(ids), tf.int64)
            return texts, ids, tf.range(tf.size(ids, out_type=tf.int64) + 1), zeros, zeros
        contents = [content for content, _ in tokens]
        token_ids = [token_id for _, token_id in tokens]
        plain = ids < 0
        pattern = _alternation(contents)
        split, begins, ends = tf_text.regex_split_with_offsets(
            tf.where(plain, texts, ""), pattern, pattern
        )
        values = split.flat_values
        equal = tf.equal(values[:, None], tf.constant(list(contents))[None, :])
        which = tf.argmax(tf.cast(equal, tf.int32), axis=1, output_type=tf.int32)
        matched = tf.reduce_any(equal, axis=1)
        values_ids = tf.where(
            matched, tf.gather(tf.constant(list(token_ids), tf.int32), which), -1
        )
        # Added-token pieces keep no text (only their id); earlier ones pass through as they are.
        passed = (~plain)[:, None]
        passed_zeros = tf.ragged.boolean_mask(tf.zeros([tf.size(ids), 1], tf.int64), passed)
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
        out_begins = tf.concat([begins, passed_zeros], axis=1)
        out_ends = tf.concat([ends, passed_zeros], axis=1)
        return (out_texts.flat_values, out_ids.flat_values, out_texts.row_splits,
                out_begins.flat_values, out_ends.flat_values)

    def _normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The BertNormalizer (without CJK padding, which the split does) on [n] strings."""
        if self._deleted_starts.size == 0 and self._replace_keys.size == 0:
            return texts
        return tf.strings.reduce_join(self._normalized_chars(texts), axis=1)

    def _normalized_chars(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[n] strings -> [n, (characters)]: the normalizer's output for each input character
        ('' for deleted ones)."""
        code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        flat = code_points.flat_values
        chars = tf.strings.unicode_encode(flat[:, None], "UTF-8")
        if self._replace_keys.size:
            keys = tf.constant(self._replace_keys)
            index = tf.minimum(tf.searchsorted(keys, flat), self._replace_keys.size - 1)
            hit = tf.equal(tf.gather(keys, index), flat)
            chars = tf.where(hit, tf.gather(tf.constant(self._replace_values), index), chars)
        if self._deleted_starts.size:
            starts = tf.constant(self._deleted_starts)
            index = tf.searchsorted(starts, flat, side="right") - 1
            inside = (index >= 0) & (
                flat <= tf.gather(tf.constant(self._deleted_ends), tf.maximum(index, 0))
            )
            chars = tf.where(inside, "", chars)
        return code_points.with_flat_values(chars)

    def _split_raw_added(self, pieces: _Pieces) -> tuple[_Pieces, tf.Tensor]:
        """Splits whole raw texts at raw added tokens; returns (pieces, row_splits)."""
        texts, ids, splits, byte_starts, byte_ends = self._split_added(
            pieces.texts, pieces.ids, self._raw_added
        )
        parents = tf.gather(pieces.texts, tf.ragged.row_splits_to_segment_ids(splits))
        starts, ends = _count_chars(parents, byte_starts), _count_chars(parents, byte_ends)
        return _Pieces(texts, ids, starts, ends, tf.zeros_like(starts)), splits

    def _normalize_with_map(self, pieces: _Pieces) -> tuple[_Pieces, tf.Tensor]:
        """Normalizes the pieces; returns them with the byte -> original code point map.

        Each piece's normalized bytes are ``char_map[base:base + length]``; a plain piece's
        characters follow each other from its ``start`` code point.
        """
        chars = self._normalized_chars(pieces.texts)
        sources = tf.ragged.range(chars.row_lengths()) + pieces.starts[:, None]
        byte_lengths = chars.with_flat_values(
            tf.strings.length(chars.flat_values, unit="BYTE")
        )
        char_map = tf.repeat(sources.flat_values, byte_lengths.flat_values)
        piece_bytes = tf.reduce_sum(tf.cast(byte_lengths, tf.int64), axis=1)
        bases = tf.cumsum(piece_bytes, exclusive=True)
        return pieces._replace(texts=tf.strings.reduce_join(chars, axis=1), bases=bases), char_map

    def _split_normalized_added(
        self, pieces: _Pieces, char_map: tf.Tensor
    ) -> tuple[_Pieces, tf.Tensor]:
        """Splits normalized pieces at normalized added tokens; returns (pieces, row_splits)."""
        texts, ids, splits, byte_starts, byte_ends = self._split_added(
            pieces.texts, pieces.ids, self._normalized_added
        )
        parent = tf.ragged.row_splits_to_segment_ids(splits)
        parent_base = tf.gather(pieces.bases, parent)
        # Tokens found here get the span of their normalized bytes; earlier ones keep theirs.
        found = (ids >= 0) & (tf.gather(pieces.ids, parent) < 0)
        starts = tf.where(
            found, _lookup(char_map, parent_base + byte_starts), tf.gather(pieces.starts, parent)
        )
        ends = tf.where(
            found, _lookup(char_map, parent_base + byte_ends - 1) + 1,
            tf.gather(pieces.ends, parent),
        )
        return _Pieces(texts, ids, starts, ends, parent_base + byte_starts), splits

    def _words_with_offsets(self, pieces: _Pieces) -> tuple[tf.Tensor, _Pieces]:
        """Final pieces -> (row_splits, words): the pre-tokenizer's splits of the plain pieces
        and one word for each added token (its text empty, its id and span kept)."""
        split, begins, _ = tf_text.regex_split_with_offsets(
            pieces.texts, self._split_pattern, self._keep_pattern
        )
        is_added = (pieces.ids >= 0)[:, None]
        texts = tf.concat(
            [split, tf.ragged.boolean_mask(tf.fill([tf.size(pieces.ids), 1], ""), is_added)],
            axis=1,
        )
        # A piece has either pre-tokenizer words or one added token, never both.
        begins = tf.concat(
            [begins, tf.ragged.boolean_mask(tf.zeros([tf.size(pieces.ids), 1], tf.int64),
                                            is_added)],
            axis=1,
        ).flat_values
        parent = texts.value_rowids()
        return texts.row_splits, _Pieces(
            texts=texts.flat_values,
            ids=tf.gather(pieces.ids, parent),
            starts=tf.gather(pieces.starts, parent),
            ends=tf.gather(pieces.ends, parent),
            bases=tf.gather(pieces.bases, parent) + begins,
        )

    def _word_tokens_with_offsets(
        self, words: _Pieces, char_map: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """Words -> [words, (tokens)] (ids, code point starts, code point ends)."""
        flat = words.texts
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > self._max_chars
        ids, byte_begins, byte_ends = self._wordpiece.tokenize_with_offsets(
            tf.where(too_long, "", flat)
        )
        bases = words.bases[:, None]
        starts = _lookup(char_map, tf.cast(byte_begins, tf.int64) + bases)
        ends = _lookup(char_map, tf.cast(byte_ends, tf.int64) + bases - 1) + 1
        # Words over the character limit are one [UNK] spanning the word; added tokens one token.
        is_added = words.ids >= 0
        word_end = words.bases + tf.cast(tf.strings.length(flat, unit="BYTE"), tf.int64) - 1
        extra = (too_long | is_added)[:, None]
        extra_ids = tf.where(is_added, words.ids, self._unk_id)
        extra_starts = tf.where(is_added, words.starts, _lookup(char_map, words.bases))
        extra_ends = tf.where(is_added, words.ends, _lookup(char_map, word_end) + 1)

        def append(tokens: tf.RaggedTensor, values: tf.Tensor) -> tf.RaggedTensor:
            return tf.concat([tokens, tf.ragged.boolean_mask(values[:, None], extra)], axis=1)

        return (append(ids, extra_ids), append(starts, extra_starts), append(ends, extra_ends))

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

    def _window_ranges(self, lengths: tf.Tensor, budgets: tf.Tensor, stride: int) -> _Windows:
        """Token ranges of the windows of sequences with `lengths` tokens, as the Rust
        ``Encoding::truncate`` with a stride.

        A sequence within its budget is one window. A longer one is cut into windows of `budget`
        tokens whose starts are ``budget - stride`` apart, counted from its start (right
        truncation: the last window is shorter) or from its end (left truncation: windows come
        last chunk first, the final one is shorter).
        """
        steps = tf.maximum(budgets - stride, 1)
        over = tf.maximum(lengths - budgets, 0)
        counts = 1 + (over + steps - 1) // steps
        examples = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), counts)
        k = tf.ragged.range(counts).flat_values
        length, budget, step = (tf.gather(x, examples) for x in (lengths, budgets, steps))
        if self._settings["truncation_side"] == "right":
            starts = k * step
            stops = tf.minimum(starts + budget, length)
        else:
            stops = length - k * step
            starts = tf.maximum(stops - budget, 0)
        return _Windows(tf.cast(examples, tf.int32), starts, stops)

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
