"""Extractive QA's config facts, without TensorFlow: its ``task`` and ``data`` keys, their checks, metric names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tfbert.config.checks import require
from tfbert.config.schema import DataConfig, ExperimentConfig, TaskConfig
from tfbert.tasks.registry import TaskSpec, register_spec


@dataclass
class SquadDataConfig(DataConfig):
    """``data`` keys of extractive QA: article ranges per split, windowing of long contexts.

    ``validation_split``/``test_split`` hold out whole articles of the training file, as the
    article ranges do: no context is ever on both sides.
    """

    train_articles: Optional[str] = None
    validation_articles: Optional[str] = None
    test_articles: Optional[str] = None
    doc_stride: int = 128
    max_query_length: int = 64


@dataclass
class QuestionAnsweringConfig(TaskConfig):
    """``task`` keys of extractive QA: n-best decoding."""

    n_best_size: int = 20
    max_answer_length: int = 30

    def validate(self, config: ExperimentConfig) -> None:
        d = config.data
        require(self.n_best_size >= 1, "task.n_best_size", "must be >= 1")
        require(self.max_answer_length >= 1, "task.max_answer_length", "must be >= 1")
        require(0 < d.doc_stride, "data.doc_stride", "must be > 0")
        require(not (d.train_articles and len(d.train_files()) > 1), "data.train_articles",
                "selects articles of one file; data.train_file lists several (select per file, or drop it)")
        require(0 < d.max_query_length and d.max_query_length + d.doc_stride + 3 < d.max_seq_length,
                "data.max_query_length",
                "max_query_length + doc_stride + 3 special tokens must be < data.max_seq_length "
                "(each window must advance through the context)")


SPEC = register_spec(TaskSpec(
    type="question_answering",
    task_class="tfbert.tasks.question_answering.task:QuestionAnswering",
    config_class=QuestionAnsweringConfig,
    data_config_class=SquadDataConfig,
    metric_names=("loss", "exact_match", "f1", "start_accuracy", "end_accuracy"),
    train_metric_names=("start_logits_accuracy", "end_logits_accuracy"),
))

__all__ = ["QuestionAnsweringConfig", "SPEC", "SquadDataConfig"]
