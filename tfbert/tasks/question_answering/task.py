"""Extractive QA (SQuAD v1.1): doc-stride windows, span head, n-best decoding, EM/F1."""
from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras

from tfbert.config import file_list
from tfbert.data.encoding import EncodedSplit
from tfbert.data.qa_features import prepare_qa_features
from tfbert.data.splits import hold_out, split_fractions
from tfbert.data.squad import read_squad, reference_answers, select_articles
from tfbert.errors import DataError
from tfbert.evaluation.predict import predict_per_token
from tfbert.evaluation.qa_decoding import decode_predictions
from tfbert.evaluation.squad_metrics import span_accuracy, squad_evaluate
from tfbert.modeling.losses import MaskedAccuracy, split_loss
from tfbert.modeling.packed import ExampleSpanLogits, ExampleTokens
from tfbert.modeling.span_extractor import END, START, build_span_model
from tfbert.tasks.base import Task, TaskData
from tfbert.tasks.losses import labelled_only
from tfbert.tasks.question_answering.config import SPEC, QuestionAnsweringConfig, SquadDataConfig


class QuestionAnswering(Task):
    """Extractive QA (SQuAD v1.1): a start and an end logit per token, n-best decoding, EM/F1.

    Examples:
        >>> task = get_task("question_answering")  # doctest: +SKIP
        >>> task.config_class().n_best_size  # doctest: +SKIP
        20
    """

    spec = SPEC
    hf_auto_class = "TFAutoModelForQuestionAnswering"
    head_name = "qa_outputs"
    pipeline_tag = ("question-answering", "Question Answering")
    output_names = (START, END)
    one_output_per_label = False
    hub_metrics = {"loss": None, "exact_match": ("exact_match", "Exact Match"), "f1": ("f1", "F1"),
                   "start_accuracy": None, "end_accuracy": None}

    def has_validation(self, config) -> bool:
        return super().has_validation(config) or bool(config.data.validation_articles)

    def reads_pairs(self, config) -> bool:
        return True  # question + context

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        d = config.data
        if splits:
            plan = {name: (path, None) for name, path in splits.items()}
        else:
            plan = {name: (path, articles) for name, path, articles in (
                ("train", d.train_files(), d.train_articles),
                ("validation", d.validation_file, d.validation_articles),
                ("test", d.test_file, d.test_articles),
            ) if path}
        if not plan:
            raise DataError("config key 'data.train_file': no data files configured")
        data = TaskData(label_names=[])
        cache: dict[str, list] = {}
        selected = {}
        for split, (paths, articles) in plan.items():
            paths = file_list(paths)
            if d.format not in ("auto", "squad", "json"):
                raise DataError(f"{paths[0]}: question answering reads SQuAD v1.1 JSON, not {d.format}")
            for path in paths:
                if path not in cache:  # train and validation are often articles of one file: read it once
                    cache[path] = read_squad(path)
            examples = [(path, e) for path in paths for e in cache[path]]
            if articles:
                kept = {id(e) for e in select_articles([e for _, e in examples], articles)}
                examples = [(path, e) for path, e in examples if id(e) in kept]
            selected[split] = examples
        fractions = {} if splits else split_fractions(d, present=selected)
        if fractions:
            # Whole articles are held out, so no context is on both sides of a split.
            train = selected["train"]
            for split, rows in hold_out(len(train), fractions, seed, " + ".join(file_list(plan["train"][0])),
                                        groups=[(path, e.article_index) for path, e in train],
                                        unit="articles").items():
                selected[split] = [train[i] for i in rows]
        for split, pairs in selected.items():
            examples = [e for _, e in pairs]
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

    #: HF's BertForQuestionAnswering loss: the mean of the start and end cross-entropies.
    LOSS_WEIGHTS = {START: 0.5, END: 0.5}

    def loss(self):
        ce = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {START: ce, END: ce}

    def compile_args(self):
        return {
            "loss": self.loss(),
            "loss_weights": self.LOSS_WEIGHTS,
            "metrics": {START: [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                        END: [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
        }

    def packed_outputs(self, model, main, hidden, inputs, max_examples_per_pack, pooling):
        logits = model.get_layer("qa_outputs")(hidden)
        membership = ExampleTokens(max_examples_per_pack, name="example_tokens")(inputs["example_ids"])
        return {START: ExampleSpanLogits(name=START, dtype="float32")([logits[..., 0], membership]),
                END: ExampleSpanLogits(name=END, dtype="float32")([logits[..., 1], membership])}

    def packed_compile_args(self):
        # The same loss and weights as unpacked, each window's cross-entropy counted once per real slot.
        return {
            "loss": labelled_only(self.loss()),
            "loss_weights": self.LOSS_WEIGHTS,
            "metrics": {START: [MaskedAccuracy(name="accuracy")], END: [MaskedAccuracy(name="accuracy")]},
        }

    def _split_loss(self, logits: dict[str, list[np.ndarray]], gold: dict[str, Any]) -> float:
        """`loss` over a split's windows, whose rows differ in length: padded with a logit of -1e9,
        whose softmax share is exactly 0 in float32."""
        if not len(gold[START]):
            return 0.0
        losses = self.loss()
        total = 0.0
        for key, weight in self.LOSS_WEIGHTS.items():
            rows = logits[key]
            padded = np.full((len(rows), max(len(r) for r in rows)), -1e9, np.float32)
            for i, row in enumerate(rows):
                padded[i, :len(row)] = row
            total += weight * split_loss(losses[key], np.asarray(gold[key]), padded)
        return total

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
        loss = self._split_loss(logits, {START: gold_start, END: gold_end})
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

    report_headlines = (("exact_match", "exact match (%)"), ("f1", "F1 (%)"), ("loss", "loss"))
    report_figures = ("qa_answer_lengths",)

    def degenerate_reason(self, report: dict):
        return None if report["f1"] > 0 else "no answer overlaps a reference (F1 0)"

    def summary(self, report: dict) -> str:
        return (f"EM {report['exact_match']:.2f}, F1 {report['f1']:.2f} on {report['num_examples']} questions; "
                f"start/end token accuracy {report['start_accuracy']:.4f}/{report['end_accuracy']:.4f}")

    def serving_module_class(self):
        from tfbert.tasks.question_answering.serving import QAServingModule

        return QAServingModule


__all__ = ["QuestionAnswering", "QuestionAnsweringConfig", "SquadDataConfig"]
