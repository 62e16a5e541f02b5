"""Extractive QA (SQuAD v1.1): doc-stride windows, span head, n-best decoding, EM/F1."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tf_keras

from tfbert.config import ExperimentConfig
from tfbert.data.encoding import EncodedSplit
from tfbert.data.qa_features import prepare_qa_features
from tfbert.data.squad import read_squad, reference_answers, select_articles
from tfbert.errors import DataError
from tfbert.evaluation.classification import softmax_cross_entropy
from tfbert.evaluation.predict import predict_per_token
from tfbert.evaluation.qa_decoding import decode_predictions
from tfbert.evaluation.squad_metrics import span_accuracy, squad_evaluate
from tfbert.modeling.span_head import END, START, build_span_model
from tfbert.tasks.base import Task, TaskData


class QuestionAnswering(Task):
    type = "question_answering"
    metric_names = ("loss", "exact_match", "f1", "start_accuracy", "end_accuracy")
    train_metric_names = ("start_logits_accuracy", "end_logits_accuracy")

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        d = config.data
        if splits:
            plan = {name: (path, None) for name, path in splits.items()}
        else:
            plan = {name: (path, articles) for name, path, articles in (
                ("train", d.train_file, d.train_articles),
                ("validation", d.validation_file, d.validation_articles),
                ("test", d.test_file, d.test_articles),
            ) if path}
        if not plan:
            raise DataError("config key 'data.train_file': no data files configured")
        data = TaskData(label_names=[])
        cache: dict[str, list] = {}
        for split, (path, articles) in plan.items():
            if d.format not in ("auto", "squad", "json"):
                raise DataError(f"{path}: question answering reads SQuAD v1.1 JSON, not {d.format}")
            examples = cache.setdefault(str(path), read_squad(path))
            if articles:
                examples = select_articles(examples, articles)
            features = prepare_qa_features(examples, tokenizer, d.max_seq_length, d.doc_stride, training=True,
                                           max_query_length=d.max_query_length)
            data.splits[split] = EncodedSplit(
                features=features.features,
                labels={START: features.start_positions.astype(np.int32), END: features.end_positions.astype(np.int32)},
            )
            data.extras[split] = {"examples": examples, "features": features}
        return data

    def build_model(self, backbone, config, num_labels, input_names):
        return build_span_model(backbone, input_names,
                                gradient_accumulation_steps=config.training.gradient_accumulation_steps,
                                seed=config.training.seed)

    def compile_args(self):
        # HF's BertForQuestionAnswering loss: the mean of the start and end cross-entropies.
        ce = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {
            "loss": {START: ce, END: ce},
            "loss_weights": {START: 0.5, END: 0.5},
            "metrics": {START: [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                        END: [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
        }

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        examples, features = data.extras[split]["examples"], data.extras[split]["features"]
        logits = predict_per_token(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        predictions = decode_predictions(logits[START], logits[END], features, examples,
                                         n_best_size=config.task.n_best_size,
                                         max_answer_length=config.task.max_answer_length)
        references = reference_answers(examples)
        scores = squad_evaluate(references, {k: p.text for k, p in predictions.items()})
        gold_start, gold_end = encoded.labels[START], encoded.labels[END]
        spans = span_accuracy([l.argmax() for l in logits[START]], [l.argmax() for l in logits[END]],
                              gold_start, gold_end)
        loss = 0.5 * (softmax_cross_entropy(logits[START], gold_start) + softmax_cross_entropy(logits[END], gold_end))
        report = {
            "num_examples": len(examples), "num_windows": len(features),
            "exact_match": scores["exact_match"], "f1": scores["f1"], "loss": loss, **spans,
            "predictions": {k: {"text": p.text, "start": p.start_char, "end": p.end_char, "score": p.score}
                            for k, p in predictions.items()},
            # With the predictions, enough to study the errors (the report's answer lengths).
            "references": references,
        }
        report["metrics"] = {k: report[k] for k in self.metric_names}
        return report

    def summary(self, report: dict) -> str:
        return (f"EM {report['exact_match']:.2f}, F1 {report['f1']:.2f} on {report['num_examples']} questions; "
                f"start/end token accuracy {report['start_accuracy']:.4f}/{report['end_accuracy']:.4f}")

    def export(self, model, tokenizer, label_names, directory: Path, config: ExperimentConfig) -> Path:
        from tfbert.serving.qa_export import export_qa_saved_model

        return export_qa_saved_model(model, tokenizer, directory, config)
