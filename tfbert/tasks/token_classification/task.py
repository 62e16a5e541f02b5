"""Token classification (NER): CoNLL/JSON data, first-subword labels, seqeval entity metrics."""
from __future__ import annotations

import numpy as np

from tfbert.config import file_list
from tfbert.data.conll import TaggedSentence, check_tags, read_tagged, repair_iob2_starts
from tfbert.data.labels import infer_label_names
from tfbert.data.splits import hold_out, split_fractions
from tfbert.data.token_alignment import encode_tagged, word_predictions
from tfbert.errors import DataError
from tfbert.evaluation.ner_metrics import entity_metrics
from tfbert.evaluation.predict import predict_per_token
from tfbert.modeling.losses import MaskedAccuracy, MaskedSparseCategoricalCrossentropy, split_loss
from tfbert.modeling.token_classifier import build_token_classifier
from tfbert.tasks.base import Task, TaskData
from tfbert.tasks.token_classification.config import SPEC, TokenClassificationDataConfig


def _tag_order(tags: list[str]) -> list[str]:
    """``O`` first, then tags grouped by entity type (B/I/E/S), so label ids read naturally."""
    others = sorted((t for t in tags if t != "O"), key=lambda t: (t[2:], "BIES".index(t[0])))
    return (["O"] if "O" in tags else []) + others


class TokenClassification(Task):
    """One tag per word (NER): CoNLL or JSON token/tag lists, seqeval entity metrics.

    Examples:
        >>> task = get_task("token_classification")  # doctest: +SKIP
        >>> task.data_config_class().tag_scheme  # doctest: +SKIP
        'iob2'
    """

    spec = SPEC
    hf_auto_class = "TFAutoModelForTokenClassification"
    pipeline_tag = ("token-classification", "Token Classification")
    hub_metrics = {"loss": None, "precision": ("precision", "Precision"), "recall": ("recall", "Recall"),
                   "f1": ("f1", "F1"), "macro_f1": ("f1", "Macro F1"),
                   "token_accuracy": ("accuracy", "Token Accuracy")}

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        d = config.data
        files = splits or {"train": d.train_files(), "validation": d.validation_file, "test": d.test_file}
        # Each file is read and checked on its own, so that errors name the file and its line.
        parts: dict[str, list[tuple[str, list[TaggedSentence]]]] = {}
        for split, paths in files.items():
            for path in file_list(paths):
                sentences = read_tagged(path, d.format, d.tokens_column, d.tags_column)
                check_tags(sentences, path, d.tag_scheme)
                if d.tag_scheme == "iob2":
                    repair_iob2_starts(sentences, path)
                parts.setdefault(split, []).append((str(path), sentences))
        if not parts:
            raise DataError("config key 'data.train_file': no data files configured")
        names = label_names or d.labels
        if names is None:
            if "train" not in parts:
                raise DataError("labels unknown: set data.labels or data.train_file")
            names = _tag_order(infer_label_names(t for _, items in parts["train"] for s in items for t in s.tags))
            # B-X implies I-X exists for continuation subwords and for prediction.
            names = _tag_order(sorted(set(names) | {"I-" + n[2:] for n in names if n != "O"}))
            if names == ["O"]:
                raise DataError(f"{' + '.join(p for p, _ in parts['train'])}: every tag is 'O'; token "
                                "classification needs entity tags (B-/I-/E-/S-TYPE) to learn")
        fractions = {} if splits else split_fractions(d, present=parts)
        if fractions:
            # Sentences are held out at random (`hold_out`); each keeps the file it came from.
            train = [(path, sentence) for path, chunk in parts["train"] for sentence in chunk]
            source = " + ".join(path for path, _ in parts["train"])
            for split, rows in hold_out(len(train), fractions, seed, source, unit="sentences").items():
                parts[split] = [(train[i][0], [train[i][1]]) for i in rows]
        label2id = {n: i for i, n in enumerate(names)}
        data = TaskData(label_names=list(names))
        for split, chunks in parts.items():
            for path, chunk in chunks:
                for sentence in chunk:
                    for offset, tag in enumerate(sentence.tags):
                        if tag not in label2id:
                            raise DataError(f"{path}, {sentence.where(offset)} ({sentence.words[offset]!r}): "
                                            f"unknown tag {tag!r}; expected one of {names}")
            items = [sentence for _, chunk in chunks for sentence in chunk]
            encoded, windows = encode_tagged(items, tokenizer, label2id, d.max_seq_length, d.label_all_subwords)
            data.splits[split] = encoded
            data.extras[split] = {"sentences": items, "windows": windows}
        return data

    def build_model(self, backbone, config, num_labels, input_names):
        return build_token_classifier(
            backbone, num_labels, input_names, dropout=config.model.classifier_dropout,
            gradient_accumulation_steps=config.training.gradient_accumulation_steps, seed=config.training.seed,
        )

    def loss(self):
        return MaskedSparseCategoricalCrossentropy()  # a mean over labelled tokens

    def _split_loss(self, logits: list[np.ndarray], labels) -> float:
        """`loss` over a split's windows (rows of different lengths): every token of every row at once."""
        if not len(logits):
            return 0.0
        return split_loss(self.loss(), labels.values, np.concatenate(logits))

    def compile_args(self):
        return {"loss": self.loss(), "metrics": [MaskedAccuracy(name="token_accuracy")]}

    def packed_outputs(self, model, main, hidden, inputs, max_examples_per_pack, pooling):
        return model.get_layer("classifier")(model.get_layer("classifier_dropout")(hidden))

    def packed_compile_args(self):
        return self.compile_args()  # already a mean over labelled tokens

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        logits = predict_per_token(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        predicted = [l.argmax(axis=-1) for l in logits]
        sentences: list[TaggedSentence] = data.extras[split]["sentences"]
        pred_tags = word_predictions(predicted, data.extras[split]["windows"], sentences, data.label_names)
        report = entity_metrics([s.tags for s in sentences], pred_tags, config.data.tag_scheme)
        report["loss"] = self._split_loss(logits, encoded.labels)
        report["metrics"] = {k: report[k] for k in self.metric_names}
        return report

    report_headlines = (("f1", "entity F1"), ("precision", "precision"), ("recall", "recall"),
                        ("macro_f1", "macro F1"), ("token_accuracy", "token accuracy"))
    report_figures = ("per_entity",)

    def degenerate_reason(self, report: dict):
        return None if report["f1"] > 0 else "finds no entity correctly (entity F1 0, as tagging every word O)"

    def summary(self, report: dict) -> str:
        return (f"entity F1 {report['f1'] * 100:.2f} (P {report['precision'] * 100:.2f}, R {report['recall'] * 100:.2f}), "
                f"macro F1 {report['macro_f1'] * 100:.2f}, token accuracy {report['token_accuracy']:.4f}")

    def serving_module_class(self):
        from tfbert.tasks.token_classification.serving import NerServingModule

        return NerServingModule


__all__ = ["TokenClassification", "TokenClassificationDataConfig"]
