"""SQuAD v1.1 exact match / F1 against hand-worked examples, and start/end token accuracy."""
from __future__ import annotations

import pytest

from tfbert.evaluation.squad_metrics import (
    exact_match_score,
    f1_score,
    metric_max_over_ground_truths,
    normalize_answer,
    span_accuracy,
    squad_evaluate,
)


@pytest.mark.parametrize("text, expected", [
    ("The Denver Broncos", "denver broncos"),
    ("an apple a day", "apple day"),
    ("  Santa\tClara,\n California. ", "santa clara california"),
    ("Levi's Stadium!", "levis stadium"),
    # Articles only as whole words: "theatre" and "another" keep their letters.
    ("the theatre of another", "theatre of another"),
    # Punctuation goes before articles: "A.B." becomes "ab", not an article followed by "b".
    ("A.B.", "ab"),
    ("24–10", "24–10"),  # the en dash is not ASCII punctuation, as in the official script
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_articles_punctuation_and_spacing():
    assert exact_match_score("the  Denver Broncos.", "Denver broncos") == 1.0
    assert exact_match_score("Denver", "Denver Broncos") == 0.0


def test_f1_partial_overlap_by_hand():
    # pred "the big red dog" -> [big, red, dog]; ref "red dog house" -> [red, dog, house]
    # common = {red, dog} = 2; precision = 2/3, recall = 2/3
    # F1 = 2 * (2/3) * (2/3) / (2/3 + 2/3) = 2/3
    assert f1_score("the big red dog", "red dog house") == pytest.approx(2 / 3)
    # pred [denver, broncos, won] vs ref [denver, broncos]: common 2, P = 2/3, R = 1
    # F1 = 2 * (2/3) * 1 / (2/3 + 1) = (4/3) / (5/3) = 0.8
    assert f1_score("Denver Broncos won", "the Denver Broncos") == pytest.approx(0.8)
    # Tokens are a multiset: pred [dog, dog, dog] vs ref [dog] share 1, P = 1/3, R = 1
    # F1 = 2 * (1/3) / (4/3) = 0.5
    assert f1_score("dog dog dog", "dog") == pytest.approx(0.5)
    assert f1_score("Carolina Panthers", "Denver Broncos") == 0.0


def test_max_over_several_reference_answers():
    refs = ["Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area"]
    # vs ref 1: [santa, clara] / [santa, clara, california]: P = 1, R = 2/3, F1 = 0.8
    # vs refs 2 and 3: no common token, F1 = 0; the best is 0.8, and no exact match.
    assert metric_max_over_ground_truths(f1_score, "Santa Clara", refs) == pytest.approx(0.8)
    assert metric_max_over_ground_truths(exact_match_score, "Santa Clara", refs) == 0.0
    assert metric_max_over_ground_truths(exact_match_score, "levi's stadium", refs) == 1.0
    assert metric_max_over_ground_truths(f1_score, "anything", []) == 0.0


def test_empty_prediction_scores_zero():
    assert exact_match_score("", "Denver Broncos") == 0.0
    assert f1_score("", "Denver Broncos") == 0.0


def test_normalisation_to_empty_tokens():
    # Both sides normalise to "": exact match is 1 but F1 is 0, because the official v1.1
    # script has no special case for empty token lists (v2.0 added one). Kept for comparability.
    assert normalize_answer("The") == "" and normalize_answer("a!") == ""
    assert exact_match_score("The", "a!") == 1.0
    assert f1_score("The", "a!") == 0.0
    # Only one side empty: zero, and no division by zero.
    assert f1_score("!!!", "Denver") == 0.0
    assert f1_score("Denver", "an") == 0.0


def test_squad_evaluate_by_hand():
    references = {
        "q1": ["Denver Broncos", "the Broncos"],
        "q2": ["Santa Clara, California"],
        "q3": ["gold"],
        "q4": ["February 7, 2016"],
    }
    predictions = {
        "q1": "The Broncos",  # EM 1, F1 1
        "q2": "Santa Clara",  # EM 0, F1 0.8 (see above)
        # q3 has no prediction: it counts as 0 on both, like the official script.
        "q4": "",  # EM 0, F1 0
        "unknown": "ignored",  # not a reference question
    }
    result = squad_evaluate(references, predictions)
    # EM = 100 * (1 + 0 + 0 + 0) / 4 = 25; F1 = 100 * (1 + 0.8 + 0 + 0) / 4 = 45
    assert result["exact_match"] == pytest.approx(25.0)
    assert result["f1"] == pytest.approx(45.0)
    assert result["num_questions"] == 4
    assert result["num_missing"] == 1


def test_squad_evaluate_perfect_and_empty():
    assert squad_evaluate({"a": ["x y"]}, {"a": "X  y."}) == {
        "exact_match": 100.0, "f1": 100.0, "num_questions": 1, "num_missing": 0,
    }
    with pytest.raises(ValueError):
        squad_evaluate({}, {"a": "x"})


def test_span_accuracy():
    result = span_accuracy([3, 5, 0, 7], [4, 6, 0, 9], [3, 5, 1, 7], [4, 9, 0, 9])
    # starts right: windows 0, 1, 3 -> 3/4; ends right: 0, 2, 3 -> 3/4; both: 0, 3 -> 2/4
    assert result == {"start_accuracy": 0.75, "end_accuracy": 0.75, "span_accuracy": 0.5}
    with pytest.raises(ValueError):
        span_accuracy([1, 2], [1, 2], [1], [1])
    with pytest.raises(ValueError):
        span_accuracy([], [], [], [])
