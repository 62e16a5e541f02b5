"""``tools/export.py --format litert``: the fine-tuned model as a LiteRT (TensorFlow Lite) flatbuffer.

LiteRT is TensorFlow's own on-device and CPU runtime; its XNNPACK delegate is on by default and
runs BERT's matmuls with far less per-op overhead than TensorFlow's graph executor, which is what
matters at batch 1. ``DIR/model.tflite`` has one signature, ``serving_default``: int32
``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model has them), shape
``[batch, sequence]`` with both dynamic (LiteRT's signature runner resizes the inputs to each call's
shape, i.e. ``resize_tensor_input``), and float32 ``logits`` (QA: ``start_logits``,
``end_logits``). The conversion is ``TFLiteConverter.from_concrete_functions`` on the Keras model's
call with no options: float32, builtin ops only, so the plain ``ai-edge-litert`` wheel runs it.

Why the tokenizer is beside the model, not inside. tensorflow-text registers TFLite kernels for
``FastBertTokenizer``, but its normalizer is not Hugging Face's (NFKC folding, control
characters: 6 of 25 tricky sentences tokenize differently), and tfbert's exact in-graph
reproduction (`tfbert.serving.graph_tokenizer`) is built from TensorFlow string, lookup and regex
ops that LiteRT only runs through the TensorFlow ("Flex") delegate, which ``ai-edge-litert`` does not
ship. So the export directory carries the Hugging Face tokenizer files, whose ids the model was
trained on, and the ids are exact.

Runtime: ``ai_edge_litert.interpreter.Interpreter`` (pinned in ``requirements-export.txt``), else
TensorFlow's own ``tf.lite.Interpreter`` (the same runtime, deprecated in favour of LiteRT).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tfbert.deploy.artefact import token_id_function, write_export


def export_litert(model, tokenizer, config, label_names: list[str], directory: str | Path) -> Path:
    """Write ``directory/model.tflite`` plus the tokenizer and tfbert's config (atomically).

    Args:
        model: the Keras task model (a dict of int [batch, seq] token ids in, float32 logits out).
        tokenizer: its Hugging Face fast tokenizer.
        config: the experiment config (saved beside the model for `tools/predict.py`).
        label_names: label order of the outputs.
        directory: the export directory (replaced only when the export succeeded).

    Returns:
        The path of ``model.tflite``.
    """
    import tensorflow as tf

    input_names = [n for n in tokenizer.model_input_names if n in model.input_names]
    call, _, outputs = token_id_function(model, input_names, tf.int32)
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([call.get_concrete_function()], model).convert()
    return write_export("litert", directory, model, tokenizer, config, label_names, input_names,
                        write=lambda path: path.write_bytes(flatbuffer), runner=litert_runner,
                        fields={"input_dtype": "int32", "outputs": outputs}, versions={})


def interpreter_class() -> type:
    """LiteRT's interpreter: ``ai_edge_litert``'s when installed, else TensorFlow's ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter


def litert_runner(path: str | Path, threads: Optional[int] = None) -> Callable[[dict], dict[str, np.ndarray]]:
    """A LiteRT interpreter (XNNPACK) on `path` as a function: token ids (name -> array) -> outputs by name.

    Args:
        path: ``model.tflite``.
        threads: CPU threads (None: LiteRT's default).
    """
    interpreter = interpreter_class()(model_path=str(path), num_threads=threads)
    runner = interpreter.get_signature_runner()
    names = list(interpreter.get_signature_list()["serving_default"]["inputs"])

    def run(features: dict) -> dict[str, np.ndarray]:
        return runner(**{n: np.asarray(features[n], dtype=np.int32) for n in names})

    return run
