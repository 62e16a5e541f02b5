"""Text regression: one score per text or text pair (STS-B similarity), mean squared error, Pearson and Spearman.

The head is the sequence classifier's with one output (`build_sequence_classifier` with
``num_labels=1``): dropout and a dense layer on the pooler, [CLS] or mean vector, as Hugging Face's
``BertForSequenceClassification`` with ``problem_type: "regression"`` (its ``MSELoss``) and TF Model
Garden's ``sentence_prediction`` with one output. The loss is `ScoreSquaredError`: one definition
that training compiles, evaluation calls on the predicted scores (so ``val_loss`` is the split's
MSE) and the packed twin wraps (`LabelledScores`, the mean over the slots that hold an example).
Evaluation reports Pearson's r and Spearman's rho (scipy) and the MSE, and keeps every predicted
and gold score for the report's scatter plot.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.data.classification import load_classification_data
from tfbert.data.encoding import IGNORE_INDEX
from tfbert.errors import DataError
from tfbert.evaluation.predict import predict_logits
from tfbert.modeling.losses import split_loss
from tfbert.modeling.packed import packed_sequence_vector
from tfbert.tasks.base import PooledHeadTask, TaskData
from tfbert.tasks.losses import LabelledOnly
from tfbert.tasks.text_regression.config import SPEC
from tfbert.tasks.text_regression.data import ScoreColumn

#: a prediction spread (standard deviation) below this share of the gold scores' is one constant score
CONSTANT_SPREAD = 1e-3


@tf_keras.utils.register_keras_serializable(package="tfbert")
class ScoreSquaredError(tf_keras.losses.Loss):
    """Squared error of each example's score: targets ``[...]``, outputs ``[..., 1]`` (the head's one unit).

    Per example, so Keras' default reduction makes it the batch mean (Hugging Face's ``MSELoss``),
    `split_loss` the split mean, and `LabelledScores` the mean over a packed batch's filled slots.
    """

    def __init__(self, name: str = "score_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        scores = tf.reshape(tf.cast(y_pred, tf.float32), tf.shape(y_true))
        return tf.math.squared_difference(scores, y_true)


@tf_keras.utils.register_keras_serializable(package="tfbert")
class LabelledScores(LabelledOnly):
    """A per-example score loss averaged over the packed slots that hold an example.

    `LabelledOnly` with float targets: a packed batch has ``[packs, K]`` target slots and empty
    ones carry IGNORE_INDEX (-100; the data check `TextRegression.load_data` refuses that score for
    packed training). Its own registered name, so saved models that name it still load.

    Args:
        loss: a per-example Keras loss on (scores ``[n]``, outputs ``[n, 1]``): `TextRegression.loss()`.
    """

    label_dtype = tf.float32


def regression_metrics(gold: np.ndarray, predicted: np.ndarray) -> dict:
    """Pearson's r, Spearman's rho (scipy), MSE and the prediction spread of two score vectors.

    A constant prediction has no correlation with anything: r and rho are reported as 0.0 (scipy
    would return NaN with a warning), so epoch logs and best-model selection stay numeric.
    """
    from scipy import stats

    gold = np.asarray(gold, np.float64)
    predicted = np.asarray(predicted, np.float64)
    n = len(gold)
    varies = n > 1 and np.ptp(predicted) > 0 and np.ptp(gold) > 0
    return {
        "num_examples": int(n),
        "pearson": float(stats.pearsonr(predicted, gold)[0]) if varies else 0.0,
        "spearman": float(stats.spearmanr(predicted, gold)[0]) if varies else 0.0,
        "mse": float(np.mean((predicted - gold) ** 2)) if n else 0.0,
        "prediction_mean": float(predicted.mean()) if n else 0.0,
        "prediction_std": float(predicted.std()) if n else 0.0,
        "gold_mean": float(gold.mean()) if n else 0.0,
        "gold_std": float(gold.std()) if n else 0.0,
    }


class TextRegression(PooledHeadTask):
    """One score per text or text pair: a one-unit head, mean squared error, Pearson and Spearman.

    Examples:
        >>> config = load_config("configs/stsb_minilm.yaml")  # doctest: +SKIP
        >>> task = get_task(config.task.type)  # doctest: +SKIP
        >>> task.evaluate(model, data, "test", config, tokenizer)["spearman"]  # doctest: +SKIP
    """

    spec = SPEC
    evaluates_from_records = True
    pipeline_tag = ("text-classification", "Text Classification")
    hub_metrics = {"loss": None, "pearson": ("pearsonr", "Pearson"), "spearman": ("spearmanr", "Spearman"),
                   "mse": ("mse", "MSE")}
    # One float32 score per record (tools/make_tfrecords.py).
    record_label_dtype = "float32"
    report_headlines = (("spearman", "Spearman"), ("pearson", "Pearson"), ("mse", "MSE"))
    report_figures = ("regression_scatter",)
    report_figure_drawers = {"regression_scatter": (
        "Predicted vs gold scores",
        "Each evaluated example of the final evaluation: the model's score against the gold score; the "
        "dashed line is a perfect prediction.",
        "tfbert.tasks.text_regression.report:draw_scatter")}

    def hf_config_updates(self, label_names):
        # num_labels 1 and problem_type "regression": BertForSequenceClassification's MSELoss, and
        # pipeline("text-classification") returns the raw score (no sigmoid) for such a config.
        return {**super().hf_config_updates(label_names), "problem_type": "regression"}

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        data = load_classification_data(config.data, tokenizer, seed=seed, label_names=label_names, splits=splits,
                                        labels=ScoreColumn())
        if config.data.padding == "packed":
            for split, encoded in data.splits.items():
                reserved = np.flatnonzero(encoded.labels == IGNORE_INDEX)
                if len(reserved):
                    raise DataError(f"{split} split, example {reserved[0] + 1}: score {IGNORE_INDEX} marks an "
                                    "empty slot in packed batches; use data.padding: bucket or shift the scores")
        return data

    def loss(self) -> tf_keras.losses.Loss:
        """The one loss definition: training compiles it, evaluation calls it, the packed twin wraps it."""
        return ScoreSquaredError()

    def compile_args(self):
        return {"loss": self.loss(), "metrics": []}

    def packed_outputs(self, model, main, hidden, inputs, max_examples_per_pack, pooling):
        # Each example's own [CLS] (or pooler on it, or its mean) -> [packs, K, 1].
        vector = packed_sequence_vector(main, hidden, inputs, max_examples_per_pack, pooling)
        return model.get_layer("classifier")(model.get_layer("classifier_dropout")(vector))

    def packed_compile_args(self):
        return {"loss": LabelledScores(self.loss()), "metrics": []}

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        logits = predict_logits(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        predicted = logits[:, 0]
        report = regression_metrics(encoded.labels, predicted)
        report["loss"] = split_loss(self.loss(), encoded.labels, logits) if len(encoded.labels) else 0.0
        report["metrics"] = {k: report[k] for k in self.metric_names}
        # For the report's scatter plot (and anyone re-scoring the run), in the split's order.
        report["predictions"] = [round(float(v), 5) for v in predicted]
        report["gold"] = [round(float(v), 5) for v in encoded.labels]
        return report

    def degenerate_reason(self, report: dict):
        n, spread, gold_spread = report["num_examples"], report["prediction_std"], report["gold_std"]
        if not n:
            return "no examples were evaluated"
        if spread <= CONSTANT_SPREAD * gold_spread:
            return (f"predicts about one score ({report['prediction_mean']:.4f}, spread {spread:.2g} against the "
                    f"gold scores' {gold_spread:.4f}) for every example ({n} of {n})")
        if report["spearman"] <= 0.0:
            return (f"Spearman {report['spearman']:.4f}: ranks the examples no better than a constant score "
                    f"(MSE {report['mse']:.4f}; always predicting the mean scores {gold_spread ** 2:.4f})")
        return None

    @classmethod
    def card_section(cls, config, label_names: list[str]) -> list[str]:
        """How to get the score without tfbert: the head's raw output, no sigmoid or softmax."""
        what = "text pair" if config.data.text_pair_column else "text"
        call = '{"text": ..., "text_pair": ...}' if config.data.text_pair_column else "text"
        return ["## Scores", "",
                f"The model predicts one number per {what} (trained with mean squared error; `problem_type: "
                "regression`, `num_labels: 1`). Without tfbert, `pipeline(\"text-classification\", model=DIR, "
                "framework=\"tf\", dtype=None, function_to_apply=\"none\", "
                f"model_kwargs={{\"use_safetensors\": False}})({call})` returns it as `score` (transformers 4's "
                "TF classes cannot read the PyTorch-format model.safetensors without torch).", ""]

    def summary(self, report: dict) -> str:
        return (f"Spearman {report['spearman']:.4f}, Pearson {report['pearson']:.4f}, MSE {report['mse']:.4f} "
                f"({report['num_examples']} examples)")

    def serving_module_class(self):
        from tfbert.tasks.text_regression.serving import RegressionServingModule

        return RegressionServingModule


__all__ = ["LabelledScores", "ScoreSquaredError", "TextRegression", "regression_metrics"]
