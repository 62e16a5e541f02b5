"""In-graph tokenization: ids must equal the Hugging Face fast tokenizer's, also after a SavedModel
round trip in a fresh process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tensorflow as tf
import transformers
from tokenizers import AddedToken

from tfbert.errors import ConfigError, ModelError
from tfbert.serving.graph_tokenizer import GraphBertTokenizer

LONG_PARAGRAPH = " ".join(["The quick brown fox jumps over the lazy dog, again and again."] * 40)

CORPUS = [
    # case and accents
    "Hello, World!",
    "THE QUICK BROWN FOX jumps over the lazy dog.",
    "mIxEd CaSe WoRdS",
    "Café au lait",
    "naïve façade",
    "Ångström unit",
    "Zoë and Chloë",
    "crème brûlée à la mode",
    "e\u0301tude with a combining acute",
    "n\u0303 and a\u0308\u0304 stacked marks",
    "Vietnamese: Tiếng Việt có dấu",
    # punctuation and symbols
    "Wait... what?!?! (really) [yes] {no} <maybe>",
    "--- *** ___ ### @@@ ~~~ $$$ ^^^ ||| \\\\",
    "\"quoted\" 'single' `tick` «guillemets» „low“ ‘curly’",
    "μ ≤ ≥ ÷ ± ° € £ ©",
    "5 µm (micro sign) vs 5 μm (mu)",
    "ℌ ℍ ℕ ™ ℃ 𝐀𝐁𝐂 𝔸𝔹",
    # invisible and control characters
    "zero\u200bwidth space",
    "joiner\u200djoined",
    "soft\u00adhyphen",
    "\ufeffBOM at the start",
    "bell\x07char",
    "nul\x00char",
    "vertical\x0btab and form\x0cfeed",
    "next\x85line",
    "private use \ue000 and \U000f0000",
    "replacement \ufffd char",
    # whitespace
    "tab\tseparated\tvalues",
    "line one\nline two\r\nline three",
    "non\u00a0breaking\u00a0space",
    "ideographic\u3000space",
    "en\u2002em\u2003thin\u2009spaces",
    "line\u2028para\u2029separators",
    # compatibility characters HF does not fold (no NFKC)
    "ＡＢＣ ｆｕｌｌｗｉｄｔｈ １２３",
    "ﬁnancial ﬂow",
    "Straße Fußball ẞ",
    "x² + y³ = z¹ and ½ ¼ ¾",
    # case mapping corner cases
    "İstanbul ıstanbul",
    "ΟΔΟΣ Σίσυφος ὅς",
    "Привет, мир! ЁЖИК",
    # scripts
    "中文分词测试",
    "日本語の文章です。",
    "한국어 문장입니다",
    "mixed中文and English",
    "繁體字與簡體字 \uf900\ufa0e",
    "Arabic: مرحبا بالعالم",
    "Hebrew: שלום עולם",
    "Hindi: नमस्ते दुनिया",
    "Thai: สวัสดีชาวโลก",
    # emoji
    "emoji 😀🎉👍",
    "family 👨‍👩‍👧‍👦 ZWJ sequence",
    "skin tones 👍🏽👋🏿",
    "flags 🇺🇸🇩🇪 and newer 🥲🫠",
    # unknown and very long words (HF: over 100 characters -> [UNK]; tf-text would count bytes)
    "unknownword xyzzyplugh qwertyuiop",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "a" * 100,
    "a" * 101,
    "ab" * 60,
    "é" * 60,
    "é" * 101,
    "ж" * 60,
    "ж" * 101,
    "😀" * 30,
    # empty and blank
    "",
    " ",
    "     ",
    "\t\n \u3000",
    # URLs, emails, numbers
    "https://example.com/path?query=1&b=two#frag",
    "mail me at john.doe+tag@example.co.uk",
    "Call +1 (555) 123-4567 now",
    "3.14159 1,000,000 -42 1e-10 50%",
    # SMS-like text
    "FREE!!! Txt WIN to 80085 £1.50/msg",
    "U dun say so early hor... U c already then say...",
    "Had your mobile 11 months or more? U R entitled to Update to the latest colour mobiles "
    "with camera for Free! Call The Mobile Update Co FREE on 08002986030",
    # special tokens in the raw text (matched case-sensitively before normalization)
    "x [MASK] y",
    "[CLS] already [SEP] here",
    "lower [mask] is not special",
    "glued[SEP]tokens[PAD]",
    "[UNK]",
    # far over any max_seq_length
    LONG_PARAGRAPH,
]

MAX_LENGTHS = [8, 13, 64, 128]


# ----------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def hf_tokenizers(bundled_dir) -> dict[str, transformers.PreTrainedTokenizerFast]:
    return {
        "uncased": transformers.AutoTokenizer.from_pretrained(str(bundled_dir)),
        "cased": transformers.BertTokenizerFast(
            vocab_file=str(bundled_dir / "vocab.txt"), do_lower_case=False
        ),
        # lowercase without accent stripping: Turkish dotted I keeps its combining dot, etc.
        "lower_keep_accents": transformers.BertTokenizerFast(
            vocab_file=str(bundled_dir / "vocab.txt"), do_lower_case=True, strip_accents=False
        ),
    }


@pytest.fixture(scope="module")
def graph_tokenizer(hf_tokenizers):
    cache: dict[tuple[str, int], GraphBertTokenizer] = {}

    def get(name: str, max_length: int) -> GraphBertTokenizer:
        if (name, max_length) not in cache:
            cache[name, max_length] = GraphBertTokenizer.from_hf_tokenizer(
                hf_tokenizers[name], max_length
            )
        return cache[name, max_length]

    return get


def hf_encode(tok, texts, pairs, max_length) -> dict[str, list[list[int]]]:
    enc = tok(texts, pairs, truncation=True, max_length=max_length, padding=True)
    return {k: enc[k] for k in tok.model_input_names}


def graph_encode(gt, texts, pairs=None) -> dict[str, list[list[int]]]:
    second = None if pairs is None else tf.constant(pairs, tf.string)
    out = gt(tf.constant(texts, tf.string), second)
    for value in out.values():
        assert value.dtype == tf.int32
    return {k: v.numpy().tolist() for k, v in out.items()}


def assert_same(ours, ref, texts, pairs=None) -> None:
    assert sorted(ours) == sorted(ref)
    for key in ref:
        for row, (a, b) in enumerate(zip(ours[key], ref[key])):
            text = texts[row] if pairs is None else (texts[row], pairs[row])
            assert a == b, f"{key} differs for {text!r}:\n graph {a}\n HF    {b}"
        assert len(ours[key]) == len(ref[key])


def words(n: int) -> str:
    """Text of exactly n tokens."""
    return " ".join(["hello"] * n)


# ----------------------------------------------------------------------------------------------
# equality with Hugging Face


def test_corpus_covers_every_kind_of_character_it_claims():
    """Each kind of text the corpus's comments list is really in it, and no row is a duplicate."""
    import unicodedata

    assert len(CORPUS) == len(set(CORPUS))
    categories = {unicodedata.category(ch) for text in CORPUS for ch in text}
    # combining marks, controls, format (zero-width, BOM, soft hyphen), private use, spaces and
    # line/paragraph separators, other symbols (emoji), letters of caseless scripts (CJK, Thai...)
    assert {"Mn", "Cc", "Cf", "Co", "Zs", "Zl", "Zp", "So", "Lo", "Lu", "Ll", "Sm", "Sc", "No"} <= categories
    assert "" in CORPUS and any(not t.strip() and t for t in CORPUS)  # empty and blank
    assert any(len(t) > 100 and " " not in t for t in CORPUS)  # one word over HF's 100-character limit
    assert any("[MASK]" in t for t in CORPUS) and any(ord(ch) > 0xFFFF for t in CORPUS for ch in t)
    assert max(len(t.split()) for t in CORPUS) > max(MAX_LENGTHS)  # longer than any max_seq_length tested


def test_cased_tokenizer_keeps_case_and_accents(hf_tokenizers):
    tok = hf_tokenizers["cased"]
    normalizer = json.loads(tok.backend_tokenizer.to_str())["normalizer"]
    assert normalizer["type"] == "BertNormalizer" and normalizer["lowercase"] is False
    assert tok.backend_tokenizer.normalizer.normalize_str("Café ÀB") == "Café ÀB"
    uncased = hf_tokenizers["uncased"].backend_tokenizer.normalizer
    assert uncased.normalize_str("Café ÀB") == "cafe ab"


@pytest.mark.parametrize(
    "name, max_length",
    [(n, m) for n in ("uncased", "cased") for m in MAX_LENGTHS] + [("lower_keep_accents", 64)],
)
def test_single_texts_match_hf(hf_tokenizers, graph_tokenizer, name, max_length):
    ours = graph_encode(graph_tokenizer(name, max_length), CORPUS)
    ref = hf_encode(hf_tokenizers[name], CORPUS, None, max_length)
    assert_same(ours, ref, CORPUS)
    assert len(ours["input_ids"][0]) == max_length  # the long texts fill the budget


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_pairs_match_hf(hf_tokenizers, graph_tokenizer, name, max_length):
    texts, pairs = CORPUS, CORPUS[::-1]
    ours = graph_encode(graph_tokenizer(name, max_length), texts, pairs)
    assert_same(ours, hf_encode(hf_tokenizers[name], texts, pairs, max_length), texts, pairs)


@pytest.mark.parametrize("max_length", MAX_LENGTHS + [9, 10])
def test_pair_truncation_matches_longest_first(hf_tokenizers, graph_tokenizer, max_length):
    # Lengths around the budget (max_length - 3, odd and even) and half of it: both, one or
    # neither sequence over budget, shorter first and second, equal lengths.
    budget = max_length - 3
    sizes = sorted({0, 1, 2, budget // 2, budget // 2 + 1, budget - 1, budget, budget + 1,
                    2 * budget, 130})
    texts = [words(a) for a in sizes for _ in sizes]
    pairs = [words(b) for _ in sizes for b in sizes]
    ours = graph_encode(graph_tokenizer("uncased", max_length), texts, pairs)
    assert_same(ours, hf_encode(hf_tokenizers["uncased"], texts, pairs, max_length), texts, pairs)


@pytest.mark.parametrize("name", ["uncased", "cased", "lower_keep_accents"])
def test_every_character_alone_and_in_words_matches_hf(hf_tokenizers, graph_tokenizer, name):
    # Every BMP character, plus the emoji/symbol blocks of plane 1, in and out of words:
    # checks the measured normalizer and pre-tokenizer tables character by character.
    code_points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x1F000, 0x1FB00)]
    texts = [f"a{c}b {c}{c} É{c}" for c in map(chr, code_points)]
    gt, tok = graph_tokenizer(name, 128), hf_tokenizers[name]
    ours = gt._tokenize(tf.constant(texts)).to_list()
    ref = tok(texts, add_special_tokens=False)["input_ids"]
    bad = [(hex(c), a, b) for c, a, b in zip(code_points, ours, ref) if a != b]
    assert not bad, bad[:10]


def test_long_words_count_characters_not_bytes(hf_tokenizers, graph_tokenizer):
    texts = ["ж" * 60, "ж" * 100, "ж" * 101, "中文" + "ж" * 99, "x" * 100 + " ok",
             "x" * 101 + " ok"]
    gt = graph_tokenizer("cased", 128)
    ours = graph_encode(gt, texts)
    assert_same(ours, hf_encode(hf_tokenizers["cased"], texts, None, 128), texts)
    unk = hf_tokenizers["cased"].unk_token_id
    assert ours["input_ids"][0][1] != unk  # 120 bytes, 60 characters: not [UNK]
    assert ours["input_ids"][2][1:3] == [unk, 102]


def test_added_tokens_raw_and_normalized(bundled_dir):
    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_dir))
    tok.add_tokens(["Foo-Bar", "qwzx", AddedToken("Zorp", normalized=False)])
    tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    texts = [
        "foo-bar FOO-BAR Foo-Bar xqwzxy zorp Zorp<ent>x <ENT>",
        "FOO-BARqwzx [MASK]<ent>[SEP]",
        "nothing added here",
    ]
    gt = GraphBertTokenizer.from_hf_tokenizer(tok, 32)
    assert_same(graph_encode(gt, texts), hf_encode(tok, texts, None, 32), texts)


def test_left_padding_and_truncation(bundled_dir):
    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_dir))
    tok.padding_side = "left"
    tok.truncation_side = "left"
    gt = GraphBertTokenizer.from_hf_tokenizer(tok, 13)
    texts = CORPUS[:20] + [LONG_PARAGRAPH, ""]
    pairs = texts[::-1]
    assert_same(graph_encode(gt, texts), hf_encode(tok, texts, None, 13), texts)
    assert_same(graph_encode(gt, texts, pairs), hf_encode(tok, texts, pairs, 13), texts, pairs)


def test_no_token_type_ids_when_the_model_has_none(bundled_dir):
    # DistilBERT-style: same WordPiece tokenizer, no token_type_ids input.
    tok = transformers.AutoTokenizer.from_pretrained(
        str(bundled_dir), model_input_names=["input_ids", "attention_mask"]
    )
    gt = GraphBertTokenizer.from_hf_tokenizer(tok, 16)
    ours = graph_encode(gt, CORPUS[:10], CORPUS[10:20])
    assert "token_type_ids" not in ours
    assert_same(ours, hf_encode(tok, CORPUS[:10], CORPUS[10:20], 16), CORPUS[:10], CORPUS[10:20])


def test_works_in_tf_function_with_signature(hf_tokenizers, graph_tokenizer):
    gt, tok = graph_tokenizer("uncased", 64), hf_tokenizers["uncased"]
    single = tf.function(gt.__call__, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    pair = tf.function(gt.__call__, input_signature=[tf.TensorSpec([None], tf.string)] * 2, autograph=False)
    out = single(tf.constant(CORPUS))
    assert out["input_ids"].shape.as_list() == [len(CORPUS), 64]
    assert_same({k: v.numpy().tolist() for k, v in out.items()},
                hf_encode(tok, CORPUS, None, 64), CORPUS)
    short = ["hi", "a bit longer text"]
    out = pair(tf.constant(short), tf.constant(short[::-1]))
    assert out["input_ids"].shape[1] == 1 + 4 + 3  # longest pair in the batch, not max_seq_length
    assert_same({k: v.numpy().tolist() for k, v in out.items()},
                hf_encode(tok, short, short[::-1], 64), short, short[::-1])


def test_config_is_plain_and_rebuilds(hf_tokenizers, graph_tokenizer):
    gt = graph_tokenizer("cased", 13)
    config = gt.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["lowercase"] is False and config["max_seq_length"] == 13
    assert "vocab" not in config
    vocab = sorted(hf_tokenizers["cased"].get_vocab(), key=hf_tokenizers["cased"].get_vocab().get)
    rebuilt = GraphBertTokenizer(vocab=vocab, **config)
    texts = CORPUS[:30]
    assert graph_encode(rebuilt, texts, texts[::-1]) == graph_encode(gt, texts, texts[::-1])


# ----------------------------------------------------------------------------------------------
# offsets, word ids and windows


# Offset corner cases on top of CORPUS: characters deleted at a word's edge or inside it, marks
# alone, leading deletions, expansions by lowercasing, decomposed Hangul, runs of spaces.
OFFSET_TEXTS = CORPUS + [
    "cafe\u0301 \u0301x e\u0301\u0301",
    "\u200b\u200bab\u200b  \u00adc\u00ad",
    "\x07ab\x07 c\x00d",
    "xİy İ İİ",
    "한국어 문장입니다 한",
    "a    b\t\t c  \n\n d   ",
    "中文x中\u0301 文",
    "word [MASK]word[MASK] [MASK]",
]


def _none_to(values, fill=-1):
    return [fill if v is None else v for v in values]


def hf_tokens_with_offsets(tok, texts) -> dict[str, list[list]]:
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    return {
        "ids": enc["input_ids"],
        "starts": [[a for a, _ in row] for row in enc["offset_mapping"]],
        "ends": [[b for _, b in row] for row in enc["offset_mapping"]],
        "word_ids": [enc.word_ids(i) for i in range(len(texts))],
    }


def graph_tokens_with_offsets(gt, texts) -> dict[str, list[list]]:
    parts = gt.tokenize_with_offsets(tf.constant(texts, tf.string))
    for part in parts:
        assert part.dtype == tf.int32
    return dict(zip(("ids", "starts", "ends", "word_ids"), (p.to_list() for p in parts)))


def hf_encode_with_offsets(tok, texts, max_length) -> dict[str, list[list[int]]]:
    """HF's padded encoding with offsets and word ids as encode_with_offsets gives them."""
    enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_offsets_mapping=True)
    out = {k: enc[k] for k in tok.model_input_names}
    word_ids = [enc.word_ids(i) for i in range(len(enc["input_ids"]))]
    out["word_ids"] = [_none_to(row) for row in word_ids]
    out["offsets_start"] = [[-1 if w is None else o[0] for w, o in zip(ws, row)]
                            for ws, row in zip(word_ids, enc["offset_mapping"])]
    out["offsets_end"] = [[-1 if w is None else o[1] for w, o in zip(ws, row)]
                          for ws, row in zip(word_ids, enc["offset_mapping"])]
    return out


def cut_question(tok, question, max_query_length) -> str | None:
    """The question's text up to its max_query_length-th word piece, or None where no text has
    exactly those pieces (the cut falls inside a character that became several pieces, see the
    Hangul test): HF takes text, so only such questions have an HF reference."""
    enc = tok(question, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    text = question[: offsets[max_query_length - 1][1]] if len(ids) > max_query_length else question
    exact = tok(text, add_special_tokens=False)["input_ids"] == ids[:max_query_length]
    return text if exact else None


def hf_qa_windows(tok, questions, contexts, max_length, stride, max_query_length):
    cut = [cut_question(tok, q, max_query_length) for q in questions]
    assert None not in cut
    enc = tok(cut, contexts,
              truncation="only_second", max_length=max_length, stride=stride,
              return_overflowing_tokens=True, return_offsets_mapping=True, padding=True)
    out = {k: enc[k] for k in tok.model_input_names}
    out["window_to_example"] = enc["overflow_to_sample_mapping"]
    sequence_ids = [enc.sequence_ids(i) for i in range(len(enc["input_ids"]))]
    out["offsets_start"] = [[o[0] if s == 1 else -1 for s, o in zip(seq, row)]
                            for seq, row in zip(sequence_ids, enc["offset_mapping"])]
    out["offsets_end"] = [[o[1] if s == 1 else -1 for s, o in zip(seq, row)]
                          for seq, row in zip(sequence_ids, enc["offset_mapping"])]
    return out


def numpy_lists(outputs) -> dict[str, list]:
    for value in outputs.values():
        assert value.dtype == tf.int32
    return {k: v.numpy().tolist() for k, v in outputs.items()}


def assert_rows_equal(ours, ref, inputs) -> None:
    assert sorted(ours) == sorted(ref)
    for key in ref:
        assert len(ours[key]) == len(ref[key]), key
        for row, (a, b) in enumerate(zip(ours[key], ref[key])):
            assert a == b, f"{key} differs in row {row} ({inputs[row]!r}):\n graph {a}\n HF    {b}"


@pytest.mark.parametrize("name", ["uncased", "cased", "lower_keep_accents"])
def test_tokenize_with_offsets_matches_hf(hf_tokenizers, graph_tokenizer, name):
    ours = graph_tokens_with_offsets(graph_tokenizer(name, 64), OFFSET_TEXTS)
    assert_rows_equal(ours, hf_tokens_with_offsets(hf_tokenizers[name], OFFSET_TEXTS),
                      OFFSET_TEXTS)


def test_offsets_point_into_the_original_text(graph_tokenizer):
    texts = ["Café au lait", "x\u200bİy", "cafe\u0301 ok"]
    ours = graph_tokens_with_offsets(graph_tokenizer("uncased", 64), texts)
    spans = [list(zip(s, e)) for s, e in zip(ours["starts"], ours["ends"])]
    # cafe | au | lai ##t: "é" is one character of the original although NFD made it two.
    assert spans[0] == [(0, 4), (5, 7), (8, 11), (11, 12)] and ours["word_ids"][0] == [0, 1, 2, 2]
    # xi ##y: the deleted zero-width space lies inside "xi", and İ -> i (mark stripped).
    assert spans[1] == [(0, 3), (3, 4)]
    # A deleted combining mark at the end of a word is outside it.
    assert spans[2] == [(0, 4), (6, 8)]


@pytest.mark.parametrize("name", ["uncased", "lower_keep_accents"])
def test_offsets_of_every_character_match_hf(hf_tokenizers, graph_tokenizer, name):
    # Every BMP character and the plane 1 symbols, in and out of words (as the id test above):
    # deletions, expansions and CJK isolation at every position of a word.
    code_points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x1F000, 0x1FB00)]
    texts = [f"a{c}b {c}{c} É{c}" for c in map(chr, code_points)]
    gt, tok = graph_tokenizer(name, 128), hf_tokenizers[name]
    ours = graph_tokens_with_offsets(gt, texts)
    ref = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    bad = [
        hex(c) for i, c in enumerate(code_points)
        if list(zip(ours["starts"][i], ours["ends"][i])) != ref["offset_mapping"][i]
        or ours["ids"][i] != ref["input_ids"][i]
        or ours["word_ids"][i] != ref.word_ids(i)
    ]
    assert not bad, bad[:20]


def test_added_token_offsets_raw_and_normalized(bundled_dir):
    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_dir))
    tok.add_tokens(["Foo-Bar", "qwzx", AddedToken("Zorp", normalized=False), "ÉTÉ"])
    tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    texts = [
        "foo-bar FOO-BAR Foo-Bar xqwzxy zorp Zorp<ent>x <ENT>",
        "FOO-BARqwzx [MASK]<ent>[SEP]",
        "été ÉTÉ e\u0301te\u0301 \u200bqwzx\u200b a\u00adqwzx",
        "nothing added here",
        "",
    ]
    gt = GraphBertTokenizer.from_hf_tokenizer(tok, 32)
    assert_rows_equal(graph_tokens_with_offsets(gt, texts), hf_tokens_with_offsets(tok, texts),
                      texts)
    assert_rows_equal(numpy_lists(gt.encode_with_offsets(tf.constant(texts))),
                      hf_encode_with_offsets(tok, texts, 32), texts)


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_encode_with_offsets_matches_hf_and_call(hf_tokenizers, graph_tokenizer, name,
                                                 max_length):
    gt = graph_tokenizer(name, max_length)
    ours = numpy_lists(gt.encode_with_offsets(tf.constant(OFFSET_TEXTS)))
    assert_rows_equal(ours, hf_encode_with_offsets(hf_tokenizers[name], OFFSET_TEXTS, max_length),
                      OFFSET_TEXTS)
    plain = graph_encode(gt, OFFSET_TEXTS)
    assert {k: ours[k] for k in plain} == plain


def test_left_side_offsets(bundled_dir):
    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_dir))
    tok.padding_side = "left"
    tok.truncation_side = "left"
    gt = GraphBertTokenizer.from_hf_tokenizer(tok, 13)
    texts = OFFSET_TEXTS[:30] + [LONG_PARAGRAPH, ""]
    assert_rows_equal(numpy_lists(gt.encode_with_offsets(tf.constant(texts))),
                      hf_encode_with_offsets(tok, texts, 13), texts)


def qa_pairs(tok, max_length: int, stride: int, max_query_length: int
             ) -> tuple[list[str], list[str]]:
    """Varied questions with contexts of every kind of length for the window arithmetic."""
    questions = [
        text for text in OFFSET_TEXTS
        if text.strip() and cut_question(tok, text, max_query_length) is not None
    ]
    contexts = [OFFSET_TEXTS[(7 * i + 3) % len(OFFSET_TEXTS)] for i in range(len(questions))]
    # Around the boundaries: one window exactly full, one token over, window starts, plus a
    # context of over a thousand word pieces.
    question = "who is there"  # 3 pieces
    room = max_length - 3 - 3
    step = room - stride
    for n in sorted({0, 1, room - 1, room, room + 1, room + step - 1, room + step,
                     room + step + 1, room + 2 * step, room + 2 * step + 1}):
        questions.append(question)
        contexts.append(words(n))
    questions += ["what " * (max_query_length + 5), "when?"]
    contexts += [" ".join(CORPUS) + LONG_PARAGRAPH, LONG_PARAGRAPH + " " + LONG_PARAGRAPH]
    return questions, contexts


QA_SETTINGS = [(32, 0, 8), (32, 5, 8), (64, 16, 20), (128, 40, 64), (384, 128, 64)]


@pytest.mark.parametrize("max_length, stride, max_query_length", QA_SETTINGS)
def test_qa_windows_match_hf(hf_tokenizers, graph_tokenizer, max_length, stride,
                             max_query_length):
    tok = hf_tokenizers["uncased"]
    questions, contexts = qa_pairs(tok, max_length, stride, max_query_length)
    gt = graph_tokenizer("uncased", max_length)
    ours = numpy_lists(gt.encode_qa_windows(
        tf.constant(questions), tf.constant(contexts), stride, max_query_length
    ))
    ref = hf_qa_windows(tok, questions, contexts, max_length, stride, max_query_length)
    pairs = [(questions[i], contexts[i][:60]) for i in ref["window_to_example"]]
    assert_rows_equal(ours, ref, pairs)
    assert len(ours["input_ids"][0]) == max_length
    assert max(len(tok(c)["input_ids"]) for c in contexts) > 1000


def test_qa_windows_left_side_and_cased(bundled_dir, hf_tokenizers, graph_tokenizer):
    questions, contexts = qa_pairs(hf_tokenizers["uncased"], 32, 4, 8)
    ours = numpy_lists(graph_tokenizer("cased", 32).encode_qa_windows(
        tf.constant(questions), tf.constant(contexts), 4, 8
    ))
    assert_rows_equal(ours, hf_qa_windows(hf_tokenizers["cased"], questions, contexts, 32, 4, 8),
                      questions)
    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_dir))
    tok.padding_side = "left"
    tok.truncation_side = "left"
    ours = numpy_lists(GraphBertTokenizer.from_hf_tokenizer(tok, 32).encode_qa_windows(
        tf.constant(questions), tf.constant(contexts), 4, 8
    ))
    assert_rows_equal(ours, hf_qa_windows(tok, questions, contexts, 32, 4, 8), questions)


def test_qa_questions_are_cut_after_word_pieces(hf_tokenizers, graph_tokenizer):
    # Uncased NFD splits each Hangul syllable into three pieces: cutting the question *text* at
    # the 5th piece's end keeps the whole second syllable (6 pieces); the graph keeps exactly 5.
    tok = hf_tokenizers["uncased"]
    question = "문장입니다"
    ids = tok(question, add_special_tokens=False)["input_ids"]
    assert len(ids) == 13 and cut_question(tok, question, 5) is None
    out = graph_tokenizer("uncased", 32).encode_qa_windows(
        tf.constant([question]), tf.constant(["context"]), 4, 5
    )
    assert out["input_ids"].numpy()[0].tolist() == (
        [tok.cls_token_id] + ids[:5] + [tok.sep_token_id] + tok("context")["input_ids"][1:]
    )


# ----------------------------------------------------------------------------------------------
# errors


def test_rejects_tokenizers_that_are_not_bert_wordpiece():
    from tokenizers import Tokenizer, models, pre_tokenizers

    bpe = models.BPE(vocab={"a": 0, "b": 1, "<unk>": 2}, merges=[], unk_token="<unk>")
    backend = Tokenizer(bpe)
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<unk>")
    with pytest.raises(ModelError) as info:
        GraphBertTokenizer.from_hf_tokenizer(tok, 16)
    message = str(info.value)
    assert message.startswith(
        "PreTrainedTokenizerFast: in-graph tokenization supports BERT WordPiece"
    )
    assert "\n" not in message


def test_rejects_slow_tokenizers(bundled_dir):
    tok = transformers.BertTokenizer(vocab_file=str(bundled_dir / "vocab.txt"))
    with pytest.raises(ModelError, match="^BertTokenizer: in-graph tokenization supports BERT"):
        GraphBertTokenizer.from_hf_tokenizer(tok, 16)


def test_rejects_single_word_added_tokens(bundled_dir):
    tok = transformers.AutoTokenizer.from_pretrained(str(bundled_dir))
    tok.add_tokens([AddedToken("zorp", single_word=True)])
    with pytest.raises(ModelError, match="single_word=True"):
        GraphBertTokenizer.from_hf_tokenizer(tok, 16)


def test_rejects_max_seq_length_below_special_tokens(hf_tokenizers):
    with pytest.raises(ConfigError, match="at least 3"):
        GraphBertTokenizer.from_hf_tokenizer(hf_tokenizers["uncased"], 2)


def test_rejects_strides_without_room(graph_tokenizer):
    gt = graph_tokenizer("uncased", 32)
    texts = tf.constant(["a"])
    with pytest.raises(ConfigError, match="smaller than the 21 context tokens"):
        gt.encode_qa_windows(texts, texts, 21, 8)
    with pytest.raises(ConfigError, match="leaves no room for the context"):
        gt.encode_qa_windows(texts, texts, 0, 29)
    with pytest.raises(ConfigError, match="max_query_length must be at least 1"):
        gt.encode_qa_windows(texts, texts, 0, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        gt.encode_qa_windows(texts, tf.constant(["a", "b"]), 4, 8)


# ----------------------------------------------------------------------------------------------
# SavedModel


_WINDOW_STRIDE, _DOC_STRIDE, _MAX_QUERY_LENGTH = 5, 8, 16


class _Serving(tf.Module):
    """The tokenizer in a SavedModel, traced without autograph as the task exports trace it."""

    def __init__(self, tokenizer: GraphBertTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    # Ragged outputs: a restored tf.function, not a signature (signatures return dense tensors).
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def tokenize_with_offsets(self, texts):
        return self.tokenizer.tokenize_with_offsets(texts)

    def signatures(self) -> dict:
        """The signatures, as functions the module does not track (`tf.saved_model.save` traces a
        tracked one again, as `ServingModule.export` notes)."""
        tokenizer = self.tokenizer

        def traced(fn, *names: str):
            specs = [tf.TensorSpec([None], tf.string, name=name) for name in names]
            return tf.function(fn, input_signature=specs, autograph=False).get_concrete_function()

        return {
            "serving_default": traced(lambda texts: tokenizer(texts), "texts"),
            "pairs": traced(lambda texts, text_pairs: tokenizer(texts, text_pairs), "texts", "text_pairs"),
            "encode_with_offsets": traced(lambda texts: tokenizer.encode_with_offsets(texts), "texts"),
            "qa_windows": traced(lambda questions, contexts: tokenizer.encode_qa_windows(
                questions, contexts, _DOC_STRIDE, _MAX_QUERY_LENGTH), "questions", "contexts"),
        }


_LOADER = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the ops the SavedModel uses
    export_dir, inputs_file = sys.argv[1], sys.argv[2]
    inputs = json.loads(open(inputs_file, encoding="utf-8").read())
    texts = inputs["texts"]
    loaded = tf.saved_model.load(export_dir)
    single = loaded.signatures["serving_default"](texts=tf.constant(texts))
    pairs = loaded.signatures["pairs"](
        texts=tf.constant(texts), text_pairs=tf.constant(texts[::-1]))
    offsets = loaded.tokenize_with_offsets(tf.constant(texts))
    encoded = loaded.signatures["encode_with_offsets"](texts=tf.constant(texts))
    qa = loaded.signatures["qa_windows"](
        questions=tf.constant(inputs["questions"]), contexts=tf.constant(inputs["contexts"]))
    as_lists = lambda outputs: {k: v.numpy().tolist() for k, v in outputs.items()}
    print(json.dumps({
        "single": as_lists(single),
        "pairs": as_lists(pairs),
        "offsets": dict(zip(["ids", "starts", "ends", "word_ids"], [r.to_list() for r in offsets])),
        "encoded": as_lists(encoded),
        "qa": as_lists(qa),
    }))
""")


def test_savedmodel_round_trip_in_fresh_process(hf_tokenizers, graph_tokenizer, tmp_path):
    gt, tok = graph_tokenizer("uncased", 64), hf_tokenizers["uncased"]
    module = _Serving(gt)
    export_dir = tmp_path / "tokenizer"
    tf.saved_model.save(module, str(export_dir), signatures=module.signatures())
    questions, contexts = qa_pairs(tok, 64, _DOC_STRIDE, _MAX_QUERY_LENGTH)
    inputs_file = tmp_path / "inputs.json"
    inputs_file.write_text(
        json.dumps({"texts": CORPUS, "questions": questions, "contexts": contexts}),
        encoding="utf-8",
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", _LOADER, str(export_dir), str(inputs_file)],
        capture_output=True, text=True, env=env, timeout=300, cwd=str(Path(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_same(result["single"], hf_encode(tok, CORPUS, None, 64), CORPUS)
    pairs = CORPUS[::-1]
    assert_same(result["pairs"], hf_encode(tok, CORPUS, pairs, 64), CORPUS, pairs)
    assert_rows_equal(result["offsets"], hf_tokens_with_offsets(tok, CORPUS), CORPUS)
    assert_rows_equal(result["encoded"], hf_encode_with_offsets(tok, CORPUS, 64), CORPUS)
    ref = hf_qa_windows(tok, questions, contexts, 64, _DOC_STRIDE, _MAX_QUERY_LENGTH)
    assert_rows_equal(result["qa"], ref, [questions[i] for i in ref["window_to_example"]])


def test_character_tables_are_cached_per_tokenizers_release(tmp_path, monkeypatch):
    """The measured tables are kept in tfbert's cache, read back equal, and measured again when the
    cache file is damaged or unwritable."""
    import tokenizers

    from tfbert.serving import normalization_tables as tables

    monkeypatch.setenv("TFBERT_CACHE", str(tmp_path))
    calls = []

    def measure():
        calls.append(1)
        return ((1, 2), ((3, "a"),)), (4,)

    assert tables._measured("probe", measure) == (((1, 2), ((3, "a"),)), (4,))
    path = tmp_path / "unicode-tables" / f"tokenizers-{tokenizers.__version__}" / "probe.json"
    assert path.is_file() and len(calls) == 1
    assert tables._measured("probe", measure) == (((1, 2), ((3, "a"),)), (4,)) and len(calls) == 1  # read back
    path.write_text("{not json")
    assert tables._measured("probe", measure) == (((1, 2), ((3, "a"),)), (4,)) and len(calls) == 2
    assert json.loads(path.read_text()) == [[[1, 2], [[3, "a"]]], [4]]  # rewritten whole
    # The real tables come back from the cache exactly as measured.
    measured = tables._measure_pre_tokenizer()
    assert tables._measured("pre", tables._measure_pre_tokenizer) == measured == tables._measured(
        "pre", lambda: pytest.fail("measured again instead of read from the cache"))
