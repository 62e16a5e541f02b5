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


def test_corpus_is_varied_enough():
    assert len(CORPUS) >= 60


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
    single = tf.function(gt.__call__, input_signature=[tf.TensorSpec([None], tf.string)])
    pair = tf.function(
        gt.__call__, input_signature=[tf.TensorSpec([None], tf.string)] * 2
    )
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


# ----------------------------------------------------------------------------------------------
# SavedModel


class _Serving(tf.Module):
    def __init__(self, tokenizer: GraphBertTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        return self.tokenizer(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def tokenize_pairs(self, texts, text_pairs):
        return self.tokenizer(texts, text_pairs)


_LOADER = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # registers the ops the SavedModel uses
    export_dir, texts_file = sys.argv[1], sys.argv[2]
    texts = json.loads(open(texts_file, encoding="utf-8").read())
    loaded = tf.saved_model.load(export_dir)
    single = loaded.signatures["serving_default"](texts=tf.constant(texts))
    pairs = loaded.signatures["pairs"](
        texts=tf.constant(texts), text_pairs=tf.constant(texts[::-1]))
    print(json.dumps({
        "single": {k: v.numpy().tolist() for k, v in single.items()},
        "pairs": {k: v.numpy().tolist() for k, v in pairs.items()},
    }))
""")


def test_savedmodel_round_trip_in_fresh_process(hf_tokenizers, graph_tokenizer, tmp_path):
    gt, tok = graph_tokenizer("uncased", 64), hf_tokenizers["uncased"]
    module = _Serving(gt)
    export_dir = tmp_path / "tokenizer"
    tf.saved_model.save(module, str(export_dir), signatures={
        "serving_default": module.tokenize, "pairs": module.tokenize_pairs,
    })
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(CORPUS), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", _LOADER, str(export_dir), str(texts_file)],
        capture_output=True, text=True, env=env, timeout=300, cwd=str(Path(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_same(result["single"], hf_encode(tok, CORPUS, None, 64), CORPUS)
    pairs = CORPUS[::-1]
    assert_same(result["pairs"], hf_encode(tok, CORPUS, pairs, 64), CORPUS, pairs)
