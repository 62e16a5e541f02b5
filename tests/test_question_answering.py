"""Extractive QA end to end on the tiny model: windows, span head, decoding, EM/F1, save/reload."""
from __future__ import annotations

import json

import numpy as np
import pytest


CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower in Paris. It was designed by the company of "
           "Gustave Eiffel and completed in 1889 for the World's Fair. ") * 3


def squad_file(path):
    qas = [
        {"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": CONTEXT.index(a)}]}
        for i, (q, a) in enumerate([("Where is the Eiffel Tower?", "Paris"),
                                    ("When was it completed?", "1889"),
                                    ("Who designed it?", "the company of Gustave Eiffel"),
                                    ("What is it made of?", "wrought-iron")])
    ]
    data = {"data": [{"title": f"T{k}", "paragraphs": [{"context": CONTEXT, "qas": [dict(q, id=f"{q['id']}-{k}") for q in qas]}]}
                     for k in range(3)]}
    path.write_text(json.dumps(data))
    return path


def test_tiny_model_trains_evaluates_and_reloads(tiny_model_dir, tmp_path):
    from tfbert.config import load_config
    from tfbert.modeling.saving import load_pretrained
    from tfbert.tasks import get_task
    from tfbert.run.trainer import train

    path = squad_file(tmp_path / "squad.json")
    config = load_config(None, [
        f"model.name_or_path={tiny_model_dir}", "task.type=question_answering", f"data.train_file={path}",
        "data.train_articles=0-1", f"data.validation_file={path}", "data.validation_articles=2",
        "data.max_seq_length=64", "data.doc_stride=16", "data.max_query_length=16",
        "training.num_train_epochs=2", "training.per_device_train_batch_size=4", "training.verbose=0",
        "training.metric_for_best_model=val_f1", "training.tensorboard=false",
        f"training.output_dir={tmp_path / 'run'}", "export.at_end=false", "optimizer.learning_rate=1e-3",
    ])
    summary = train(config, log=lambda *_: None)
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert report["num_examples"] == 4 and report["num_windows"] > 4  # contexts span several windows
    assert set(report["metrics"]) == {"loss", "exact_match", "f1", "start_accuracy", "end_accuracy"}
    assert np.isfinite(report["loss"])  # that QA learns is tests/test_learning.py's check
    for prediction in report["predictions"].values():  # decoded spans are real context substrings
        assert prediction["text"] == CONTEXT[prediction["start"]:prediction["end"]] or prediction["start"] == -1
    history = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"start_logits_accuracy", "end_logits_accuracy", "val_exact_match", "val_f1"} <= set(history[0])

    loaded = load_pretrained(tmp_path / "run" / "model")
    task = get_task("question_answering")
    data = task.load_data(loaded.config, loaded.tokenizer, seed=0, splits={"test": str(path)})
    again = task.evaluate(loaded.model, data, "test", loaded.config, loaded.tokenizer)
    assert again["num_examples"] == 12
    assert summary["eval"]["split"] == "validation"


def test_qa_config_checks_window_budget():
    from tfbert.config import load_config
    from tfbert.errors import ConfigError

    with pytest.raises(ConfigError, match="data.max_query_length"):
        load_config(None, ["task.type=question_answering", "data.max_seq_length=64", "data.doc_stride=48"])
