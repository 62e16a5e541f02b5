"""Character tables of the Hugging Face BERT normalizer and pre-tokenizer, measured from `tokenizers`.

`GraphBertTokenizer` reproduces the normalizer and pre-tokenizer character by character: which
characters are deleted, which are replaced (accents, case), which split words (whitespace,
punctuation, CJK). Rather than restate Unicode rules, the tables are measured by running the
installed `tokenizers` library over every code point. Measuring takes seconds, so the tables are
kept per process and as JSON in tfbert's cache (``$TFBERT_CACHE/unicode-tables/tokenizers-<version>``:
they change only with the `tokenizers` release). Also here: the special-token templates read from a
tokenizer's post-processor.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable, Mapping, Sequence

from tfbert.errors import ModelError
from tfbert.utils.files import cache_dir, write_text

_MAX_CODE_POINT = 0x10FFFF


# ----------------------------------------------------------------------------------------------
# Character tables measured from the `tokenizers` library.


def _freeze(value: Any) -> Any:
    """JSON lists back into the tuples the tables are made of."""
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _measured(name: str, measure: Callable[[], Any]) -> Any:
    """`measure()`, read from or written to the cache file `name` of the installed `tokenizers`."""
    import tokenizers

    path = cache_dir("unicode-tables", f"tokenizers-{tokenizers.__version__}", f"{name}.json")
    try:
        return _freeze(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass  # absent or unreadable: measure again
    value = measure()
    try:
        write_text(path, json.dumps(value, separators=(",", ":")))
    except OSError:
        pass  # a read-only cache costs the measuring next time, nothing else
    return value


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
    flags = "-".join(str(f).lower() for f in (clean_text, handle_chinese_chars, strip_accents, lowercase))
    return _measured(f"bert-normalizer-{flags}", lambda: _measure_normalizer(
        clean_text, handle_chinese_chars, strip_accents, lowercase))


def _measure_normalizer(clean_text: bool, handle_chinese_chars: bool, strip_accents: bool, lowercase: bool):
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
    return _measured("bert-pre-tokenizer", _measure_pre_tokenizer)


def _measure_pre_tokenizer() -> tuple[tuple[int, ...], tuple[int, ...]]:
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


def nul_substitution_is_exact(deleted: Sequence[tuple[int, int]], replacements: Sequence[tuple[int, str]],
                              special_classes: set[int], contents: Sequence[str]) -> bool:
    """Whether NUL may become U+0001 before tf-text's ``regex_split`` (which cuts strings at U+0000).

    Exact only where both characters behave alike and appear in no token (always so for BERT).
    """
    def deleted_char(c: int) -> bool:
        return any(a <= c <= b for a, b in deleted)

    replaced = {c for c, _ in replacements}
    return (deleted_char(0) == deleted_char(1) and not {0, 1} & (replaced | special_classes)
            and not any("\x00" in t or "\x01" in t for t in contents))


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


def tokenizer_settings(hf_tokenizer: Any) -> dict[str, Any]:
    """`GraphBertTokenizer`'s keyword arguments (all but ``max_seq_length``) read from a
    transformers ``PreTrainedTokenizerFast``; a `ModelError` for anything but BERT WordPiece."""
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

    return dict(
        vocab=[tok for _, tok in by_id],
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

