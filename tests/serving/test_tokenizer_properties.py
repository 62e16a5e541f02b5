"""Property-based tests: on random Unicode text the in-graph tokenizer gives the Hugging Face fast
tokenizer's ids, offsets and word ids exactly, for the bundled uncased vocabulary and a cased one;
on random bytes it decodes as Python's ``bytes.decode("utf-8", errors="replace")``.

Seeded (``derandomize=True``): every run draws the same examples. Each example is a batch of
texts, so one graph call checks many; each test counts what it checked and requires at least
``MIN_TEXTS``. One class of text is excluded for accent-stripping tokenizers, the one documented
in ``graph_tokenizer``'s module docstring (see :func:`reorders_a_kept_mark`).
"""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Callable

import pytest
import tensorflow as tf
import transformers
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tokenizers import normalizers

from tfbert.serving.graph_tokenizer import GraphBertTokenizer, valid_utf8

MIN_TEXTS = 2000
# Larger batches overrun hypothesis's per-example data limit and are silently dropped (which is
# why the tests count what they checked).
BATCH = 40
EXAMPLES = 60  # x BATCH texts = 2,400 per test

SETTINGS = settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: it takes minutes on batches of long texts, and the failure message already
    # names the text that differs.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def _chars(*ranges: tuple[int, int]) -> st.SearchStrategy[str]:
    return st.one_of(*(st.characters(min_codepoint=a, max_codepoint=b, codec="utf-8")
                       for a, b in ranges))


# Character families the tokenizer treats differently. A family is chosen first, then a character
# in it: hypothesis merges a union of character strategies into one range biased to low code
# points, in which small families (spacing marks, CJK) would hardly ever be drawn.
FAMILIES = [
    st.characters(codec="utf-8"),  # any scalar value, all 17 planes
    st.characters(min_codepoint=0x10000, codec="utf-8"),  # astral planes only, incl. 15/16 PUA
    st.characters(categories=["Mn"]),  # combining marks: non-spacing,
    st.characters(categories=["Mc", "Me"]),  # spacing and enclosing (rarer, so drawn apart)
    st.characters(categories=["Cc", "Cf", "Co", "Cn"], codec="utf-8"),  # control, format, unassigned
    st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\u00ad\ufffd\x00\x7f\x85"),  # zero-width & co
    st.characters(categories=["Zs", "Zl", "Zp"]) | st.sampled_from("\t\n\r\x0b\x0c"),
    st.characters(categories=["P", "S"]),  # punctuation and symbols
    _chars((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF),
           (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x1100, 0x11FF), (0xFF00, 0xFFEF)),  # CJK
    _chars((0x0590, 0x06FF), (0x0750, 0x077F), (0xFB1D, 0xFDFF), (0xFE70, 0xFEFF),
           (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069)),  # right-to-left and bidi marks
    _chars((0x1F300, 0x1FAFF), (0x1F1E6, 0x1F1FF), (0x1F3FB, 0x1F3FF), (0xFE0E, 0xFE0F),
           (0x2600, 0x27BF)),  # emoji, flags' regional indicators, skin tones, variation selectors
    _chars((0x41, 0x5A), (0x61, 0x7A), (0x30, 0x39), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF),
           (0x1E00, 0x1EFF), (0x130, 0x131), (0x1E9E, 0x1E9E)),  # letters with case and accents
]
CHARACTERS = st.sampled_from(FAMILIES).flatmap(lambda family: family)
WORD = st.text(CHARACTERS, min_size=1, max_size=8)
LETTERS = st.text(st.sampled_from("abcdeéÉxyzQ"), min_size=1, max_size=6)  # real word pieces
LONG_WORD = st.builds(lambda c, n: c * n, st.sampled_from("aÉж😀x\u0301"), st.integers(95, 105))
SPECIAL = st.sampled_from(["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[mask]"])
SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\u3000", "\u00a0"])
# Weighted by repetition; sampled_from + flatmap, as above, keeps the weights as written.
PARTS = [WORD] * 6 + [LETTERS] * 3 + [SPACE] * 4 + [SPECIAL, LONG_WORD, st.just("")]
TEXT = st.lists(st.sampled_from(PARTS).flatmap(lambda part: part), min_size=1, max_size=12).map("".join)

# Bytes that are mostly not UTF-8, mixed with pieces of valid and almost valid sequences
# (truncated multi-byte characters, encoded surrogates, overlong forms, values above U+10FFFF).
BYTE_PIECE = st.one_of(
    st.binary(min_size=1, max_size=6),
    TEXT.map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                     b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
                     b"\x80", b"\xbf", b"\xfe", b"\xff", b"\x00", b" [SEP] ", b"\xef\xbf\xbd"]),
)
BYTES = st.lists(BYTE_PIECE, min_size=1, max_size=8).map(b"".join)


_CLEAN_TEXT = normalizers.BertNormalizer(
    clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False
)


def reorders_a_kept_mark(text: str) -> bool:
    """Whether NFD's canonical reordering moves a combining mark that accent stripping keeps.

    The graph decomposes character by character and strips non-spacing marks (Mn), so it never
    reorders; Hugging Face reorders, and its offsets then give each mark of the run the position
    of the mark that stood there before. Only marks that survive stripping can show it: spacing
    marks with a combining class (U+302E/U+302F, U+1D165.., some viramas). Documented in
    graph_tokenizer's module docstring; :func:`test_documented_reordering_difference` pins it.
    """
    # NFD runs after clean_text, whose deletions (NUL, zero-width joiner, ...) can bring marks
    # together.
    cleaned = _CLEAN_TEXT.normalize_str(text)
    run: list[str] = []  # the current run of marks with a combining class, which NFD sorts
    for c in [c for ch in cleaned for c in unicodedata.normalize("NFD", ch)] + ["."]:
        if unicodedata.combining(c):
            run.append(c)
            continue
        for i, a in enumerate(run):
            for b in run[i + 1:]:
                both_stripped = unicodedata.category(a) == unicodedata.category(b) == "Mn"
                if unicodedata.combining(b) < unicodedata.combining(a) and not both_stripped:
                    return True
        run = []
    return False


STRIPPED_TEXT = TEXT.filter(lambda t: not reorders_a_kept_mark(t))
STRIPPED_BYTES = BYTES.filter(lambda b: not reorders_a_kept_mark(b.decode("utf-8", "replace")))


@pytest.fixture(scope="module")
def tokenizers(bundled_dir: Path) -> dict[str, tuple[transformers.PreTrainedTokenizerFast, "Traced"]]:
    hf = {
        "uncased": transformers.AutoTokenizer.from_pretrained(str(bundled_dir)),
        "cased": transformers.BertTokenizerFast(
            vocab_file=str(bundled_dir / "vocab.txt"), do_lower_case=False, strip_accents=False
        ),
    }
    return {name: (tok, Traced(GraphBertTokenizer.from_hf_tokenizer(tok, 32))) for name, tok in hf.items()}


class Traced:
    """The tokenizer's methods as a SavedModel runs them: traced once, then one graph call per batch
    (run eagerly, op by op, each batch takes about 20 times as long), without autograph as the exports
    trace it."""

    def __init__(self, gt: GraphBertTokenizer):
        spec = [tf.TensorSpec([None], tf.string)]
        self.tokenize_with_offsets = tf.function(gt.tokenize_with_offsets, input_signature=spec, autograph=False)
        self.encode_with_offsets = tf.function(gt.encode_with_offsets, input_signature=spec, autograph=False)


def hf_reference(tok: transformers.PreTrainedTokenizerFast, texts: list[str]) -> list[tuple]:
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [(enc["input_ids"][i], [tuple(o) for o in enc["offset_mapping"][i]], enc.word_ids(i))
            for i in range(len(texts))]


def graph_result(gt: Traced, texts: list[str] | list[bytes]) -> list[tuple]:
    ids, starts, ends, word_ids = (r.to_list() for r in gt.tokenize_with_offsets(tf.constant(texts)))
    return [(i, list(zip(s, e)), w) for i, s, e, w in zip(ids, starts, ends, word_ids)]


def assert_same(ours: list[tuple], ref: list[tuple], texts: list) -> None:
    for text, a, b in zip(texts, ours, ref):
        assert a == b, (f"differs for {text!r}\n graph (ids, offsets, word ids) {a}\n"
                        f" HF                             {b}")
    assert len(ours) == len(ref) == len(texts)


def run_counted(strategy: st.SearchStrategy, check: Callable[[list], None]) -> int:
    """Runs `check` on seeded batches drawn from `strategy`; returns how many texts it checked."""
    checked = []

    @SETTINGS
    @given(st.lists(strategy, min_size=BATCH, max_size=BATCH))
    def run(batch: list) -> None:
        check(batch)
        checked.append(len(batch))

    run()
    return sum(checked)


def assert_same_model_inputs(tok: transformers.PreTrainedTokenizerFast, gt: Traced, texts: list[str]) -> None:
    """The padded, truncated [CLS] ... [SEP] encoding with offsets (what NER serving feeds the model)."""
    ours = {k: v.numpy().tolist() for k, v in gt.encode_with_offsets(tf.constant(texts)).items()}
    enc = tok(texts, truncation=True, max_length=32, padding=True, return_offsets_mapping=True)
    for row, text in enumerate(texts):
        special = [w is None for w in enc.word_ids(row)]
        ref = {k: enc[k][row] for k in tok.model_input_names}
        ref["offsets_start"] = [-1 if s else o[0] for s, o in zip(special, enc["offset_mapping"][row])]
        ref["offsets_end"] = [-1 if s else o[1] for s, o in zip(special, enc["offset_mapping"][row])]
        ref["word_ids"] = [-1 if w is None else w for w in enc.word_ids(row)]
        got = {k: ours[k][row] for k in ref}
        assert got == ref, f"model inputs differ for {text!r}"


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_random_unicode_ids_offsets_and_model_inputs_match_hf(tokenizers, name):
    # Both checks on each drawn batch: drawing the texts costs more than checking them.
    tok, gt = tokenizers[name]

    def check(texts: list[str]) -> None:
        assert_same(graph_result(gt, texts), hf_reference(tok, texts), texts)
        assert_same_model_inputs(tok, gt, texts)

    assert run_counted(STRIPPED_TEXT if name == "uncased" else TEXT, check) >= MIN_TEXTS


def test_random_bytes_decode_as_python_and_tokenize_as_hf(tokenizers):
    tok, gt = tokenizers["uncased"]
    cased_tok, cased_gt = tokenizers["cased"]

    def check(raw: list[bytes]) -> None:
        decoded = [b.decode("utf-8", errors="replace") for b in raw]
        assert valid_utf8(tf.constant(raw)).numpy().tolist() == [t.encode("utf-8") for t in decoded]
        assert_same(graph_result(gt, raw), hf_reference(tok, decoded), raw)
        assert_same(graph_result(cased_gt, raw), hf_reference(cased_tok, decoded), raw)

    assert run_counted(STRIPPED_BYTES, check) >= MIN_TEXTS


def test_documented_reordering_difference(tokenizers):
    # U+0314 (non-spacing, class 230) then U+302F (spacing, class 224): NFD swaps them, accent
    # stripping deletes U+0314. Same ids; Hugging Face puts the kept mark at position 0, the
    # graph at its own position 1. If this starts to match, drop the exclusion above.
    text = "\u0314\u302f"
    assert reorders_a_kept_mark(text) and not reorders_a_kept_mark("\u302f\u0314")
    assert reorders_a_kept_mark("\u0314\x00\u200d\u302f")  # clean_text deletes what separates them
    assert not reorders_a_kept_mark("\u0314x\u302f")
    tok, gt = tokenizers["uncased"]
    (ids, offsets, words), = graph_result(gt, [text])
    (ref_ids, ref_offsets, ref_words), = hf_reference(tok, [text])
    assert (ids, words) == (ref_ids, ref_words) == ([tok.unk_token_id], [0])
    assert (offsets, ref_offsets) == ([(1, 2)], [(0, 1)])
    cased_tok, cased_gt = tokenizers["cased"]  # no NFD: no difference
    assert graph_result(cased_gt, [text]) == hf_reference(cased_tok, [text])


def test_strategies_reach_every_family():
    # Guards the strategies themselves: a family that stopped being drawn would make the tests
    # above weaker without failing them.
    texts: list[str] = []

    @SETTINGS
    @given(st.lists(TEXT, min_size=BATCH, max_size=BATCH))
    def collect(batch: list[str]) -> None:
        texts.extend(batch)

    collect()
    chars = set("".join(texts))
    categories = {unicodedata.category(c) for c in chars}
    assert {"Mn", "Mc", "Cc", "Cf", "Zs", "Lo", "So", "Lu", "Ll"} <= categories
    assert any(ord(c) > 0xFFFF for c in chars) and any(ord(c) >= 0xF0000 for c in chars)
    assert any("\u4e00" <= c <= "\u9fff" for c in chars)  # CJK
    assert any(unicodedata.bidirectional(c) in ("R", "AL") for c in chars)  # right-to-left
    assert any(0x1F300 <= ord(c) <= 0x1FAFF for c in chars)  # emoji
    assert {"\u200b", "\u200d"} & chars  # zero-width
    assert any(len(t) > 100 for t in texts) and "" in texts
