"""What the ONNX and LiteRT exports share: the token-id function they convert, the check against
the Keras model, and the directory layout.

Layout of ``tools/export.py --format onnx|litert --output DIR``::

    DIR/model.onnx or DIR/model.tflite      token ids in (int [batch, seq]), float32 logits out
    DIR/tokenizer.json vocab.txt ...        the Hugging Face tokenizer that gives those ids
    DIR/tfbert_config.yaml labels.json      the run's config and label order (task, max_seq_length, threshold…)
    DIR/tfbert_deploy.json                  format, input and output names, versions that wrote it

The converted function is the Keras model's own call, so the export does not depend on which
encoder (transformers' or tfbert's) is inside: a dict of int [batch, seq] tensors in, the model's
outputs out, named ``logits`` for a single tensor and by their keys for a dict (QA's
``start_logits``/``end_logits``).

`tfbert.deploy.runtime` runs an export with the task's own tokenization and post-processing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tfbert.errors import ModelError

DEPLOY_INFO = "tfbert_deploy.json"
#: model file name per export format
MODEL_FILES = {"onnx": "model.onnx", "litert": "model.tflite"}


def require(module: str, package: str, why: str):
    """Import `module`, or stop with one line naming the pip command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelError(f"{why} needs the '{package}' package: pip install -r requirements-export.txt "
                         f"(or: pip install {package})") from None


def token_id_function(model, input_names: list[str], id_dtype) -> tuple[Callable, list, list[str]]:
    """The Keras model call as a ``tf.function``: ``id_dtype`` [batch, seq] inputs in input_names' order,
    a dict of float32 outputs (``logits``, or the model's own keys).

    Returns:
        (function, input signature, output names)
    """
    import tensorflow as tf

    specs = [tf.TensorSpec([None, None], id_dtype, name=name) for name in input_names]

    @tf.function(input_signature=specs)
    def call(*ids):
        outputs = model({name: tf.cast(t, tf.int32) for name, t in zip(input_names, ids)}, training=False)
        if not isinstance(outputs, dict):
            outputs = {"logits": outputs}
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}

    from tfbert.modeling.encoder.layers import portable_ops

    # Traced here, once, with the plain forms of fused ops (LayerNorm) that the converters know.
    with portable_ops():
        outputs = list(call.get_concrete_function().structured_outputs)
    return call, specs, outputs


def probe_inputs(tokenizer, input_names: list[str]) -> list[dict[str, np.ndarray]]:
    """Token ids to compare an export with the Keras model on: a padded pair batch and one short text."""
    texts = ["A short one.", "And a somewhat longer second text, with punctuation: it checks the mask too!"]
    pairs = ["first segment", "a second segment of the pair"]
    batch = tokenizer(texts, pairs, padding=True, return_tensors="np")
    single = tokenizer(["hi"], return_tensors="np")
    return [{n: np.asarray(enc[n]) for n in input_names} for enc in (batch, single)]


def check_outputs(name: str, produced: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                  tolerance: float = 1e-4) -> float:
    """The largest difference between an export's outputs and the Keras model's; a `ModelError` above `tolerance`."""
    worst = 0.0
    for key, want in expected.items():
        got = np.asarray(produced[key])
        if got.shape != want.shape:
            raise ModelError(f"{name}: output '{key}' has shape {got.shape}, the TensorFlow model {want.shape}")
        worst = max(worst, float(np.max(np.abs(got - want))) if want.size else 0.0)
    if not worst <= tolerance:
        raise ModelError(f"{name}: outputs differ from the TensorFlow model by {worst:.3g} (> {tolerance}); "
                         "the conversion is wrong, please report it")
    return worst


def keras_outputs(model, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The Keras model's float32 outputs as a dict named like the export's."""
    outputs = model({k: np.asarray(v, np.int32) for k, v in features.items()}, training=False)
    if not isinstance(outputs, dict):
        outputs = {"logits": outputs}
    return {k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()}


def write_sidecar(directory: Path, tokenizer, config, label_names: list[str], info: dict[str, Any]) -> None:
    """Tokenizer files, tfbert's config and labels, and `DEPLOY_INFO` into an export directory."""
    from tfbert.modeling.saving import write_run_files

    # The same files, written the same way, as in a model directory: one reader for both.
    write_run_files(directory, tokenizer, config, label_names)
    (directory / DEPLOY_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def write_export(fmt: str, directory: str | Path, model, tokenizer, config, label_names: list[str],
                 input_names: list[str], write: Callable[[Path], None],
                 runner: Callable[[Path], Callable[[dict], dict[str, np.ndarray]]],
                 fields: dict[str, Any], versions: dict[str, str]) -> Path:
    """Write one export directory (atomically): the model file, checked against the Keras model, then the sidecar.

    What differs between formats comes in as arguments; the layout, the check and `DEPLOY_INFO` are shared.

    Args:
        fmt: a `MODEL_FILES` key (``onnx``, ``litert``).
        directory: the export directory (replaced only when the export succeeded).
        model: the Keras task model the export was converted from.
        tokenizer, config, label_names: written beside the model (`write_sidecar`).
        input_names: the export's inputs, in its order.
        write: writes the converted model to the path it is given.
        runner: the runtime on a written model file, as ``features -> outputs by name``.
        fields: format-specific `DEPLOY_INFO` entries, written after ``inputs`` (input dtype, outputs, opset…).
        versions: converter versions, written after TensorFlow's.

    Returns:
        The path of the model file.
    """
    import tensorflow as tf

    from tfbert.utils.files import atomic_directory

    name = MODEL_FILES[fmt]
    with atomic_directory(directory) as tmp:
        path = tmp / name
        write(path)
        run = runner(path)
        worst = max(check_outputs(name, run(features), keras_outputs(model, features))
                    for features in probe_inputs(tokenizer, input_names))
        write_sidecar(tmp, tokenizer, config, label_names, {
            "format": fmt, "file": name, "inputs": input_names, **fields, "max_abs_diff_vs_tensorflow": worst,
            "versions": {"tensorflow": tf.__version__, **versions}})
    return Path(directory) / name


# ---------------------------------------------------------------- finding an export

def detect(path: str | Path) -> Optional[tuple[str, Path]]:
    """(format, export directory) for an ONNX or LiteRT export given as its directory or its model file;
    None for anything else (a SavedModel, say)."""
    path = Path(path)
    for fmt, name in MODEL_FILES.items():
        if path.is_file() and path.suffix == Path(name).suffix:
            return fmt, path.parent
        if path.is_dir() and (path / name).is_file():
            return fmt, path
    return None


def read_info(directory: Path) -> dict[str, Any]:
    """An export's `DEPLOY_INFO` (format, input and output names)."""
    path = directory / DEPLOY_INFO
    if not path.is_file():
        raise ModelError(f"{directory}: not a tfbert ONNX/LiteRT export (no {DEPLOY_INFO}); "
                         "write one with tools/export.py --format onnx|litert")
    return json.loads(path.read_text(encoding="utf-8"))
