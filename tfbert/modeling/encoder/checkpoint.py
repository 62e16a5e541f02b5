"""Hugging Face checkpoints in and out of `TransformerEncoder`, under transformers' own names.

A checkpoint is read into a *state dict*: PyTorch parameter names (``bert.encoder.layer.0.
attention.self.query.weight``) -> NumPy arrays in PyTorch layout (a Linear's weight is ``[out, in]``).
Both file kinds transformers writes are read without any transformers class:

- ``model.safetensors`` with PyTorch names (``format: pt``; every current transformers writes it)
  or TensorFlow names (``format: tf``, from TF ``save_pretrained(safe_serialization=True)``);
- ``tf_model.h5`` (Keras HDF5 weights, TensorFlow names such as
  ``tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0``).

TensorFlow names map to PyTorch names by transformers' own rule
(``modeling_tf_pytorch_utils.convert_tf_weight_name_to_pt_weight_name``: drop the model scope,
``layer_._N`` -> ``layer.N``, ``kernel``/``gamma``/``embeddings`` -> ``weight`` with kernels
transposed, ``beta`` -> ``bias``); `tf_weight_name` is its inverse, used to write ``tf_model.h5``
files that transformers 4's TF classes load. Old PyTorch checkpoints' ``LayerNorm.gamma/beta``
read as ``weight/bias``, as transformers renames them.

Writing goes the other way: `encoder_state_dict` gives the encoder's weights under PyTorch names,
`save_safetensors` writes them with ``format: pt`` (what transformers 5 loads), `save_tf_h5` the
same tensors under TensorFlow names.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from tfbert.errors import ModelError
from tfbert.modeling.encoder.config import EncoderConfig, Family

SAFETENSORS = "model.safetensors"
TF_H5 = "tf_model.h5"


# ---------------------------------------------------------------- names

def pt_name_from_tf(tf_name: str) -> tuple[str, bool]:
    """``(PyTorch name, transpose?)`` of a TensorFlow weight name, by transformers' rule.

    Examples:
        >>> pt_name_from_tf("tf_bert_model/bert/encoder/layer_._0/output/dense/kernel:0")
        ('bert.encoder.layer.0.output.dense.weight', True)
    """
    name = tf_name.replace(":0", "")
    name = re.sub(r"/[^/]*___([^/]*)/", r"/\1/", name)
    name = name.replace("_._", "/")
    name = re.sub(r"//+", "/", name)
    parts = name.split("/")
    if len(parts) > 1:
        parts = parts[1:]  # the model's own scope
    transpose = parts[-1] == "kernel"
    if parts[-1] in ("kernel", "embeddings", "gamma"):
        parts[-1] = "weight"
    elif parts[-1] == "beta":
        parts[-1] = "bias"
    return ".".join(parts), transpose


def pt_from_tf(tf_name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """``(PyTorch name, value in PyTorch layout)`` of a TensorFlow weight: `pt_name_from_tf`, kernels transposed."""
    name, transpose = pt_name_from_tf(tf_name)
    return name, (value.T if transpose and value.ndim == 2 else value)


def tf_weight_name(pt_name: str) -> tuple[str, bool]:
    """``(TensorFlow name without the model scope, transpose?)`` transformers' TF classes use for `pt_name`.

    Examples:
        >>> tf_weight_name("bert.encoder.layer.0.attention.output.LayerNorm.weight")
        ('bert/encoder/layer_._0/attention/output/LayerNorm/gamma:0', False)
    """
    parts = pt_name.split(".")
    out: list[str] = []
    for i, part in enumerate(parts[:-1]):
        if part.isdigit() and out and out[-1] == "layer":
            out[-1] = f"layer_._{part}"
        else:
            out.append(part)
    parent, last = out[-1] if out else "", parts[-1]
    transpose = False
    if "layernorm" in parent.lower().replace("_", ""):
        last = {"weight": "gamma", "bias": "beta"}[last]
    elif parent.endswith("embeddings"):
        last = "weight" if parent == "word_embeddings" else "embeddings"
    elif last == "weight":
        last, transpose = "kernel", True
    return "/".join(out + [last]) + ":0", transpose


def _legacy_pt_name(name: str) -> str:
    """Old PyTorch checkpoints call LayerNorm's parameters gamma/beta (transformers renames them too)."""
    if name.endswith(".gamma"):
        return name[: -len(".gamma")] + ".weight"
    if name.endswith(".beta"):
        return name[: -len(".beta")] + ".bias"
    return name


# ---------------------------------------------------------------- read

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A ``model.safetensors`` or ``tf_model.h5`` file as ``{PyTorch name: array in PyTorch layout}``."""
    path = Path(path)
    try:
        if path.suffix == ".h5":
            return _read_h5(path)
        return _read_safetensors(path)
    except ModelError:
        raise
    except Exception as exc:  # h5py and safetensors raise their own types for truncated or foreign files
        raise ModelError(f"{path}: cannot read the weights ({_first_line(exc)})") from None


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out: dict[str, np.ndarray] = {}
    with safe_open(str(path), framework="np") as handle:
        tf_names = (handle.metadata() or {}).get("format") == "tf"
        for key in handle.keys():
            value = handle.get_tensor(key)
            if tf_names:
                # TF safetensors keep the names without the model scope: give pt_name_from_tf one to drop.
                name, value = pt_from_tf("model/" + key, value)
                out[name] = value
            else:
                out[_legacy_pt_name(key)] = value
    return out


def _read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle.attrs.get("layer_names", [])]
        for layer in names:
            group = handle[layer]
            for weight in group.attrs.get("weight_names", []):
                weight = weight.decode() if isinstance(weight, bytes) else str(weight)
                name, value = pt_from_tf(weight, np.asarray(group[weight]))
                out[name] = value
    if not out:
        raise ModelError(f"{path}: no weights found (not a Keras HDF5 weights file)")
    return out


def checkpoint_file(directory: str | Path) -> Optional[Path]:
    """The weights file of a model directory this module reads (safetensors first), or None."""
    for name in (SAFETENSORS, TF_H5):
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


# ---------------------------------------------------------------- encoder <-> state dict

def _expand(family: Family, num_layers: int) -> dict[str, object]:
    """Every internal weight key of an encoder -> its PyTorch name (a tuple for the fused QKV)."""
    names: dict[str, object] = dict(family.embedding_names)
    for i in range(num_layers):
        for key, value in family.block_names.items():
            names[f"layer_{i}/{key}"] = (tuple(v.format(i=i) for v in value) if isinstance(value, tuple)
                                         else value.format(i=i))
    names.update(family.pooler_names)
    return names


def _strip_prefix(state: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The backbone's tensors without their ``<prefix>.`` (task checkpoints) or as they are (bare ones)."""
    dotted = prefix + "."
    if any(k.startswith(dotted) for k in state):
        return {k[len(dotted):]: v for k, v in state.items() if k.startswith(dotted)}
    return state


def has_pooler_weights(state: dict[str, np.ndarray], config: EncoderConfig) -> bool:
    """Whether a checkpoint holds the family's pooler (task checkpoints without one exist)."""
    names = config.family.pooler_names
    backbone = _strip_prefix(state, config.family.prefix)
    return bool(names) and all(n in backbone for n in names.values())


def load_encoder_weights(encoder, state: dict[str, np.ndarray], source: str = "checkpoint") -> list[str]:
    """Assign an encoder's weights from a state dict; returns the keys left at their initial values.

    The pooler may be missing (its fresh initialisation is kept, as transformers does); any other
    missing tensor, or a tensor of the wrong shape, is a `ModelError` naming it.

    Args:
        encoder: a built `TransformerEncoder`.
        state: `read_state_dict` output (the base model's tensors, with or without the prefix).
        source: the file name, for error messages.
    """
    config: EncoderConfig = encoder.config
    backbone = _strip_prefix(state, config.family.prefix)
    variables = encoder.named_weights()
    left: list[str] = []
    missing: list[str] = []
    for key, pt in _expand(config.family, config.num_hidden_layers).items():
        if key not in variables:
            continue
        names = pt if isinstance(pt, tuple) else (pt,)
        if any(n not in backbone for n in names):
            (left if key.startswith("pooler/") else missing).append(names[0])
            continue
        parts = [backbone[n] for n in names]
        # Linear weights are [out, in] in PyTorch; Keras kernels [in, out]. QKV: outputs concatenated.
        value = np.concatenate([p.T if p.ndim == 2 else p for p in parts], axis=-1) if len(parts) > 1 else (
            parts[0].T if key.endswith("/kernel") else parts[0])
        variable = variables[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise ModelError(f"{source}: {names[0]} has shape {list(parts[0].shape)}, but config.json "
                             f"({config.model_type}, hidden_size {config.hidden_size}) needs {list(variable.shape)} "
                             f"for {key}")
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))
    if missing:
        raise ModelError(f"{source}: {len(missing)} weights of the {config.model_type} encoder are missing "
                         f"(e.g. {', '.join(missing[:3])})")
    return left


def encoder_state_dict(encoder, prefix: Optional[str] = None, include_pooler: bool = True) -> dict[str, np.ndarray]:
    """The encoder's weights under PyTorch names (``<prefix>.`` prepended when given), in PyTorch layout."""
    config: EncoderConfig = encoder.config
    variables = encoder.named_weights()
    head = f"{prefix}." if prefix else ""
    out: dict[str, np.ndarray] = {}
    for key, pt in _expand(config.family, config.num_hidden_layers).items():
        if key not in variables or (key.startswith("pooler/") and not include_pooler):
            continue
        value = np.asarray(variables[key].numpy(), dtype=np.float32)
        if isinstance(pt, tuple):
            for name, part in zip(pt, np.split(value, len(pt), axis=-1)):
                out[head + name] = np.ascontiguousarray(part.T if part.ndim == 2 else part)
        else:
            out[head + pt] = np.ascontiguousarray(value.T if key.endswith("/kernel") else value)
    return out


def dense_state_dict(name: str, kernel: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """A Keras dense head's weights as a PyTorch ``Linear`` named `name`."""
    return {f"{name}.weight": np.ascontiguousarray(np.asarray(kernel, np.float32).T),
            f"{name}.bias": np.asarray(bias, np.float32)}


def dense_from_state_dict(state: dict[str, np.ndarray], name: str, source: str = "checkpoint"
                          ) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel [in, out], bias)`` of the PyTorch ``Linear`` named `name` in a state dict."""
    try:
        return state[f"{name}.weight"].T, state[f"{name}.bias"]
    except KeyError:
        raise ModelError(f"{source}: no {name}.weight / {name}.bias (the task head)") from None


# ---------------------------------------------------------------- write

def save_safetensors(path: str | Path, state: dict[str, np.ndarray], metadata: Optional[dict] = None) -> None:
    """Write a state dict as PyTorch-format safetensors (``format: pt``), which transformers 5 loads."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path),
              metadata={"format": "pt", **(metadata or {})})


def save_tf_h5(path: str | Path, state: dict[str, np.ndarray], model_scope: str) -> None:
    """Write a state dict as the ``tf_model.h5`` transformers 4's TF classes load.

    Keras' HDF5 weight layout, as ``TFPreTrainedModel.save_pretrained`` writes it: one group per
    top-level layer (``bert``, ``classifier``), whose ``weight_names`` attribute lists the
    variables' full names (model scope first) and whose datasets sit at those names.
    """
    import h5py
    import tf_keras

    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, value in state.items():
        tf_name, transpose = tf_weight_name(name)
        full = f"{model_scope}/{tf_name}"
        groups.setdefault(tf_name.split("/", 1)[0], []).append((full, value.T if transpose else value))
    with h5py.File(path, "w") as handle:
        handle.attrs["backend"] = "tensorflow".encode()
        handle.attrs["keras_version"] = str(tf_keras.__version__).encode()
        handle.attrs["layer_names"] = [g.encode() for g in groups]
        for layer, weights in groups.items():
            group = handle.create_group(layer)
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for full, value in weights:
                group.create_dataset(full, data=np.ascontiguousarray(value))


def snake_scope(class_name: str) -> str:
    """The Keras scope transformers' TF class `class_name` gets (``BertForQuestionAnswering`` ->
    ``tf_bert_for_question_answering``); only its presence matters to the loader."""
    return "tf_" + re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


__all__ = ["SAFETENSORS", "TF_H5", "checkpoint_file", "dense_from_state_dict", "dense_state_dict",
           "encoder_state_dict", "has_pooler_weights", "load_encoder_weights", "pt_from_tf", "pt_name_from_tf",
           "read_state_dict", "save_safetensors", "save_tf_h5", "snake_scope", "tf_weight_name"]
