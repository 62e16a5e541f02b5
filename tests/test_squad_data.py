"""SQuAD reading and validation, article splits, and QA windows/labels on the real tokenizer."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tfbert.data.qa_features import prepare_qa_features
from tfbert.data.squad import QAExample, read_squad, reference_answers, select_articles
from tfbert.errors import ConfigError, DataError
from tfbert.evaluation.squad_metrics import normalize_answer

SQUAD_FILE = SHARED_DATA / "squad_v1.1" / "dev-v1.1-articles-00-35.json"
needs_squad = pytest.mark.skipif(not SQUAD_FILE.is_file(), reason="../shared/data/squad_v1.1 is not beside the project")


@pytest.fixture(scope="module")
def tokenizer(bundled_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundled_dir))


@pytest.fixture(scope="module")
def squad_examples():
    if not SQUAD_FILE.is_file():
        pytest.skip("../shared/data/squad_v1.1 is not beside the project")
    return read_squad(SQUAD_FILE)


# --- reading and validation -------------------------------------------------------------------

CONTEXT = "Super Bowl 50 was played at Levi's Stadium in Santa Clara."


def small_squad() -> dict:
    return {"version": "1.1", "data": [
        {"title": "Super_Bowl_50", "paragraphs": [{"context": CONTEXT, "qas": [
            {"id": "q1", "question": "Where was Super Bowl 50 played?",
             "answers": [{"text": "Levi's Stadium", "answer_start": 28},
                         {"text": "Santa Clara", "answer_start": 46}]},
        ]}]},
        {"title": "Warsaw", "paragraphs": [{"context": "Warsaw is the capital of Poland.", "qas": [
            {"id": "q2", "question": "Capital of?", "answers": [{"text": "Poland", "answer_start": 25}]},
        ]}]},
    ]}


def write(tmp_path, content) -> str:
    path = tmp_path / "squad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_read_small_file(tmp_path):
    examples = read_squad(write(tmp_path, small_squad()))
    assert [e.id for e in examples] == ["q1", "q2"]
    first = examples[0]
    assert (first.title, first.article_index, first.context) == ("Super_Bowl_50", 0, CONTEXT)
    assert first.answers == [{"text": "Levi's Stadium", "answer_start": 28},
                             {"text": "Santa Clara", "answer_start": 46}]
    assert examples[1].article_index == 1
    assert reference_answers(examples) == {"q1": ["Levi's Stadium", "Santa Clara"], "q2": ["Poland"]}


def _drop(path):
    def mutate(d):
        *parents, key = path
        target = d
        for p in parents:
            target = target[p]
        del target[key]
    return mutate


def _set(path, value):
    def mutate(d):
        *parents, key = path
        target = d
        for p in parents:
            target = target[p]
        target[key] = value
    return mutate


QA = ("data", 0, "paragraphs", 0, "qas", 0)


@pytest.mark.parametrize("mutate, expected", [
    (_drop(("data",)), "missing 'data'"),
    (_set(("data",), {"title": "x"}), "'data' must be a list"),
    (_drop(("data", 1, "paragraphs")), "article 1 (Warsaw): missing 'paragraphs'"),
    (_drop(("data", 0, "paragraphs", 0, "qas")), "article 0 (Super_Bowl_50), paragraph 0: missing 'qas'"),
    (_set(("data", 0, "paragraphs", 0, "context"), "   "), "paragraph 0: empty 'context'"),
    (_drop(("data", 0, "paragraphs", 0, "context")), "paragraph 0: 'context' is missing"),
    (_set(QA + ("question",), " "), "question q1: empty 'question'"),
    (_set(QA + ("question",), 7), "question q1: 'question' is int, expected text"),
    (_drop(QA + ("id",)), "paragraph 0, question 0: missing 'id'"),
    (_drop(QA + ("answers",)), "question q1: missing 'answers'"),
    (_set(QA + ("answers",), []), "question q1: no answers"),
    (_set(QA + ("answers", 1, "answer_start"), 45),
     "question q1, answer 2: answer_start 45 does not point at 'Santa Clara' in the context (found ' Santa Clar')"),
    (_set(QA + ("answers", 0, "answer_start"), "28"), "question q1, answer 1: 'answer_start' must be an integer"),
    (_set(QA + ("answers", 0, "answer_start"), -1), "answer 1: answer_start -1 does not point at"),
    (_set(("data", 1, "paragraphs", 0, "qas", 0, "id"), "q1"), "question q1: duplicate question id"),
])
def test_validation_errors_name_the_file_and_place(tmp_path, mutate, expected):
    data = small_squad()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(DataError) as info:
        read_squad(path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert "\n" not in message


def test_several_train_files_are_read_in_order(tmp_path, tokenizer):
    from tfbert.config import load_config
    from tfbert.tasks import get_task

    first = write(tmp_path, small_squad())
    other = small_squad()["data"][1:]
    other[0]["paragraphs"][0]["qas"][0]["id"] = "q3"
    second = tmp_path / "more.json"
    second.write_text(json.dumps({"version": "1.1", "data": other}), encoding="utf-8")
    config = load_config(None, ["task.type=question_answering", f"data.train_file=[{first}, {second}]",
                                "data.max_seq_length=64", "data.doc_stride=16", "data.max_query_length=16"])
    data = get_task("question_answering").load_data(config, tokenizer, seed=0)
    assert [e.id for e in data.extras["train"]["examples"]] == ["q1", "q2", "q3"]


def test_missing_file_and_not_json(tmp_path):
    with pytest.raises(DataError, match="SQuAD file not found"):
        read_squad(tmp_path / "nope.json")
    with pytest.raises(DataError, match=r"not JSON \(.* line 1, column 11\)"):
        read_squad(write(tmp_path, '{"data": [}'))


def test_questions_without_answers_when_allowed(tmp_path):
    data = small_squad()
    del data["data"][0]["paragraphs"][0]["qas"][0]["answers"]
    examples = read_squad(write(tmp_path, data), require_answers=False)
    assert examples[0].answers == [] and examples[1].answers[0]["text"] == "Poland"


# --- article splits ---------------------------------------------------------------------------

def test_select_articles_specs(tmp_path):
    examples = [QAExample(f"q{i}", f"t{i // 2}", i // 2, "c", "q", []) for i in range(12)]  # articles 0-5
    assert [e.article_index for e in select_articles(examples, "1-2")] == [1, 1, 2, 2]
    assert [e.article_index for e in select_articles(examples, "0, 4-5")] == [0, 0, 4, 4, 5, 5]
    assert len(select_articles(examples, "3")) == 2
    for spec, error in [("5-2", "ends before it starts"), ("x-3", "cannot read 'x-3'"), ("", "expected ranges"),
                        ("4-9", "asks for article 9 but the data has articles 0-5")]:
        with pytest.raises(DataError, match=error):
            select_articles(examples, spec)


@needs_squad
def test_real_squad_file_and_article_split(squad_examples):
    assert len(squad_examples) == 8123
    first = squad_examples[0]
    assert first.id == "56be4db0acb8001400a502ec" and first.title == "Super_Bowl_50"
    assert [a["text"] for a in first.answers] == ["Denver Broncos"] * 3
    assert len({e.article_index for e in squad_examples}) == 36

    train, evaluation = select_articles(squad_examples, "0-29"), select_articles(squad_examples, "30-35")
    assert {e.title for e in train}.isdisjoint({e.title for e in evaluation})
    assert len({e.title for e in train}) == 30 and len({e.title for e in evaluation}) == 6
    assert len(train) + len(evaluation) == 8123
    assert {e.id for e in train} | {e.id for e in evaluation} == {e.id for e in squad_examples}


# --- windows and labels -----------------------------------------------------------------------

WORDS = ("river stone market city harbour lighthouse keeper northern festival merchants "
         "bridge ancient tower garden copper railway village carpenter museum orchard").split()


def long_context(tokenizer, approx_tokens: int = 1000) -> str:
    rng = random.Random(0)
    sentences = []
    while len(tokenizer.tokenize(" ".join(sentences))) < approx_tokens:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 12))]
        sentences.append(" ".join(words).capitalize() + rng.choice([".", ",", ";", "!"]))
    return " ".join(sentences)


def context_token_offsets(tokenizer, context: str) -> list[tuple[int, int]]:
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    return [tuple(o) for o in encoded["offset_mapping"]]


def example_at_tokens(qid: str, question: str, context: str, offsets, first: int, last: int) -> QAExample:
    """An example whose answer covers context tokens first..last (so its label is exact)."""
    start, end = offsets[first][0], offsets[last][1]
    return QAExample(qid, "synthetic", 0, context, question, [{"text": context[start:end], "answer_start": start}])


def check_windows(features, examples, tokenizer, stride: int, max_seq_length: int) -> None:
    """Overlap, coverage, special tokens and labels of every example's windows."""
    for index, example in enumerate(examples):
        windows = np.flatnonzero(features.example_index == index)
        global_offsets = context_token_offsets(tokenizer, example.context)
        position = {o: i for i, o in enumerate(global_offsets)}
        covered: set[int] = set()
        previous = None
        answer_start = example.answers[0]["answer_start"]
        answer_end = answer_start + len(example.answers[0]["text"])
        for window in windows:
            offsets = features.window_offsets(window)
            ids = features.window(window)
            assert len(ids) <= max_seq_length
            assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            context_rows = np.flatnonzero(offsets[:, 0] >= 0)
            # The context is one contiguous run after "[CLS] question [SEP]", then the final [SEP].
            assert np.array_equal(context_rows, np.arange(context_rows[0], len(ids) - 1))
            assert ids[context_rows[0] - 1] == tokenizer.sep_token_id
            assert np.all(features.window(window, "token_type_ids")[context_rows] == 1)
            assert np.all(features.window(window, "token_type_ids")[: context_rows[0]] == 0)
            tokens = [position[tuple(o)] for o in offsets[context_rows]]
            assert tokens == list(range(tokens[0], tokens[-1] + 1))
            if previous is not None:
                # Consecutive windows share exactly `stride` context tokens.
                assert tokens[0] == previous[-1] - stride + 1
            covered.update(tokens)
            previous = tokens

            start, end = features.start_positions[window], features.end_positions[window]
            holds_answer = offsets[context_rows[0], 0] <= answer_start and offsets[context_rows[-1], 1] >= answer_end
            if holds_answer:
                assert example.context[offsets[start, 0]: offsets[end, 1]] == example.answers[0]["text"]
            else:
                assert (start, end) == (0, 0)
        assert covered == set(range(len(global_offsets)))


def test_long_context_windows(tokenizer):
    context = long_context(tokenizer)
    offsets = context_token_offsets(tokenizer, context)
    assert 950 <= len(offsets) <= 1100
    question = "Where did the lighthouse keeper go?"
    max_seq_length, stride = 128, 32
    room = max_seq_length - len(tokenizer.tokenize(question)) - 3
    step = room - stride
    examples = [
        # Inside the overlap of windows 0 and 1, so both hold it.
        example_at_tokens("overlap", question, context, offsets, step + 5, step + 9),
        example_at_tokens("first-token", question, context, offsets, 0, 2),
        example_at_tokens("last-token", question, context, offsets, len(offsets) - 3, len(offsets) - 1),
        # Straddles the end of window 2 beyond the overlap: only window 3 holds it whole.
        example_at_tokens("straddle", question, context, offsets, 2 * step + room - 2, 2 * step + room + 3),
    ]
    features = prepare_qa_features(examples, tokenizer, max_seq_length=max_seq_length, doc_stride=stride)
    assert set(features.features) == {"input_ids", "token_type_ids"}
    values, splits = features.features["input_ids"]
    assert values.dtype == np.int32 and splits.dtype == np.int64 and splits[-1] == len(values)
    assert features.offsets.shape == (len(values), 2)
    per_example = np.bincount(features.example_index)
    assert len(set(per_example)) == 1 and per_example[0] >= 10
    assert np.all(features.lengths[:-1][np.diff(features.example_index) == 0] == max_seq_length)
    check_windows(features, examples, tokenizer, stride, max_seq_length)

    holding = [np.flatnonzero((features.example_index == i) & (features.start_positions > 0)) for i in range(4)]
    assert [len(h) for h in holding] == [2, 1, 1, 1]
    first_window_of = {i: np.flatnonzero(features.example_index == i)[0] for i in range(4)}
    assert holding[1][0] == first_window_of[1]
    assert holding[3][0] == first_window_of[3] + 3

    predict = prepare_qa_features(examples, tokenizer, max_seq_length=max_seq_length, doc_stride=stride, training=False)
    assert predict.start_positions is None and predict.end_positions is None
    assert np.array_equal(predict.offsets, features.offsets)


def test_question_longer_than_budget(tokenizer):
    context = long_context(tokenizer, approx_tokens=300)
    offsets = context_token_offsets(tokenizer, context)
    question = "Why did the northern river flood the old harbour village again? " * 30
    assert len(tokenizer.tokenize(question)) > 300
    example = example_at_tokens("long-q", question, context, offsets, 100, 104)
    features = prepare_qa_features([example], tokenizer, max_seq_length=128, doc_stride=32, max_query_length=64)
    question_ids = tokenizer(question, add_special_tokens=False)["input_ids"][:64]
    for window in range(len(features)):
        ids = features.window(window)
        first_context = np.flatnonzero(features.window_offsets(window)[:, 0] >= 0)[0]
        assert first_context == 64 + 2  # [CLS] + 64 question tokens + [SEP]
        assert list(ids[1:65]) == question_ids
    check_windows(features, [example], tokenizer, 32, 128)
    assert np.count_nonzero(features.start_positions) >= 1


def test_budget_errors_instead_of_tokenizer_panic(tokenizer):
    example = QAExample("q", "t", 0, "a b c d", "why?", [{"text": "b", "answer_start": 2}])
    # 128 - 64 - 3 special tokens leaves room for 61 context tokens; the stride must be smaller.
    prepare_qa_features([example], tokenizer, max_seq_length=128, doc_stride=60)
    with pytest.raises(ConfigError, match="doc_stride 61"):
        prepare_qa_features([example], tokenizer, max_seq_length=128, doc_stride=61)
    with pytest.raises(ConfigError, match="leaves no room"):
        prepare_qa_features([example], tokenizer, max_seq_length=66, doc_stride=0)


@needs_squad
def test_real_squad_labels_decode_to_the_answer(squad_examples, tokenizer):
    examples = squad_examples[:200]
    features = prepare_qa_features(examples, tokenizer, max_seq_length=384, doc_stride=128)
    matches, explained = 0, 0
    for index, example in enumerate(examples):
        answer = example.answers[0]["text"]
        windows = [w for w in np.flatnonzero(features.example_index == index) if features.start_positions[w] > 0]
        assert windows, f"question {example.id} has no window labelled with its answer"
        decoded = {
            example.context[features.window_offsets(w)[features.start_positions[w], 0]:
                            features.window_offsets(w)[features.end_positions[w], 1]]
            for w in windows
        }
        if all(normalize_answer(text) == normalize_answer(answer) for text in decoded):
            matches += 1
        elif all(answer in text for text in decoded):
            explained += 1
    # 192 of the first 200 decode to exactly the answer. The other 8 are all SQuAD answers whose
    # characters start or end inside a word piece, e.g. "gold" at the start of "golden", "5" inside
    # "50", "10." in "2010." (annotators' answer_start often marks the first occurrence of a short
    # string). A token label cannot be finer than a token, so it decodes to the enclosing text,
    # which must still contain the answer. Tokenization and labelling are deterministic, so the
    # counts are exact: a label one token off would change them.
    assert (matches, explained) == (192, 8)
