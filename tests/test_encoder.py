"""tfbert's own encoder against transformers' TF models: same weights, same numbers.

For a tiny random checkpoint of every supported family (and the bundled MiniLM), saved by the
transformers TF class itself, the encoder loading that checkpoint must give the hidden states,
and every task head built on it the logits, that the same head on ``TFAutoModel`` gives (1e-5,
float32), in inference and in training mode (dropout off), and the same loss and update after one
optimizer step; packed rows must give each example its unpacked logits. Names are checked both
ways: the TF names the encoder writes are the TF class's own variable names.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tensorflow as tf
import tf_keras

from tfbert.config import new_config
from tfbert.errors import ConfigError, ModelError
from tfbert.modeling.backbone import find_backbone, is_own_encoder, load_backbone
from tfbert.modeling.encoder import load_encoder
from tfbert.modeling.encoder.checkpoint import (
    encoder_state_dict, pt_name_from_tf, read_state_dict, save_safetensors, save_tf_h5, tf_weight_name,
)
from tfbert.tasks import get_task

TOL = 1e-5
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _tiny(model_type: str, dropout: bool = False):
    """(config class, TF model class, config kwargs) of a tiny random checkpoint of `model_type`."""
    import transformers as t

    common = dict(vocab_size=99, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                  max_position_embeddings=64, **({} if dropout else NO_DROPOUT))
    if model_type == "bert":
        return t.BertConfig(type_vocab_size=2, **common)
    if model_type == "roberta":
        return t.RobertaConfig(type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
    if model_type == "xlm-roberta":
        return t.XLMRobertaConfig(type_vocab_size=1, pad_token_id=1, hidden_act="gelu_new", **common)
    if model_type == "electra":
        return t.ElectraConfig(embedding_size=8, type_vocab_size=2, **common)
    if model_type == "distilbert":
        return t.DistilBertConfig(vocab_size=99, dim=16, n_layers=2, n_heads=2, hidden_dim=24,
                                  max_position_embeddings=64, **({} if dropout else {"dropout": 0.0, "attention_dropout": 0.0}))
    raise ValueError(model_type)


FAMILIES = ["bert", "roberta", "xlm-roberta", "electra", "distilbert"]


def _seeded(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.2, tuple(w.shape)).astype(np.float32) for w in model.weights])


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory) -> Path:
    """A tiny checkpoint of one family written by transformers' own TF class (random, non-trivial weights)."""
    from transformers import TFAutoModel

    model = TFAutoModel.from_config(_tiny(request.param))
    model(model.dummy_inputs, training=False)
    _seeded(model, seed=FAMILIES.index(request.param))
    out = tmp_path_factory.mktemp(request.param.replace("-", "_"))
    model.save_pretrained(str(out))
    return out


def _batch(config: dict, seed: int = 0, batch: int = 3, seq: int = 9) -> dict[str, np.ndarray]:
    """Random ids with right padding (row 0 full, others shorter); type ids where the model has them."""
    rng = np.random.default_rng(seed)
    pad = config.get("pad_token_id", 0) or 0
    ids = rng.integers(3, config["vocab_size"], size=(batch, seq)).astype(np.int32)
    lengths = [seq] + list(rng.integers(2, seq, size=batch - 1))
    mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
    ids = np.where(mask == 1, ids, pad).astype(np.int32)
    out = {"input_ids": ids, "attention_mask": mask}
    if config.get("type_vocab_size", 0) > 1:
        out["token_type_ids"] = (np.arange(seq)[None, :] >= 4).astype(np.int32) * mask
    return out


def _hf_inputs(batch: dict) -> dict:
    return {k: tf.constant(v) for k, v in batch.items()}


def test_hidden_states_equal_tfautomodel(family_dir):
    from transformers import TFAutoModel

    config = json.loads((family_dir / "config.json").read_text())
    ours, _ = load_encoder(family_dir)
    theirs = TFAutoModel.from_pretrained(str(family_dir))
    batch = _batch(config)
    a = ours(batch, training=False)["last_hidden_state"].numpy()
    b = theirs(_hf_inputs(batch), training=False).last_hidden_state.numpy()
    real = batch["attention_mask"].astype(bool)
    # Padded positions too: RoBERTa's padding gets the pad_token_id position row, as in transformers.
    np.testing.assert_allclose(a[real], b[real], atol=TOL)
    np.testing.assert_allclose(a, b, atol=TOL)
    if ours.pooler is not None:
        np.testing.assert_allclose(ours.pooler(a[:, 0]).numpy(), theirs(_hf_inputs(batch)).pooler_output.numpy(), atol=TOL)


def test_tf_names_are_transformers_names(family_dir):
    """What the encoder writes under TF names is exactly the TF class's variable list (scope dropped)."""
    from transformers import TFAutoModel

    theirs = TFAutoModel.from_pretrained(str(family_dir))
    ours, _ = load_encoder(family_dir)
    expected = {v.name.split("/", 1)[1] for v in theirs.weights}
    written = {tf_weight_name(n)[0] for n in encoder_state_dict(ours, prefix=ours.config.family.prefix)}
    if ours.config.family.pooler_names and not any("pooler" in n for n in expected):
        written = {n for n in written if "pooler" not in n}
    assert written == expected
    for variable in theirs.weights:
        name, transpose = pt_name_from_tf(variable.name)
        assert tf_weight_name(name) == (variable.name.split("/", 1)[1], transpose)


def test_checkpoint_round_trip(family_dir, tmp_path):
    """safetensors (PyTorch names) and tf_model.h5 written by the encoder load back to the same tensors;
    the h5 loads in transformers' TF class with the same outputs."""
    from transformers import TFAutoModel

    ours, _ = load_encoder(family_dir)
    prefix = ours.config.family.prefix
    (tmp_path / "pt").mkdir()
    (tmp_path / "tf").mkdir()
    for sub in ("pt", "tf"):
        (tmp_path / sub / "config.json").write_text((family_dir / "config.json").read_text())
    save_safetensors(tmp_path / "pt" / "model.safetensors", encoder_state_dict(ours))
    save_tf_h5(tmp_path / "tf" / "tf_model.h5", encoder_state_dict(ours, prefix=prefix), "tf_model")
    state = encoder_state_dict(ours)
    for sub in ("pt", "tf"):
        again, _ = load_encoder(tmp_path / sub)
        for name, value in encoder_state_dict(again).items():
            np.testing.assert_array_equal(value, state[name])
    config = json.loads((family_dir / "config.json").read_text())
    batch = _batch(config, seed=3)
    reloaded = TFAutoModel.from_pretrained(str(tmp_path / "tf"))
    np.testing.assert_allclose(reloaded(_hf_inputs(batch), training=False).last_hidden_state.numpy(),
                               ours(batch, training=False)["last_hidden_state"].numpy(), atol=TOL)


# ---------------------------------------------------------------- every task head, both backbones

HEADS = [("sequence_classification", "pooler"), ("sequence_classification", "cls"), ("sequence_classification", "mean"),
         ("multi_label_classification", "cls"), ("token_classification", "cls"), ("question_answering", "cls")]


def _task_config(task_type: str, pooling: str, backbone: str, model_dir: Path):
    config = new_config(task_type)
    config.model.name_or_path = str(model_dir)
    config.model.pooling = pooling
    config.model.backbone = backbone
    config.model.classifier_dropout = 0.0
    return config


def _pair(task_type: str, pooling: str, model_dir: Path, num_labels: int = 3):
    """(own-encoder task model, TFAutoModel task model) with the same weights, head included."""
    task = get_task(task_type)
    raw = json.loads((model_dir / "config.json").read_text())
    names = ["input_ids"] + (["token_type_ids"] if raw.get("type_vocab_size", 0) > 1 else []) + ["attention_mask"]
    models = []
    for backbone in ("tfbert", "transformers"):
        config = _task_config(task_type, pooling, backbone, model_dir)
        models.append(task.build_model(load_backbone(str(model_dir), backbone), config, num_labels, names))
    own, hf = models
    head = task.head_name
    hf.get_layer(head).set_weights(own.get_layer(head).get_weights())
    assert is_own_encoder(find_backbone(own)) and not is_own_encoder(find_backbone(hf))
    return task, own, hf


def _as_list(outputs) -> list[np.ndarray]:
    return [np.asarray(outputs[k]) for k in sorted(outputs)] if isinstance(outputs, dict) else [np.asarray(outputs)]


@pytest.mark.parametrize("task_type,pooling", HEADS)
def test_task_logits_equal_tfautomodel(task_type, pooling, family_dir):
    raw = json.loads((family_dir / "config.json").read_text())
    if pooling == "pooler" and raw["model_type"] in ("electra", "distilbert"):
        with pytest.raises(ConfigError, match="has no pooler"):
            _pair(task_type, pooling, family_dir)
        return
    _, own, hf = _pair(task_type, pooling, family_dir)
    batch = _batch(raw, seed=5)
    for training in (False, True):  # dropout is off in these checkpoints: training mode must agree too
        for a, b in zip(_as_list(own(batch, training=training)), _as_list(hf(batch, training=training))):
            real = batch["attention_mask"].astype(bool)
            if a.ndim == 3 or (a.ndim == 2 and a.shape == real.shape):  # per-token outputs: real tokens
                a, b = a[real], b[real]
            np.testing.assert_allclose(a, b, atol=TOL)


def _labels(task_type: str, batch: dict, num_labels: int = 3):
    rng = np.random.default_rng(11)
    n, s = batch["input_ids"].shape
    if task_type == "sequence_classification":
        return rng.integers(0, num_labels, size=(n,)).astype(np.int32)
    if task_type == "multi_label_classification":
        return rng.integers(0, 2, size=(n, num_labels)).astype(np.float32)
    if task_type == "token_classification":
        labels = rng.integers(0, num_labels, size=(n, s)).astype(np.int32)
        return np.where(batch["attention_mask"] == 1, labels, -100).astype(np.int32)
    return {"start_logits": rng.integers(0, 2, size=(n,)).astype(np.int32),
            "end_logits": rng.integers(2, 4, size=(n,)).astype(np.int32)}


TRAINED_HEADS = ["sequence_classification", "multi_label_classification", "token_classification", "question_answering"]


#: Each step compiles two models (seconds each): the default suite steps every head on BERT and every
#: family once (the backbone's gradients are the family's; a head's loss does not depend on it); the
#: other 12 combinations run with --run-slow.
@pytest.mark.parametrize("family_dir, task_type", [
    pytest.param(family, task_type, id=f"{family}-{task_type}",
                 marks=() if family == "bert" or task_type == "sequence_classification" else pytest.mark.slow)
    for family in FAMILIES for task_type in TRAINED_HEADS], indirect=["family_dir"])
def test_one_training_step_equals_tfautomodel(task_type, family_dir):
    """Same loss, and after one SGD step (gradients through every layer) the same logits."""
    raw = json.loads((family_dir / "config.json").read_text())
    task, own, hf = _pair(task_type, "cls", family_dir)
    batch = _batch(raw, seed=7)
    labels = _labels(task_type, batch)
    losses = []
    for model in (own, hf):
        model.compile(optimizer=tf_keras.optimizers.SGD(0.5), loss=task.loss())
        losses.append(model.train_on_batch(batch, labels))
    np.testing.assert_allclose(losses[0], losses[1], atol=TOL)
    for a, b in zip(_as_list(own(batch, training=False)), _as_list(hf(batch, training=False))):
        real = batch["attention_mask"].astype(bool)
        if a.ndim == 3 or (a.ndim == 2 and a.shape == real.shape):
            a, b = a[real], b[real]
        np.testing.assert_allclose(a, b, atol=TOL)


def test_first_token_only_is_the_first_position_of_the_full_encoder(bundled_dir):
    """A [CLS] head's last block computes one query per row: the same vector as the whole block's position 0."""
    encoder, _ = load_encoder(bundled_dir)
    raw = json.loads((bundled_dir / "config.json").read_text())
    batch = _batch({**raw, "vocab_size": 30000}, seed=4, batch=3, seq=11)
    full = encoder(batch, training=False)["last_hidden_state"].numpy()
    first = encoder(batch, training=False, first_token_only=True)["last_hidden_state"].numpy()
    assert first.shape == (3, 1, full.shape[-1])
    np.testing.assert_allclose(first, full[:, :1], atol=TOL)
    # Packed rows hold a first token per example: the whole sequence comes back.
    packed = dict(batch, example_ids=batch["attention_mask"].astype(np.int32),
                  position_ids=np.tile(np.arange(11, dtype=np.int32), (3, 1)))
    assert encoder(packed, training=False, first_token_only=True)["last_hidden_state"].shape == full.shape


def test_bundled_minilm_equals_tfautomodel(bundled_dir):
    """The shipped checkpoint (PyTorch-format safetensors) read directly, against transformers' conversion."""
    ours = load_backbone(str(bundled_dir), "tfbert")
    theirs = load_backbone(str(bundled_dir), "transformers")
    raw = json.loads((bundled_dir / "config.json").read_text())
    batch = _batch({**raw, "vocab_size": 30000}, seed=9, batch=4, seq=16)
    a = ours(batch, training=False)["last_hidden_state"].numpy()
    b = theirs(_hf_inputs(batch), training=False).last_hidden_state.numpy()
    real = batch["attention_mask"].astype(bool)  # what any head reads
    np.testing.assert_allclose(a[real], b[real], atol=TOL)


# ---------------------------------------------------------------- choosing and refusing

def test_backbone_choice(bundled_dir, tmp_path):
    assert is_own_encoder(load_backbone(str(bundled_dir)))  # auto
    assert not is_own_encoder(load_backbone(str(bundled_dir), "transformers"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert", "position_embedding_type": "relative_key",
                                                   "vocab_size": 10}))
    with pytest.raises(ConfigError, match="position_embedding_type 'relative_key'"):
        load_backbone(str(other), "tfbert")


def test_bad_checkpoints_are_one_line(family_dir, tmp_path):
    (tmp_path / "config.json").write_text((family_dir / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="model.safetensors: cannot read the weights"):
        load_encoder(tmp_path)
    ours, _ = load_encoder(family_dir)
    state = encoder_state_dict(ours)
    dropped = {k: v for k, v in state.items() if "layer.1." not in k}
    save_safetensors(tmp_path / "model.safetensors", dropped)
    with pytest.raises(ModelError, match="weights of the .* encoder are missing"):
        load_encoder(tmp_path)
    raw = json.loads((family_dir / "config.json").read_text())
    key = "dim" if raw["model_type"] == "distilbert" else "hidden_size"
    heads = "n_heads" if raw["model_type"] == "distilbert" else "num_attention_heads"
    (tmp_path / "config.json").write_text(json.dumps({**raw, key: 32, heads: 2}))
    save_safetensors(tmp_path / "model.safetensors", state)
    with pytest.raises(ModelError, match="has shape"):
        load_encoder(tmp_path)


def test_read_state_dict_names(family_dir):
    state = read_state_dict(family_dir / "tf_model.h5")
    prefix = json.loads((family_dir / "config.json").read_text())["model_type"].replace("xlm-roberta", "roberta")
    assert all(k.startswith(prefix + ".") for k in state), sorted(state)[:3]


def test_tf_format_safetensors_load(tmp_path):
    """transformers' TF ``save_pretrained(safe_serialization=True)`` writes TF names (format: tf): read too."""
    from transformers import TFAutoModel

    model = TFAutoModel.from_config(_tiny("bert"))
    model(model.dummy_inputs, training=False)
    _seeded(model, seed=21)
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "tf_model.h5").exists()
    ours, _ = load_encoder(tmp_path)
    batch = _batch(json.loads((tmp_path / "config.json").read_text()), seed=4)
    np.testing.assert_allclose(ours(batch, training=False)["last_hidden_state"].numpy(),
                               model(_hf_inputs(batch), training=False).last_hidden_state.numpy(), atol=TOL)
