"""`save_pretrained` / `load_pretrained` for fine-tuned tfbert models.

A model directory is a **transformers model directory** (format 2): a fresh Python process that
never imports tfbert loads it with ``AutoModelFor<Task>.from_pretrained(dir)`` (PyTorch, any
transformers release including 5), ``TFAutoModelFor<Task>`` (transformers 4) or
``pipeline(task, model=dir)``::

    model/
      config.json            transformers config: architectures, id2label / label2id
      model.safetensors      weights under PyTorch parameter names (format: pt): transformers 5, PyTorch stacks
      tf_model.h5            the same weights under TF names: transformers 4's TF classes
      tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json
      README.md              model card with the Hub's metadata block
      tfbert_config.yaml     the experiment config that trained it   } extra files that
      labels.json            label order                             } transformers
      tfbert_model.json      format, task, head, pooling, backbone   } ignores
      tfbert_head.safetensors  only for heads without a transformers class (see below)

Weights. With tfbert's own encoder (`tfbert.modeling.encoder`) both files are written straight
from the encoder's variables under transformers' names (`encoder.checkpoint`), no transformers
class involved; with a transformers backbone the transformers twin's TF weights are written, and
renamed by transformers' TF -> PyTorch rule for ``model.safetensors``. Either file loads back.

Heads. Where tfbert's head is a transformers head (``pooling: pooler`` on BERT is
``BertForSequenceClassification``'s own head; the token head is ``…ForTokenClassification``; the
span head ``…ForQuestionAnswering``), the model is saved as that class. Heads transformers has no
class for (``pooling: cls`` or ``mean``, or an architecture whose own head differs, such as
RoBERTa's) are saved as a standard backbone directory (``architectures: [<Arch>Model]``) plus the
dense head in ``tfbert_head.safetensors``; ``tfbert_model.json`` and the card say so.

Directories written before (format 1: ``weights.*`` TF checkpoint, ``backbone/``, ``tokenizer/``)
still load; ``tools/export.py --model OLD --format transformers --output NEW`` migrates one.
Directories are written next to their final place and renamed when complete.
"""
from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf
import tf_keras
import yaml

from tfbert.config import ExperimentConfig, config_from_dict
from tfbert.errors import ModelError
from tfbert.modeling.backbone import find_backbone, is_own_encoder, main_layer, model_input_names, uses_own_encoder
from tfbert.modeling.encoder import build_encoder, encoder_config_from_dict, read_config_json
from tfbert.modeling.encoder.checkpoint import (
    SAFETENSORS, TF_H5, dense_from_state_dict, dense_state_dict, encoder_state_dict, load_encoder_weights,
    pt_from_tf, read_state_dict, save_safetensors, save_tf_h5, snake_scope,
)
from tfbert.tasks.registry import get_task_class
from tfbert.utils.files import atomic_directory

LABELS_FILE = "labels.json"
CONFIG_FILE = "tfbert_config.yaml"
MANIFEST_FILE = "tfbert_model.json"
HEAD_FILE = "tfbert_head.safetensors"
FORMAT_VERSION = 2

_CHECK_TEXTS = ("A short sentence.", "Another, somewhat longer sentence: it checks padding and the mask too!")


@dataclass
class FineTunedModel:
    """A reloaded fine-tuned model with everything needed to use it."""

    model: object
    tokenizer: object
    config: ExperimentConfig
    label_names: list[str]
    directory: Path


# ---------------------------------------------------------------- helpers shared by save and load

@contextlib.contextmanager
def _float32_policy() -> Iterator[None]:
    """Build the transformers twin in float32 whatever the run's mixed-precision policy."""
    previous = tf_keras.mixed_precision.global_policy()
    tf_keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        tf_keras.mixed_precision.set_global_policy(previous)


def _key(variable) -> str:
    """A variable's name without its model's scope (``tf_bert_model/bert/x:0`` -> ``bert/x``)."""
    return variable.name.split("/", 1)[-1].split(":")[0]


def _copymain_layer(source, target, require_all_targets: bool) -> None:
    """Assign the target main layer's variables from the source's, matched by name (transformers backbones)."""
    values = {_key(v): v for v in main_layer(source).weights}
    targets = main_layer(target).weights
    missing = [_key(v) for v in targets if _key(v) not in values]
    if missing and require_all_targets:
        raise KeyError(f"no source for {missing[:3]}")
    for variable in targets:
        if _key(variable) in values:
            source_value = values[_key(variable)]
            if tuple(source_value.shape) != tuple(variable.shape):
                raise KeyError(f"{_key(variable)}: shape {tuple(source_value.shape)} vs {tuple(variable.shape)}")
            variable.assign(np.asarray(source_value.numpy()))


def _check_inputs(tokenizer, input_names: list[str], pair: bool) -> dict[str, np.ndarray]:
    texts = list(_CHECK_TEXTS)
    encoded = tokenizer(texts, list(reversed(texts)) if pair else None, padding=True, return_tensors="np")
    return {name: encoded[name].astype(np.int32) for name in input_names if name in encoded}


def _outputs(result, names: tuple[str, ...]) -> list[np.ndarray]:
    """A model's outputs in the task's order (`Task.output_names`): a tfbert tensor or dict, or a
    transformers output object, whose attributes carry the same names."""
    if isinstance(result, dict):
        return [np.asarray(result[n]) for n in names]
    if hasattr(result, "to_tuple"):
        return [np.asarray(getattr(result, n)) for n in names]
    return [np.asarray(result)]


def _same_outputs(task_model, hf_model, tokenizer, input_names: list[str], pair: bool, names: tuple[str, ...]) -> float:
    """Largest absolute output difference of the two models on a fixed batch."""
    batch = _check_inputs(tokenizer, input_names, pair)
    ours = _outputs(task_model(batch, training=False), names)
    theirs = _outputs(hf_model({k: tf.constant(v) for k, v in batch.items()}, training=False), names)
    return max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs))


def _tolerance(task_model) -> float:
    # Same float32 ops give ~1e-6; a float16/bfloat16 run can only be compared loosely, but a wrong
    # mapping is off by O(1) either way.
    return 1e-4 if task_model.compute_dtype == "float32" else 5e-2


def _labels_config(raw: dict, label_names: list[str], task) -> dict:
    """The saved config.json: the checkpoint's own, with the task's labels (and problem type)."""
    config = dict(raw)
    for name, value in task.hf_config_updates(label_names).items():
        if name == "num_labels":
            continue  # transformers derives it from id2label and never writes it
        config[name] = {str(k): v for k, v in value.items()} if name == "id2label" else value
    return config


def _labelled_config(backbone_config, label_names: list[str], task):
    config = copy.deepcopy(backbone_config)
    for name, value in task.hf_config_updates(label_names).items():
        setattr(config, name, value)
    return config


def _hf_head_class(task, config: ExperimentConfig, backbone) -> Optional[str]:
    """The transformers class tfbert's head equals (``BertForTokenClassification``…), or None.

    Sequence heads equal transformers' only on BERT's pooler (RoBERTa's and ELECTRA's own heads
    are two dense layers); token and span heads equal every family's.
    """
    if not task.has_hf_head(config):
        return None
    family = backbone.config.family
    suffix = task.hf_auto_class.removeprefix("TFAutoModel")
    if config.model.pooling == "pooler" and suffix == "ForSequenceClassification" and not family.pooler_is_hf_head:
        return None
    return family.base_class.removesuffix("Model") + suffix


def _head_kernel(model, head_name: str) -> tuple[np.ndarray, np.ndarray]:
    kernel, bias = (np.asarray(w) for w in model.get_layer(head_name).get_weights())
    return kernel, bias


def _save_tfbert_head(tmp: Path, kernel: np.ndarray, bias: np.ndarray, head_name: str, config: ExperimentConfig,
                      architecture: str, manifest: dict) -> None:
    """`HEAD_FILE` for a head transformers has no class for, and the manifest entries that point to it."""
    from safetensors.numpy import save_file

    save_file({f"{head_name}.kernel": kernel, f"{head_name}.bias": bias}, str(tmp / HEAD_FILE),
              metadata={"pooling": config.model.pooling, "task": config.task.type})
    manifest.update(head="tfbert", architecture=architecture, head_file=HEAD_FILE, note=head_note(config))


# ---------------------------------------------------------------- save

def _save_own_encoder(tmp: Path, model, encoder, config: ExperimentConfig, label_names: list[str], task,
                      manifest: dict) -> None:
    """model.safetensors + tf_model.h5 + config.json straight from tfbert's encoder."""
    head_class = _hf_head_class(task, config, encoder)
    family = encoder.config.family
    head_name = task.head_name
    kernel, bias = _head_kernel(model, head_name)
    raw = _labels_config(encoder.config.raw, label_names, task)
    if head_class is not None:
        # The pooler belongs to the class only where its head reads it (BERT's sequence head).
        reads_pooler = config.model.pooling == "pooler" and head_class.endswith("ForSequenceClassification")
        state = {**encoder_state_dict(encoder, prefix=family.prefix, include_pooler=reads_pooler),
                 **dense_state_dict(head_name, kernel, bias)}
        save_safetensors(tmp / SAFETENSORS, state)
        save_tf_h5(tmp / TF_H5, state, snake_scope("TF" + head_class))
        raw["architectures"] = [head_class]
        manifest.update(head="transformers", architecture=head_class)
    else:
        # A bare backbone checkpoint: PyTorch's <Arch>Model has no prefix, TF's TF<Arch>Model has one.
        save_safetensors(tmp / SAFETENSORS, encoder_state_dict(encoder))
        save_tf_h5(tmp / TF_H5, encoder_state_dict(encoder, prefix=family.prefix), snake_scope("TF" + family.base_class))
        raw["architectures"] = [family.base_class]
        _save_tfbert_head(tmp, kernel, bias, head_name, config, family.base_class, manifest)
    (tmp / "config.json").write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _tf_state_dict(layer) -> dict[str, np.ndarray]:
    """A transformers TF model's weights under PyTorch names (transformers' TF -> PyTorch rule)."""
    out = {}
    for variable in layer.weights:
        name, value = pt_from_tf(variable.name, np.asarray(variable.numpy(), np.float32))
        out[name] = np.ascontiguousarray(value)
    return out


def _save_transformers(tmp: Path, model, backbone, tokenizer, config: ExperimentConfig, label_names: list[str], task,
                       manifest: dict) -> None:
    """The general path: transformers' own TF classes write tf_model.h5; model.safetensors is renamed from it."""
    hf = _transformers_twin(model, backbone, tokenizer, config, label_names, task)
    if hf is not None:
        hf.save_pretrained(str(tmp))
        save_safetensors(tmp / SAFETENSORS, _tf_state_dict(hf))
        manifest.update(head="transformers", architecture=type(hf).__name__.removeprefix("TF"))
        return
    backbone.save_pretrained(str(tmp))
    # PyTorch's <Arch>Model keys carry no prefix.
    state = _tf_state_dict(backbone)
    prefix = backbone.base_model_prefix + "."
    save_safetensors(tmp / SAFETENSORS, {k.removeprefix(prefix): v for k, v in state.items()})
    # The backbone's own config object is shared with the live model: label a copy.
    architecture = type(backbone).__name__.removeprefix("TF")
    labelled = _labelled_config(backbone.config, label_names, task)
    labelled.architectures = [architecture]
    labelled.save_pretrained(str(tmp))
    _save_tfbert_head(tmp, *_head_kernel(model, task.head_name), task.head_name, config, architecture, manifest)


def _transformers_twin(model, backbone, tokenizer, config: ExperimentConfig, label_names: list[str], task):
    """The transformers task model holding the same weights, or None when tfbert's head has no class."""
    import transformers

    head_name = task.head_name
    if not task.has_hf_head(config):
        return None
    with _float32_policy():
        try:
            hf = getattr(transformers, task.hf_auto_class).from_config(_labelled_config(backbone.config, label_names, task))
            hf(hf.dummy_inputs, training=False)
            _copymain_layer(backbone, hf, require_all_targets=True)
            hf_head, our_head = getattr(hf, head_name), model.get_layer(head_name)
            hf_head.set_weights([np.asarray(w) for w in our_head.get_weights()])
        except (ValueError, KeyError, AttributeError):
            return None  # an architecture whose own head is not tfbert's: saved as backbone + head
    if _same_outputs(model, hf, tokenizer, model_input_names(tokenizer), task.reads_pairs(config),
                     task.output_names) > _tolerance(model):
        return None
    return hf


def save_pretrained(directory: str | Path, model, tokenizer, config: ExperimentConfig, label_names: list[str],
                    card: Optional[str] = None) -> Path:
    """Write a transformers model directory with tfbert's files alongside (atomically).

    `card` is the model card (README.md); by default a short card with the Hub metadata block.
    """
    from tfbert.model_card import render_model_card

    backbone = find_backbone(model)
    task = get_task_class(config.task.type)()
    own = is_own_encoder(backbone)
    manifest = {"format": FORMAT_VERSION, "task": config.task.type, "pooling": config.model.pooling,
                "pipeline_tag": task.pipeline_tag[0], "backbone": "tfbert" if own else "transformers",
                "weights": [SAFETENSORS, TF_H5]}
    with atomic_directory(directory) as tmp:
        if own:
            _save_own_encoder(tmp, model, backbone, config, label_names, task, manifest)
        else:
            _save_transformers(tmp, model, backbone, tokenizer, config, label_names, task, manifest)
        write_run_files(tmp, tokenizer, config, label_names)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if card is None:
            card = render_model_card(config, None, [], None, label_names, model_name=Path(directory).name,
                                     head_note=manifest.get("note"))
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return Path(directory)


def write_run_files(directory: Path, tokenizer, config: ExperimentConfig, label_names: list[str]) -> None:
    """The tokenizer files, `CONFIG_FILE` and `LABELS_FILE`: what `load_pretrained` and the deploy
    runtime (`tfbert.deploy.runtime`) read back from a model or export directory."""
    tokenizer.save_pretrained(str(directory))
    (directory / CONFIG_FILE).write_text(config.to_yaml(), encoding="utf-8")
    (directory / LABELS_FILE).write_text(json.dumps(
        {"id2label": list(label_names), "label2id": {n: i for i, n in enumerate(label_names)}}, indent=2
    ), encoding="utf-8")


def head_note(config: ExperimentConfig) -> str:
    """What a transformers user must know about a head saved outside transformers' classes."""
    vector = {"cls": "the last hidden state of the first token ([CLS])", "mean": "the attention-masked mean "
              "of the last hidden states", "pooler": "the pooler output"}[config.model.pooling]
    return (f"tfbert head (model.pooling: {config.model.pooling}) has no transformers class: this directory "
            f"is the fine-tuned backbone (AutoModel) plus {HEAD_FILE}, where logits = {vector} @ "
            "classifier.kernel + classifier.bias. AutoModelForSequenceClassification would add an "
            "untrained head; load with tfbert.load_pretrained or serve tfbert's SavedModel.")


# ---------------------------------------------------------------- read

def _require_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise ModelError(f"{directory}: model directory not found")


def read_label_names(directory: str | Path) -> list[str]:
    """Label order of a fine-tuned model directory."""
    directory = Path(directory)
    _require_dir(directory)
    path = directory / LABELS_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a tfbert model directory (no {LABELS_FILE})")
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["id2label"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise ModelError(f"{path}: not a label file (expected {{\"id2label\": [...]}})") from None


def read_config(directory: str | Path) -> ExperimentConfig:
    """The experiment config saved with a fine-tuned model."""
    directory = Path(directory)
    _require_dir(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a tfbert model directory (no {CONFIG_FILE})")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def is_legacy_dir(directory: str | Path) -> bool:
    """A format-1 directory: TF object checkpoint ``weights.*`` with ``backbone/`` and ``tokenizer/``."""
    return (Path(directory) / "backbone" / "config.json").is_file()


def _load_tokenizer(directory: Path):
    from tfbert.pretrained import load_tokenizer

    return load_tokenizer(str(directory))


def _check_num_labels(directory: Path, num_labels: Optional[int], label_names: list[str]) -> None:
    if num_labels is not None and num_labels != len(label_names):
        raise ModelError(
            f"config key 'task.num_labels': {num_labels} disagrees with the checkpoint in {directory} "
            f"({len(label_names)} labels: {label_names})"
        )


def load_pretrained(directory: str | Path, num_labels: int | None = None) -> FineTunedModel:
    """Rebuild the Keras task model from a fine-tuned model directory (either format), uncompiled.

    Prediction and the tasks' evaluation need no compiled model; continued fine-tuning compiles
    it with the run's schedule (`tfbert.run.experiment.build_experiment`). For a base (not
    fine-tuned) checkpoint use `tfbert.modeling.backbone.load_backbone`.

    Args:
        directory: ``RUN/model`` as written by training or `save_pretrained`.
        num_labels: when given, must agree with the checkpoint (a `ModelError` otherwise).

    Returns:
        A `FineTunedModel`: ``model``, ``tokenizer``, ``config``, ``label_names``, ``directory``.

    Examples:
        >>> loaded = load_pretrained("runs/sms_spam_minilm/model")  # doctest: +SKIP
        >>> loaded.model.predict(dict(loaded.tokenizer(["hi"], return_tensors="np")))  # doctest: +SKIP
    """
    from tfbert.tasks import get_task

    directory = Path(directory)
    config = read_config(directory)
    label_names = read_label_names(directory)
    _check_num_labels(directory, num_labels, label_names)
    tokenizer = _load_tokenizer(directory)
    task = get_task(config.task.type)
    if is_legacy_dir(directory):
        model = _load_legacy(directory, config, task, label_names, tokenizer)
    else:
        manifest = _read_manifest(directory)
        from tfbert.pretrained import check_config_file

        check_config_file(directory)
        if uses_own_encoder(read_config_json(directory), config.model.backbone):
            model = _load_own_encoder_dir(directory, config, task, label_names, tokenizer, manifest)
        else:
            model = _load_transformers_dir(directory, config, task, label_names, tokenizer, manifest)
    return FineTunedModel(model=model, tokenizer=tokenizer, config=config, label_names=label_names, directory=directory)


def _load_legacy(directory: Path, config: ExperimentConfig, task, label_names: list[str], tokenizer):
    from transformers import AutoConfig, TFAutoModel

    try:
        backbone = TFAutoModel.from_config(AutoConfig.from_pretrained(str(directory / "backbone")))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{directory / 'backbone' / 'config.json'}: not a transformers config ({_first_line(exc)})") from None
    model = task.build_model(backbone, config, len(label_names), model_input_names(tokenizer))
    # The format-1 checkpoint holds the optimizer too; expect_partial leaves it unread.
    if not (directory / "weights.index").is_file():
        raise ModelError(f"{directory / 'weights.index'}: checkpoint not found")
    try:
        model.load_weights(str(directory / "weights")).expect_partial()
    except (ValueError, tf.errors.OpError) as exc:
        raise ModelError(f"{directory / 'weights'}: checkpoint does not match the model ({_first_line(exc)})") from None
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a tfbert model directory (no {MANIFEST_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{path}: not valid JSON") from None


def _weights_file(directory: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    if any(directory.glob("*.bin")):
        raise ModelError(f"{directory}: only pickle weights (pytorch_model.bin) found; tfbert never unpickles")
    raise ModelError(f"{directory / names[0]}: weights not found")


def _load_own_encoder_dir(directory: Path, config: ExperimentConfig, task, label_names: list[str], tokenizer,
                          manifest: dict):
    """Rebuild the task model on tfbert's encoder from model.safetensors (or tf_model.h5)."""
    raw = read_config_json(directory)
    if task.one_output_per_label and raw.get("num_labels", len(raw.get("id2label", label_names))) != len(label_names):
        raise ModelError(f"{directory / 'config.json'}: {len(raw.get('id2label', {}))} labels, but {LABELS_FILE} "
                         f"lists {len(label_names)}")
    weights = _weights_file(directory, (SAFETENSORS, TF_H5))
    state = read_state_dict(weights)
    encoder = build_encoder(encoder_config_from_dict(raw))
    model = task.build_model(encoder, config, len(label_names), model_input_names(tokenizer))
    load_encoder_weights(encoder, state, source=str(weights))
    head_name = task.head_name
    if manifest.get("head") == "tfbert":
        kernel, bias = _read_head(directory / HEAD_FILE, head_name)
    else:
        kernel, bias = dense_from_state_dict(state, head_name, source=str(weights))
    try:
        model.get_layer(head_name).set_weights([kernel, bias])
    except ValueError as exc:
        raise ModelError(f"{weights}: the {head_name} weights do not match the model ({_first_line(exc)})") from None
    return model


def _transformers_config(directory: Path, label_names: list[str], task):
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(str(directory))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{directory / 'config.json'}: not a transformers config ({_first_line(exc)})") from None
    if task.one_output_per_label and hf_config.num_labels != len(label_names):
        raise ModelError(f"{directory / 'config.json'}: {hf_config.num_labels} labels, but {LABELS_FILE} "
                         f"lists {len(label_names)}")
    return hf_config


def _load_transformers_dir(directory: Path, config: ExperimentConfig, task, label_names: list[str], tokenizer,
                           manifest: dict):
    import transformers

    class_name, head_name = task.hf_auto_class, task.head_name
    hf_config = _transformers_config(directory, label_names, task)
    weights = _weights_file(directory, (TF_H5,))
    loader = transformers.TFAutoModel if manifest.get("head") == "tfbert" else getattr(transformers, class_name)
    try:
        # Weights are matched to the model's shapes here: a truncated file or one of another
        # shape fails inside h5py or Keras, with a message worth one line.
        with _float32_policy():
            source = loader.from_pretrained(str(directory), config=hf_config, use_safetensors=False)
    except (OSError, ValueError, KeyError, tf.errors.OpError) as exc:
        raise ModelError(f"{weights}: cannot load the weights ({_first_line(exc)})") from None
    backbone = transformers.TFAutoModel.from_config(hf_config)
    backbone(backbone.dummy_inputs, training=False)
    model = task.build_model(backbone, config, len(label_names), model_input_names(tokenizer))
    try:
        _copymain_layer(source, backbone, require_all_targets=False)
        if manifest.get("head") == "tfbert":
            kernel, bias = _read_head(directory / HEAD_FILE, head_name)
            model.get_layer(head_name).set_weights([kernel, bias])
        else:
            model.get_layer(head_name).set_weights([np.asarray(w) for w in getattr(source, head_name).get_weights()])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{weights}: weights do not match the model ({_first_line(exc)})") from None
    if manifest.get("head") != "tfbert":
        if _same_outputs(model, source, tokenizer, model_input_names(tokenizer), task.reads_pairs(config),
                         task.output_names) > _tolerance(model):
            raise ModelError(f"{directory}: the rebuilt tfbert model does not reproduce {type(source).__name__}")
    return model


def _read_head(path: Path, head_name: str) -> tuple[np.ndarray, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise ModelError(f"{path}: head weights not found")
    try:
        tensors = load_file(str(path))
        return tensors[f"{head_name}.kernel"], tensors[f"{head_name}.bias"]
    except (SafetensorError, OSError, KeyError) as exc:
        raise ModelError(f"{path}: cannot read the head weights ({_first_line(exc)})") from None
