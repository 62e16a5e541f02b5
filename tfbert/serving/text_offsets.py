"""Word pieces with character offsets: the normalizer and pre-tokenizer in the graph, tracking where
each piece came from in the original string (Hugging Face's ``offset_mapping`` and ``word_ids()``).

`OffsetsMixin` holds `GraphBertTokenizer`'s offset-tracking steps: added tokens split off the raw
and the normalized text, normalization with a byte -> code point map, words, word pieces.

Offsets follow from the character tables of `tfbert.serving.normalization_tables`: every
normalized byte is produced by one original character (deleted characters produce none, an
expansion such as lowercase ``İ`` -> ``i̇`` several), so a byte -> code point map travels with the
normalized text, and a token spans from the source of its first byte to the source of its last
byte plus one, as Hugging Face's alignments give. Characters deleted at a token's edge (a
combining mark after ``cafe``) are therefore outside it, those inside it within it.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from tfbert.serving.normalization_tables import _alternation


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


def _channels(tokens: _Tokens) -> dict[str, tf.RaggedTensor]:
    """Tokens as the ragged channels the template and padding steps take."""
    return {
        "input_ids": tokens.ids,
        "offsets_start": tokens.starts,
        "offsets_end": tokens.ends,
        "word_ids": tokens.word_ids,
    }


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


class OffsetsMixin:
    """`GraphBertTokenizer`'s steps from raw strings to word pieces with offsets."""

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
