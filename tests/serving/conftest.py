"""Serving fixtures: the three task exports of the tiny random BERT, built once per session."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def export_all_tasks(model_dir: Path, out: Path) -> dict[str, Path]:
    """Classification, NER and QA SavedModels of `model_dir` (untrained heads) under `out`."""
    from tests.conftest import write_spam_tsv
    from tests.test_question_answering import squad_file
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment

    ner_data = out / "ner.jsonl"
    rows = [{"tokens": ["I", "love", c, "so", "much"], "tags": ["O", "O", "B-LOC", "O", "O"]}
            for c in ["Paris", "Berlin", "New York"]] * 4
    rows += [{"tokens": ["Ángela", "Merkel", "said"], "tags": ["B-PER", "I-PER", "O"]}] * 4
    ner_data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = {
        "classification": [f"data.train_file={write_spam_tsv(out / 'spam.tsv')}", "data.has_header=false",
                           "data.column_names=[label, text]", "data.max_seq_length=32"],
        "ner": ["task.type=token_classification", f"data.train_file={ner_data}", "data.max_seq_length=24",
                "training.metric_for_best_model=loss"],
        "qa": ["task.type=question_answering", f"data.train_file={squad_file(out / 'squad.json')}",
               "data.max_seq_length=48", "data.doc_stride=12", "data.max_query_length=12",
               "task.max_answer_length=8", "training.metric_for_best_model=loss"],
    }
    paths = {}
    for task, overrides in settings.items():
        config = load_config(None, [f"model.name_or_path={model_dir}", f"training.output_dir={out / task}-run",
                                    *overrides])
        experiment = build_experiment(config)
        paths[task] = experiment.task.export(experiment.model, experiment.tokenizer, experiment.label_names,
                                             out / f"{task}-sm", config)
    return paths


@pytest.fixture(scope="session")
def task_exports(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """{"classification" | "ner" | "qa": SavedModel directory}, exported once per session."""
    return export_all_tasks(tiny_model_dir, tmp_path_factory.mktemp("task-exports"))
