"""Export a SavedModel whose `serving_default` takes raw strings.

Signatures:
- ``serving_default``: ``text`` (tf.string [batch]) — and ``text_pair`` for pair tasks — are
  tokenized in the graph with tensorflow-text (`GraphBertTokenizer`, identical ids to the Hugging
  Face fast tokenizer) and the outputs are ``probabilities`` [batch, num_labels] float32,
  ``label`` (tf.string names), ``label_id`` (int32) and ``logits``.
- ``serve_token_ids``: already-tokenized ``input_ids``/``attention_mask``(/``token_type_ids``),
  int32 [batch, seq], same outputs.

Loading needs the tensorflow-text ops registered: ``import tensorflow_text`` before
``tf.saved_model.load`` in Python; TF Serving needs a build with the tensorflow-text ops linked
in (e.g. the ``tensorflow/serving`` image with ``--custom_op_paths`` pointing at tensorflow-text's
``_*_ops.so``), otherwise it fails with ``Op type not registered 'FastBertNormalize'``-style errors.
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfbert.serving.graph_tokenizer import GraphBertTokenizer
from tfbert.utils.files import atomic_directory

SIGNATURE_TEXT = "serving_default"
SIGNATURE_IDS = "serve_token_ids"


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


class ClassifierServingModule(tf.Module):
    """Raw text -> tokens -> logits -> probabilities and label names, all in one graph."""

    def __init__(self, model, tokenizer: GraphBertTokenizer, label_names: list[str], input_names: list[str]):
        super().__init__(name="tfbert_classifier")
        self.model = model
        self.tokenizer = tokenizer
        self.label_names = tf.constant(label_names, dtype=tf.string)
        self.input_names = list(input_names)

    def _outputs(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        inputs = {name: tf.cast(features[name], tf.int32) for name in self.input_names}
        logits = tf.cast(call_model(self.model, inputs), tf.float32)
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "label_id": label_id,
            "label": tf.gather(self.label_names, label_id),
        }

    def classify_text(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        return self._outputs(self.tokenizer(text, text_pair))

    def classify_ids(self, **features: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._outputs(features)


def export_saved_model(model, hf_tokenizer, label_names: list[str], directory: str | Path,
                       max_seq_length: int, text_pairs: bool = False) -> Path:
    """Write the SavedModel atomically to `directory` (replacing an older export only on success)."""
    graph_tokenizer = GraphBertTokenizer.from_hf_tokenizer(hf_tokenizer, max_seq_length)
    input_names = [n for n in hf_tokenizer.model_input_names if n in model.input_names]
    module = ClassifierServingModule(model, graph_tokenizer, label_names, input_names)

    text_spec = tf.TensorSpec([None], tf.string, name="text")
    if text_pairs:
        pair_spec = tf.TensorSpec([None], tf.string, name="text_pair")
        serve_text = tf.function(lambda text, text_pair: module.classify_text(text, text_pair),
                                 input_signature=[text_spec, pair_spec])
    else:
        serve_text = tf.function(lambda text: module.classify_text(text), input_signature=[text_spec])
    serve_ids = tf.function(lambda features: module.classify_ids(**features), input_signature=[token_id_specs(input_names)])
    return save_serving_module(module, directory, serve_text, serve_ids, label_names)


def token_id_specs(input_names: list[str]) -> dict[str, tf.TensorSpec]:
    """The `serve_token_ids` signature: int32 [batch, seq] per model input."""
    return {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in input_names}


def save_serving_module(module: tf.Module, directory: str | Path, serve_text, serve_ids,
                        label_names: list[str] | None = None) -> Path:
    """Save `module` with its two signatures to `directory`, atomically; label names as an asset."""
    module.serve_text, module.serve_ids = serve_text, serve_ids
    signatures = {SIGNATURE_TEXT: serve_text.get_concrete_function(), SIGNATURE_IDS: serve_ids.get_concrete_function()}
    with atomic_directory(directory) as tmp:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if label_names:
            (tmp / "assets.extra").mkdir(exist_ok=True)
            (tmp / "assets.extra" / "labels.txt").write_text("\n".join(label_names) + "\n", encoding="utf-8")
    return Path(directory)


def load_saved_model(directory: str | Path):
    """`tf.saved_model.load` with the tensorflow-text ops registered first."""
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

    return tf.saved_model.load(str(directory))
