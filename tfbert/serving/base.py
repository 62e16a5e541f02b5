"""What every raw-string SavedModel shares: one module base, its two signatures, export and loading.

A task's serving module (``tfbert/tasks/<type>/serving.py``) extends `ServingModule` with the same
constructor ``(model, hf_tokenizer, label_names, config)`` and defines `text_specs` (the
``serving_default`` inputs), `serve_text` (raw strings -> the task's outputs) and `serve_token_ids`
(token ids -> logits). `export` writes both signatures, in the manner of TF Model Garden's
``ExportModule``:

- ``serving_default``: raw strings, tokenized in the graph (`GraphBertTokenizer`);
- ``serve_token_ids``: ``input_ids``/``attention_mask``(/``token_type_ids``), int32 [batch, seq].

The export records its task type (the config's ``task.type``; no serving module names one) and
labels in ``assets.extra/tfbert_serving.json`` (TF Serving ignores ``assets.extra``), so
`tools/predict.py` knows the task without guessing.

Loading needs the tensorflow-text ops registered: ``import tensorflow_text`` before
``tf.saved_model.load`` in Python (`load_saved_model` does); TF Serving needs a build with the
tensorflow-text ops linked in, otherwise it fails with ``Op type not registered``.
"""
from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, Optional

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert.errors import ModelError
from tfbert.modeling.backbone import served_input_names
from tfbert.serving.graph_tokenizer import GraphBertTokenizer
from tfbert.utils.files import atomic_directory

SIGNATURE_TEXT = "serving_default"
SIGNATURE_IDS = "serve_token_ids"
#: written next to the SavedModel: ``{"task": ..., "labels": [...]}``
SERVING_INFO = "assets.extra/tfbert_serving.json"


def call_model(model, inputs: dict[str, tf.Tensor], per_token: bool = False):
    """``model(inputs, training=False)``, also for an empty ``[0, 0]`` batch.

    BERT's attention fails on inputs with no rows and no columns (a batch of no texts pads to
    width 0), so such a batch gets one padding column; `per_token` outputs (``[batch, seq, ...]``)
    are cut back to the input width. Other shapes pass through unchanged: one ``tf.pad`` of zero.
    """
    shape = tf.shape(next(iter(inputs.values())))
    # A pad rather than a tf.cond around the model: no branch, and nothing extra for real batches.
    extra = tf.cast((shape[0] == 0) & (shape[1] == 0), tf.int32)
    padded = {name: tf.pad(value, [[0, 0], [0, extra]]) for name, value in inputs.items()}
    outputs = model(padded, training=False)
    if per_token:
        outputs = tf.nest.map_structure(lambda t: t[:, : shape[1]], outputs)
    return outputs


def token_id_specs(input_names: list[str]) -> dict[str, tf.TensorSpec]:
    """The `serve_token_ids` signature: int32 [batch, seq] per model input."""
    return {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in input_names}


class ServingModule(tf.Module, abc.ABC):
    """Base of every task's serving module: the model, the in-graph tokenizer, export.

    Args:
        model: the task model (unpacked), called with ``training=False``.
        hf_tokenizer: the Hugging Face fast tokenizer the model was trained with (WordPiece).
        label_names: label order of the model's outputs (empty for QA).
        config: the experiment config (``data.max_seq_length`` and the task's own keys).

    Examples:
        >>> module = ClassifierServingModule(model, tokenizer, ["ham", "spam"], config)  # doctest: +SKIP
        >>> module.export("runs/x/saved_model")  # doctest: +SKIP
    """

    def __init__(self, model, hf_tokenizer, label_names: list[str], config: ExperimentConfig):
        super().__init__(name=f"tfbert_{config.task.type}")
        #: the ``task.type`` recorded in the export (`SERVING_INFO`)
        self.task_type = config.task.type
        # The Keras model stays out of the SavedModel's object graph (a plain attribute): tracked, it
        # makes `tf.saved_model.save` trace every layer for Keras metadata no server reads. The
        # signatures need only its variables, tracked here.
        object.__setattr__(self, "model", model)
        self.model_variables = list(model.variables)
        self.tokenizer = GraphBertTokenizer.from_hf_tokenizer(hf_tokenizer, config.data.max_seq_length)
        self.input_names = served_input_names(hf_tokenizer, model)
        self.labels = list(label_names)

    def text_specs(self) -> list[tf.TensorSpec]:
        """The ``serving_default`` inputs, in the order `serve_text` takes them."""
        return [tf.TensorSpec([None], tf.string, name="text")]

    @abc.abstractmethod
    def serve_text(self, *texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """Raw strings -> the task's outputs."""

    @abc.abstractmethod
    def serve_token_ids(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Token ids (`token_id_specs`) -> logits and what follows from them."""

    def logits(self, features: dict[str, tf.Tensor], per_token: bool = False):
        """The model's float32 outputs on the served inputs (an empty batch too)."""
        outputs = call_model(self.model, {n: tf.cast(features[n], tf.int32) for n in self.input_names}, per_token)
        return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)

    def export(self, directory: str | Path) -> Path:
        """Save both signatures to `directory` atomically (replacing an older export only on success)."""
        specs = self.text_specs()
        # autograph=False: the serving code has no tensor-dependent Python control flow, and
        # converting it (the tokenizer, the model and everything they call) is most of a trace.
        serve_text = tf.function(lambda *texts: self.serve_text(*texts), input_signature=specs, autograph=False)
        serve_ids = tf.function(lambda features: self.serve_token_ids(features),
                                input_signature=[token_id_specs(self.input_names)], autograph=False)
        # Signatures only: a tf.function tracked on the module would be traced again inside
        # `tf.saved_model.save` (its save context is part of the trace key), doubling the export time.
        signatures = {SIGNATURE_TEXT: serve_text.get_concrete_function(),
                      SIGNATURE_IDS: serve_ids.get_concrete_function()}
        with atomic_directory(directory) as tmp:
            tf.saved_model.save(self, str(tmp), signatures=signatures)
            extra = tmp / "assets.extra"
            extra.mkdir(exist_ok=True)
            if self.labels:
                (extra / "labels.txt").write_text("\n".join(self.labels) + "\n", encoding="utf-8")
            (tmp / SERVING_INFO).write_text(json.dumps({"task": self.task_type, "labels": self.labels}, indent=2)
                                            + "\n", encoding="utf-8")
        return Path(directory)

    # ------------------------------------------------------------------ tools/predict.py

    @classmethod
    def cli_inputs(cls, args, read_lines, input_names: set[str]) -> dict[str, list[str]]:
        """The ``serving_default`` inputs (`input_names`) from `tools/predict.py`'s arguments."""
        from tfbert.errors import DataError

        texts = list(args.texts) + (read_lines(args.file) if args.file else [])
        if not texts:
            raise DataError("nothing to run: give texts or --file")
        return {"text": texts}

    @classmethod
    @abc.abstractmethod
    def cli_record(cls, inputs: dict[str, Any], out: dict[str, Any], i: int) -> tuple[dict, str]:
        """Row `i` of the outputs as a JSON-ready record and one console line."""

    @classmethod
    @abc.abstractmethod
    def recognizes(cls, inputs: set[str], outputs: set[str]) -> bool:
        """Whether a ``serving_default`` with these input and output names is this module's export
        (`tools/predict.py` asks, for exports written before the task type was recorded)."""


def load_saved_model(directory: str | Path):
    """`tf.saved_model.load` with the tensorflow-text ops registered first.

    Args:
        directory: a SavedModel written by training, `tools/export.py` or `export_saved_model`.

    Examples:
        >>> serve = load_saved_model("runs/sms_spam_minilm/saved_model").signatures["serving_default"]  # doctest: +SKIP
        >>> serve(text=tf.constant(["WIN a FREE phone"]))["label"]  # doctest: +SKIP
    """
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

    return tf.saved_model.load(str(directory))


def saved_model_task(directory: str | Path) -> Optional[str]:
    """The task type an export recorded (`SERVING_INFO`), or None for an export that predates it."""
    path = Path(directory) / SERVING_INFO
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["task"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise ModelError(f"{path}: not a tfbert serving file (expected {{\"task\": ...}})") from None


__all__ = ["SERVING_INFO", "SIGNATURE_IDS", "SIGNATURE_TEXT", "ServingModule", "call_model", "load_saved_model",
           "saved_model_task", "token_id_specs"]
