"""n-best span decoding: invalid spans, windows, empty answers, and a real round trip."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tfbert.data.qa_features import QAFeatures, prepare_qa_features
from tfbert.data.squad import QAExample, read_squad, reference_answers
from tfbert.evaluation.qa_decoding import NO_ANSWER, Prediction, decode_n_best, decode_predictions
from tfbert.evaluation.squad_metrics import squad_evaluate

CONTEXT = "Denver Broncos beat the Carolina Panthers"
#          0     6 7      14 15 19 20 23 24     32 33     41
WORDS = [(0, 6), (7, 14), (15, 19), (20, 23), (24, 32), (33, 41)]
NOT = (-1, -1)
# Window layout: 0 [CLS], 1-2 question, 3 [SEP], 4-9 the six context words, 10 [SEP].
WINDOW = [NOT, NOT, NOT, NOT, *WORDS, NOT]
CLS, Q1, Q2, SEP, DENVER, BRONCOS, BEAT, THE, CAROLINA, PANTHERS, END_SEP = range(11)

EXAMPLE = QAExample("q", "t", 0, CONTEXT, "Who won?", [{"text": "Denver Broncos", "answer_start": 0}])


def make_features(windows: list[list[tuple[int, int]]], example_index: list[int]) -> QAFeatures:
    """Features with hand-written offsets; token ids do not matter to decoding."""
    lengths = [len(w) for w in windows]
    splits = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.zeros(splits[-1], np.int32)
    return QAFeatures(
        features={"input_ids": (ids, splits)},
        example_index=np.asarray(example_index, np.int64),
        offsets=np.asarray([o for w in windows for o in w], np.int32).reshape(-1, 2),
    )


def logits(peaks: dict[int, float], length: int = len(WINDOW), base: float = -5.0) -> np.ndarray:
    row = np.full(length, base)
    for index, value in peaks.items():
        row[index] = value
    return row


def decode_one(start: dict, end: dict, **kw) -> Prediction:
    features = make_features([WINDOW], [0])
    return decode_predictions([logits(start)], [logits(end)], features, [EXAMPLE], **kw)["q"]


def test_end_before_start_never_chosen():
    # (CAROLINA, BRONCOS) scores 20 but ends before it starts; the best valid pair is
    # (DENVER, BRONCOS) at 2 + 10 = 12, ahead of (CAROLINA, PANTHERS) at 10 + 1 = 11.
    best = decode_one({CAROLINA: 10, DENVER: 2}, {BRONCOS: 10, PANTHERS: 1})
    assert best == Prediction("Denver Broncos", 0, 14, 12.0)


def test_spans_outside_the_context_rejected():
    # DENVER is a strong end but only for spans starting in the question (start DENVER is -100).
    start = {CLS: 100, Q1: 90, SEP: 80, Q2: 70, DENVER: -100, BEAT: 1}
    end = {CLS: 100, Q2: 90, END_SEP: 80, DENVER: 75, BEAT: 1}
    # [CLS]-[CLS], question spans, [SEP] spans and question-to-context spans all score higher.
    best = decode_one(start, end)
    assert (best.text, best.start_char, best.end_char, best.score) == ("beat", 15, 19, 2.0)
    for candidate in decode_n_best([logits(start)], [logits(end)], make_features([WINDOW], [0]), [EXAMPLE])["q"]:
        assert candidate.start_char >= 0 and CONTEXT[candidate.start_char: candidate.end_char] == candidate.text


def test_spans_longer_than_max_answer_length_rejected():
    start, end = {DENVER: 5, BRONCOS: 4}, {PANTHERS: 5}
    # DENVER..PANTHERS (6 tokens) scores 10, BRONCOS..PANTHERS (5 tokens) 9; the length limit is inclusive.
    assert decode_one(start, end, max_answer_length=6) == Prediction(CONTEXT, 0, 41, 10.0)
    assert decode_one(start, end, max_answer_length=5) == Prediction("Broncos beat the Carolina Panthers", 7, 41, 9.0)
    features = make_features([WINDOW], [0])
    n_best = decode_n_best([logits(start)], [logits(end)], features, [EXAMPLE], max_answer_length=2)["q"]
    assert n_best and all(len(p.text.split()) <= 2 for p in n_best)


def test_best_span_across_two_windows():
    # The same example split in two overlapping windows: words 0-3 and words 2-5.
    first = [NOT, NOT, NOT, NOT, *WORDS[:4], NOT]
    second = [NOT, NOT, NOT, NOT, *WORDS[2:], NOT]
    features = make_features([first, second], [0, 0])
    # Window 1: DENVER, BRONCOS and THE; window 2: CAROLINA, PANTHERS and BEAT.
    start = [logits({4: 3, 7: 1}, len(first)), logits({6: 4, 4: 1.5}, len(second))]
    end = [logits({5: 3, 7: 1}, len(first)), logits({7: 4, 4: 1.5}, len(second))]
    n_best = decode_n_best(start, end, features, [EXAMPLE])["q"]
    assert n_best[:3] == [
        Prediction("Carolina Panthers", 24, 41, 8.0),  # window 2
        Prediction("Denver Broncos", 0, 14, 6.0),  # window 1
        Prediction("beat the Carolina Panthers", 15, 41, 5.5),  # window 2
    ]
    assert decode_predictions(start, end, features, [EXAMPLE])["q"] == n_best[0]
    # "beat" is in both windows (-5 + -5 in window 1, 1.5 + 1.5 in window 2): listed once, best score.
    # "the" likewise, but its better score (1 + 1) is in the first window.
    assert [p for p in n_best if p.text == "beat"] == [Prediction("beat", 15, 19, 3.0)]
    assert [p for p in n_best if p.text == "the"] == [Prediction("the", 20, 23, 2.0)]
    assert [p.score for p in n_best] == sorted((p.score for p in n_best), reverse=True)


def test_no_valid_span_gives_empty_prediction():
    # With one start and one end candidate, the only pair ends before it starts.
    best = decode_one({PANTHERS: 9}, {DENVER: 9}, n_best_size=1)
    assert best == NO_ANSWER
    assert (best.text, best.start_char, best.end_char) == ("", -1, -1) and math.isinf(best.score) and best.score < 0
    # A window with no context tokens at all (and a second question with no windows).
    other = QAExample("r", "t", 0, CONTEXT, "?", [])
    features = make_features([[NOT, NOT, NOT]], [0])
    result = decode_predictions([np.zeros(3)], [np.zeros(3)], features, [EXAMPLE, other])
    assert result == {"q": NO_ANSWER, "r": NO_ANSWER}
    assert decode_n_best([np.zeros(3)], [np.zeros(3)], features, [EXAMPLE, other]) == {"q": [], "r": []}


def test_n_best_size_limits_candidates():
    start = {PANTHERS: 9, CAROLINA: 8, DENVER: 7}
    end = {DENVER: 9, PANTHERS: 8, BRONCOS: 7}
    # n_best 1: only (PANTHERS, DENVER), invalid. n_best 2 adds CAROLINA and PANTHERS as end.
    assert decode_one(start, end, n_best_size=1) == NO_ANSWER
    assert decode_one(start, end, n_best_size=2).text == "Panthers"  # 9 + 8 beats CAROLINA..PANTHERS 8 + 8
    assert decode_one(start, end, n_best_size=3).text == "Panthers"
    features = make_features([WINDOW], [0])
    for size in (1, 2, 3, 5):
        n_best = decode_n_best([logits(start)], [logits(end)], features, [EXAMPLE], n_best_size=size)["q"]
        assert len(n_best) <= size
    # 3 starts x 3 ends give five valid pairs: Panthers 17, Denver 16, Carolina Panthers 16,
    # Denver..Panthers 15, Denver Broncos 14; the list keeps the best 3 (ties by position).
    n_best = decode_n_best([logits(start)], [logits(end)], features, [EXAMPLE], n_best_size=3)["q"]
    assert [(p.text, p.score) for p in n_best] == [("Panthers", 17.0), ("Denver", 16.0), ("Carolina Panthers", 16.0)]


def test_padded_2d_logits_ignore_padding():
    short = [NOT, NOT, *WORDS[:2], NOT]
    features = make_features([WINDOW, short], [0, 1])
    other = QAExample("r", "t", 0, CONTEXT, "?", [])
    start = np.full((2, 11), -5.0)
    end = np.full((2, 11), -5.0)
    start[0, BEAT] = end[0, BEAT] = 1
    start[1, 3] = end[1, 3] = 2  # "Broncos" in the short window
    start[1, 6:] = end[1, 6:] = 100  # padding positions: must never be read
    padded = decode_predictions(start, end, features, [EXAMPLE, other])
    ragged = decode_predictions([start[0], start[1, :5]], [end[0], end[1, :5]], features, [EXAMPLE, other])
    assert padded == ragged
    assert padded["q"].text == "beat" and padded["r"].text == "Broncos"


def test_shape_mismatch_errors():
    features = make_features([WINDOW], [0])
    with pytest.raises(ValueError, match="1 windows"):
        decode_predictions([logits({}), logits({})], [logits({})], features, [EXAMPLE])
    with pytest.raises(ValueError, match="only 5 logits"):
        decode_predictions([np.zeros(5)], [np.zeros(5)], features, [EXAMPLE])
    with pytest.raises(ValueError, match="n_best_size"):
        decode_predictions([logits({})], [logits({})], features, [EXAMPLE], n_best_size=0)


SQUAD_FILE = SHARED_DATA / "squad_v1.1" / "dev-v1.1-articles-00-35.json"


@pytest.mark.skipif(not SQUAD_FILE.is_file(), reason="../shared/data/squad_v1.1 is not beside the project")
def test_round_trip_on_real_questions_gives_exact_match_100(bundled_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_dir))
    examples = read_squad(SQUAD_FILE)
    # Question 4's first answer "gold" starts inside the token "golden" (see test_squad_data),
    # so its token label cannot decode to exactly "gold"; the rest are token-aligned.
    chosen = examples[:4] + examples[5:12] + examples[-3:]
    # Small windows, so most contexts span several and the decoder must pick the right one.
    features = prepare_qa_features(chosen, tokenizer, max_seq_length=96, doc_stride=24)
    windows_per_question = np.bincount(features.example_index)
    assert windows_per_question.min() >= 2 and windows_per_question.max() >= 3
    rng = np.random.default_rng(0)
    start_logits, end_logits = [], []
    for window, length in enumerate(features.lengths):
        start, end = rng.uniform(-1, 1, length), rng.uniform(-1, 1, length)
        # Windows without the answer peak at [CLS] (their label), which is never a valid span.
        start[features.start_positions[window]] = 10
        end[features.end_positions[window]] = 10
        start_logits.append(start)
        end_logits.append(end)
    predictions = decode_predictions(start_logits, end_logits, features, chosen)
    result = squad_evaluate(reference_answers(chosen), {qid: p.text for qid, p in predictions.items()})
    assert result == {"exact_match": 100.0, "f1": 100.0, "num_questions": len(chosen), "num_missing": 0}
    for example in chosen:
        prediction = predictions[example.id]
        assert prediction.score == 20
        assert example.context[prediction.start_char: prediction.end_char] == prediction.text
