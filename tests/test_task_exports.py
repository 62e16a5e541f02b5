"""NER and QA SavedModels answer raw text in a fresh process, agreeing with the Python-side pipeline."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_question_answering import CONTEXT, squad_file

RUN = """
import json, sys
import tensorflow_text  # registers the tokenizer ops before loading
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(**{k: tf.constant(v) for k, v in json.loads(sys.argv[2]).items()})
print(json.dumps({k: (v.numpy().tolist() if v.dtype != tf.string else
                      [[b.decode() for b in row] if isinstance(row, list) else row.decode()
                       for row in v.numpy().tolist()]) for k, v in out.items()}))
"""


def serve_fresh(path, args: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", RUN, str(path), json.dumps(args)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


NER_TEXTS = [
    "I love Paris so much",
    "Tokyo and Berlin are both big , said Ángela Merkel",
    "zero\u200bwidth Ab\u00adcd and 中文 text with emoji 😀 in NEW YORK",
    "",
    "short",
    " ".join(f"w{i}" for i in range(80)),  # longer than max_seq_length: truncated at serving
]


@pytest.fixture(scope="module")
def ner_experiment(tiny_model_dir, tmp_path_factory):
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment

    tmp = tmp_path_factory.mktemp("ner-export")
    rows = [{"tokens": ["I", "love", c, "so", "much"], "tags": ["O", "O", "B-LOC", "O", "O"]}
            for c in ["Paris", "Berlin", "New York"]] * 4
    rows += [{"tokens": ["Ángela", "Merkel", "said"], "tags": ["B-PER", "I-PER", "O"]}] * 4
    path = tmp / "ner.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=token_classification", f"data.train_file={path}",
        "data.max_seq_length=24", f"training.output_dir={tmp / 'run'}", "training.metric_for_best_model=loss",
    ])
    return build_experiment(config), tmp


def predict_entities_in_python(model, tokenizer, texts: list[str], label_names: list[str],
                                max_seq_length: int) -> list[list]:
    """The reference the SavedModel must match: HF fast tokenizer -> model -> first-piece label per word -> entities."""
    from tfbert.evaluation.entities import group_entities

    enc = tokenizer(texts, truncation=True, max_length=max_seq_length, padding=True,
                    return_offsets_mapping=True, return_tensors="np")
    inputs = {name: enc[name].astype(np.int32) for name in model.input_names}
    logits = np.asarray(model(inputs, training=False), dtype=np.float32)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    results = []
    for row, text in enumerate(texts):
        word_ids = enc.word_ids(row)
        tags, spans, scores = [], [], []
        for position, word in enumerate(word_ids):
            if word is None:
                continue
            start, end = (int(x) for x in enc["offset_mapping"][row, position])
            if position == 0 or word_ids[position - 1] != word:
                tags.append(label_names[int(probs[row, position].argmax())])
                scores.append(float(probs[row, position].max()))
                spans.append((start, end))
            else:
                spans[-1] = (spans[-1][0], end)
        results.append(group_entities(text, tags, spans, scores))
    return results


@pytest.fixture(scope="module")
def ner_export(ner_experiment) -> Path:
    """The NER SavedModel, exported once for every test that serves it (whatever order they run in)."""
    experiment, tmp = ner_experiment
    return experiment.task.export(experiment.model, experiment.tokenizer, experiment.label_names, tmp / "sm",
                                  experiment.config)


def test_ner_saved_model_matches_python_pipeline(ner_experiment, ner_export):
    experiment, tmp = ner_experiment
    served = serve_fresh(ner_export, {"text": NER_TEXTS})
    expected = predict_entities_in_python(experiment.model, experiment.tokenizer, NER_TEXTS, experiment.label_names, 24)
    assert sum(len(e) for e in expected) > 0  # the random head tags something, so grouping is exercised
    for row, entities in enumerate(expected):
        n = served["num_entities"][row]
        assert n == len(entities), (NER_TEXTS[row], served, entities)
        got = [(served["entity_type"][row][i], served["entity_start"][row][i], served["entity_end"][row][i],
                served["entity_text"][row][i]) for i in range(n)]
        assert got == [(e.type, e.start, e.end, e.text) for e in entities]
        np.testing.assert_allclose(served["entity_score"][row][:n], [e.score for e in entities], atol=1e-4)
        for _, start, end, text in got:
            assert NER_TEXTS[row][start:end] == text


def test_group_entities_rules():
    from tfbert.evaluation.entities import group_entities

    text = "Ann Lee met Bob in New York"
    spans = [(0, 3), (4, 7), (8, 11), (12, 15), (16, 18), (19, 22), (23, 27)]
    tags = ["B-PER", "I-PER", "O", "I-PER", "O", "B-LOC", "I-LOC"]  # I- after O opens (IOB1)
    entities = group_entities(text, tags, spans, [1.0, 0.5, 1, 1, 1, 1, 1])
    assert [(e.type, e.text) for e in entities] == [("PER", "Ann Lee"), ("PER", "Bob"), ("LOC", "New York")]
    assert entities[0].score == 0.75
    bioes = group_entities(text, ["S-PER", "S-PER", "O", "B-PER", "E-PER", "B-LOC", "I-ORG"], spans, [1] * 7)
    assert [(e.type, e.text) for e in bioes] == [("PER", "Ann"), ("PER", "Lee"), ("PER", "Bob in"), ("LOC", "New"),
                                                  ("ORG", "York")]


@pytest.fixture(scope="module")
def qa_export(tiny_model_dir, tmp_path_factory):
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment

    tmp = tmp_path_factory.mktemp("qa-export")
    path = squad_file(tmp / "squad.json")
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=question_answering", f"data.train_file={path}",
        "data.max_seq_length=48", "data.doc_stride=12", "data.max_query_length=12", "task.max_answer_length=8",
        f"training.output_dir={tmp / 'run'}", "training.metric_for_best_model=loss",
    ])
    experiment = build_experiment(config)
    import tfbert

    # The library's headline export: the config's task picks the serving module (QA's windows here).
    return experiment, tfbert.export_saved_model(experiment.model, experiment.tokenizer, [], tmp / "sm", config=config)


def test_qa_saved_model_matches_python_pipeline(qa_export):
    from tfbert.data.encoding import EncodedSplit
    from tfbert.data.qa_features import prepare_qa_features
    from tfbert.data.squad import QAExample
    from tfbert.evaluation.predict import predict_per_token
    from tfbert.evaluation.qa_decoding import decode_predictions
    from tfbert.modeling.span_extractor import END, START

    experiment, exported = qa_export
    pairs = [("Where is the tower?", CONTEXT), ("Who designed it?", "Gustave Eiffel’s company — in Paris, 1889."),
             ("Is this a long question " + "with many words " * 10 + "?", CONTEXT[:120]), ("Empty?", "Nothing here.")]
    examples = [QAExample(id=str(i), title="", article_index=0, context=c, question=q, answers=[])
                for i, (q, c) in enumerate(pairs)]
    features = prepare_qa_features(examples, experiment.tokenizer, 48, 12, training=False, max_query_length=12)
    logits = predict_per_token(experiment.model, EncodedSplit(features.features, None), 8,
                               experiment.tokenizer.pad_token_id)
    expected = decode_predictions(logits[START], logits[END], features, examples, n_best_size=20, max_answer_length=8)
    served = serve_fresh(exported, {"question": [q for q, _ in pairs], "context": [c for _, c in pairs]})
    for i, (_, context) in enumerate(pairs):
        want = expected[str(i)]
        assert served["answer"][i] == want.text
        assert (served["answer_start"][i], served["answer_end"][i]) == (want.start_char, want.end_char)
        if want.start_char >= 0:
            assert context[want.start_char:want.end_char] == want.text
            assert served["score"][i] == pytest.approx(want.score, abs=1e-4)


def test_predict_tool_on_ner_and_qa(ner_experiment, ner_export, qa_export, tmp_path, capsys):
    from tfbert.cli import common
    from tfbert.cli import predict as predict_cli

    experiment, _ = ner_experiment
    ner_dir = ner_export
    text = "Tokyo and Berlin are both big , said Ángela Merkel"
    assert common.run(predict_cli.main, ["--saved-model", str(ner_dir), "--json", text]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The tool prints the entities the Python pipeline finds (the seeded head tags some here).
    expected = predict_entities_in_python(experiment.model, experiment.tokenizer, [text], experiment.label_names, 24)[0]
    assert expected and record["text"] == text
    assert [(e["type"], e["start"], e["end"], e["text"]) for e in record["entities"]] == \
        [(e.type, e.start, e.end, e.text) for e in expected]
    assert [e["score"] for e in record["entities"]] == pytest.approx([e.score for e in expected], abs=1e-4)
    # An export from before the task type was recorded: the serving modules recognise their signature.
    import shutil

    from tfbert.serving.base import SERVING_INFO

    legacy = tmp_path / "legacy"
    shutil.copytree(ner_dir, legacy)
    (legacy / SERVING_INFO).unlink()
    assert common.run(predict_cli.main, ["--saved-model", str(legacy), "--json", text]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == record

    _, qa_dir = qa_export
    pairs = tmp_path / "qa.jsonl"
    pairs.write_text(json.dumps({"question": "Where is it?", "context": CONTEXT}) + "\n")
    assert common.run(predict_cli.main, ["--saved-model", str(qa_dir), "--json", "--file", str(pairs)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # The tool's record is the SavedModel's own answer, and that is a span of the context.
    served = serve_fresh(qa_dir, {"question": ["Where is it?"], "context": [CONTEXT]})
    assert (record["answer"], record["start"], record["end"]) == (
        served["answer"][0], served["answer_start"][0], served["answer_end"][0])
    assert record["score"] == pytest.approx(served["score"][0], abs=1e-5)
    assert record["start"] >= 0 and record["answer"] == CONTEXT[record["start"]:record["end"]]
    pairs.write_text('{"question": "Where?", "context": "In Paris."}\nnot json\n')
    assert common.run(predict_cli.main, ["--saved-model", str(qa_dir), "--file", str(pairs)]) == 2
    assert "qa.jsonl, line 2: expected a JSON object with 'question' and 'context'" in capsys.readouterr().err


def test_export_tool_uses_the_tasks_serving_module(ner_experiment, tmp_path):
    """tools/export.py on a NER model writes the entity-returning SavedModel, not a classifier."""
    from tfbert.cli import common
    from tfbert.cli import export as export_cli
    from tfbert.modeling.saving import save_pretrained

    experiment, _ = ner_experiment
    model_dir = save_pretrained(tmp_path / "model", experiment.model, experiment.tokenizer, experiment.config,
                                experiment.label_names)
    assert common.run(export_cli.main, ["--model", str(model_dir), "--output", str(tmp_path / "sm")]) == 0
    served = serve_fresh(tmp_path / "sm", {"text": ["I love Paris"]})
    assert "entity_type" in served and "num_entities" in served
