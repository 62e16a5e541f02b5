"""Every exported SavedModel answers any tf.string batch: empty batches, blank and NUL strings,
bytes that are not UTF-8, 1 MB strings, 5,000-text batches and 8 threads at once."""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

from tfbert.serving.export import SIGNATURE_TEXT, load_saved_model

TASKS = ["classification", "ner", "qa"]

ODD = [b"", b" ", b"\t\n\r \xe3\x80\x80", b"\xe2\x80\x8b\xef\xbb\xbf", b"\x00", b"a\x00b", b"\x00" * 5,
       b"Paris \x00 Berlin", b"\x07\x1b[31m", b"[SEP] [CLS][MASK]"]
# Not UTF-8: lone continuation and lead bytes, truncated sequences, an encoded surrogate, an
# overlong form, a value above U+10FFFF; some next to real words and special tokens.
NOT_UTF8 = [b"\xff", b"\x80\x80", b"caf\xc3", b"\xe2\x82 euro", b"\xed\xa0\x80 Paris", b"\xc0\xaf[SEP]ab",
            b"\xf4\x90\x80\x80 in Tokyo", b"New \xf0\x9f\x98 York", b"I love \xfe\xfe Berlin \xe2"]

Outputs = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def serve(task_exports) -> Callable[[str, list], Outputs]:
    """serve(task, texts) -> numpy outputs; QA gets each text as question and as context."""
    signatures = {task: load_saved_model(path).signatures[SIGNATURE_TEXT] for task, path in task_exports.items()}

    def call(task: str, texts: list) -> Outputs:
        t = tf.constant(texts, tf.string)
        out = signatures[task](question=t, context=t) if task == "qa" else signatures[task](text=t)
        return {k: v.numpy() for k, v in out.items()}

    return call


def decoded(texts: list) -> list[str]:
    """The documented reading of input bytes: UTF-8, ill-formed sequences replaced as Python does."""
    return [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t for t in texts]


def assert_well_formed(task: str, out: Outputs, texts: list) -> None:
    """Shapes, finite scores, and offsets that point into the decoded strings."""
    strings = decoded(texts)
    n = len(texts)
    for name, value in out.items():
        assert value.shape[0] == n, name
    if task == "classification":
        assert np.isfinite(out["probabilities"]).all()
        np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    elif task == "ner":
        for row, text in enumerate(strings):
            k = out["num_entities"][row]
            for i in range(k):
                start, end = out["entity_start"][row][i], out["entity_end"][row][i]
                assert 0 <= start < end <= len(text)
                assert out["entity_text"][row][i].decode("utf-8") == text[start:end]
            assert (out["entity_start"][row][k:] == -1).all()
            words = out["word_start"][row] >= 0
            assert (out["word_end"][row][words] <= len(text)).all()
    else:
        for row, text in enumerate(strings):
            start, end = out["answer_start"][row], out["answer_end"][row]
            answer = out["answer"][row].decode("utf-8")
            if start == -1:
                assert (end, answer, out["score"][row]) == (-1, "", -np.inf)
            else:
                assert 0 <= start < end <= len(text) and answer == text[start:end]
                assert np.isfinite(out["score"][row])


def assert_outputs_equal(a: Outputs, b: Outputs, rows_a=slice(None), rows_b=slice(None)) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name][rows_a], b[name][rows_b]
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("task", TASKS)
def test_empty_batch_gives_empty_outputs(serve, task):
    empty, one = serve(task, []), serve(task, ["Paris"])
    assert sorted(empty) == sorted(one)
    for name, value in empty.items():
        assert value.shape[0] == 0 and value.dtype == one[name].dtype, name
        # Per-label and per-token widths keep their meaning; padded widths are 0.
        if task == "classification" and value.ndim == 2:
            assert value.shape == (0, one[name].shape[1])


@pytest.mark.parametrize("task", TASKS)
def test_blank_nul_and_control_strings(serve, task):
    out = serve(task, ODD)
    assert_well_formed(task, out, ODD)
    if task == "ner":
        assert out["num_entities"][0] == 0 and (out["word_start"][:2] == -1).all()  # "" and " " have no words
    if task == "qa":
        assert out["answer_start"][0] == -1  # empty context: no answer


@pytest.mark.parametrize("task", TASKS)
def test_bytes_that_are_not_utf8_read_as_python_replace(serve, task):
    # Served with their decoded twins in one batch (same padding): each row must equal its twin's.
    twins = [t.encode("utf-8") for t in decoded(NOT_UTF8)]
    assert all(b != t for b, t in zip(NOT_UTF8, twins))
    out = serve(task, NOT_UTF8 + twins)
    assert_well_formed(task, out, NOT_UTF8 + twins)
    n = len(NOT_UTF8)
    assert_outputs_equal(out, out, slice(0, n), slice(n, 2 * n))
    if task == "ner":
        assert out["word_start"][4][0] == 4  # "\xed\xa0\x80 Paris": three U+FFFD, a space, then Paris


def one_megabyte_text() -> str:
    piece = "Paris é 中文 😀 \u200b naïve Berlin, "
    text = piece * (1_000_000 // len(piece.encode("utf-8")) + 1)
    assert len(text.encode("utf-8")) > 1_000_000
    return text


@pytest.mark.parametrize("task", TASKS)
def test_one_megabyte_strings(serve, task):
    texts = [one_megabyte_text(), "Paris"]
    out = serve(task, texts)
    assert_well_formed(task, out, texts)
    if task == "qa":
        # The answer comes from one of the context's ~thousands of windows, anywhere in it.
        assert out["answer_start"][0] >= 0


@pytest.mark.parametrize("task", TASKS)
def test_five_thousand_texts_in_one_batch(serve, task):
    words = ["Paris", "Berlin", "naïve", "中文", "😀", "New York", "", "x" * 120, "I love Tokyo so much"]
    texts = [f"{words[i % 9]} {i} {words[(i * 7) % 9]}" for i in range(5000)]
    out = serve(task, texts)
    assert_well_formed(task, out, texts)
    # The same rows served alone (other padding) give the same answers.
    for rows in (slice(0, 40), slice(4960, 5000)):
        part = serve(task, texts[rows])
        if task == "ner":  # entity and word columns are padded to the batch's most
            out_rows = {k: v[rows][:, :part[k].shape[1]] if v.ndim == 2 else v[rows] for k, v in out.items()}
            assert_outputs_equal(out_rows, part)
            for name in ("entity_start", "word_start"):
                assert (out[name][rows][:, part[name].shape[1]:] == -1).all()
        else:
            assert_outputs_equal(out, part, rows)


@pytest.mark.parametrize("task", TASKS)
def test_eight_threads_at_once_equal_serial_calls(serve, task):
    batches = [[f"Thread {i} says hello to Paris and Berlin", "", "I love Tokyo " * (i + 1), b"bad \xff byte"]
               for i in range(8)]
    serial = [serve(task, batch) for batch in batches]
    results: list[list[Outputs]] = [[] for _ in batches]
    errors: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def worker(i: int) -> None:
        try:
            start.wait()
            for _ in range(5):
                results[i].append(serve(task, batches[i]))
        except BaseException as error:  # noqa: BLE001  (reported by the main thread)
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    for i, runs in enumerate(results):
        assert len(runs) == 5
        for out in runs:
            assert_outputs_equal(out, serial[i])
