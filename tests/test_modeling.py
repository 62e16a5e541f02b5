"""Model: head, pooling, freezing, precision policies, pretrained loading."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tfbert.errors import ConfigError, ModelError
from tfbert.modeling.classifier import build_sequence_classifier
from tfbert.modeling.backbone import encoder_blocks, is_own_encoder, load_backbone
from tfbert.modeling.freezing import apply_freezing
from tfbert.pretrained import resolve_model_dir, tf_weights_dir
from tfbert.training.precision import set_precision

INPUTS = ["input_ids", "token_type_ids", "attention_mask"]


def batch(n=3, length=7):
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(n, length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[0, 4:] = 0
    return {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}


@pytest.fixture(params=["tfbert", "transformers"])
def backbone(request, tiny_model_dir):
    """The tiny BERT on both paths: tfbert's own encoder and transformers' TFBertModel."""
    return load_backbone(str(tiny_model_dir), request.param)


def _block(name: str, index: int) -> str:
    """How a block's variables are scoped on either path (``layer_0/`` or ``layer_._0/``)."""
    return f"/layer_{index}/" if "/layer_._" not in name else f"/layer_._{index}/"


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean"])
@pytest.mark.parametrize("num_labels", [2, 5])
def test_head_shapes(backbone, pooling, num_labels):
    model = build_sequence_classifier(backbone, num_labels, INPUTS, pooling=pooling)
    logits = model(batch(), training=False)
    assert logits.shape == (3, num_labels) and logits.dtype == tf.float32


def test_mean_pooling_ignores_padding(backbone):
    model = build_sequence_classifier(backbone, 2, INPUTS, pooling="mean", dropout=0.0)
    b = batch()
    full = model(b, training=False).numpy()
    changed = dict(b)
    changed["input_ids"] = b["input_ids"].copy()
    changed["input_ids"][0, 5:] = 7  # padded positions of row 0 change
    np.testing.assert_allclose(model(changed, training=False).numpy()[0], full[0], atol=1e-5)


def _trainable_names(model):
    return {v.name for v in model.trainable_variables}


def test_freezing_modes(backbone):
    total = len(backbone.weights)
    apply_freezing(backbone, "backbone")
    model = build_sequence_classifier(backbone, 2, INPUTS)
    assert {n.split("/")[0] for n in _trainable_names(model)} == {"classifier"}

    apply_freezing(backbone, "bottom", 1)
    names = _trainable_names(model)
    assert not any("embeddings" in n for n in names)
    assert not any(_block(n, 0) in n for n in names)
    assert any(_block(n, 1) in n for n in names)
    assert not any("pooler" in n for n in names)  # unused by the [CLS] head

    apply_freezing(backbone, "none")
    assert len(model.trainable_variables) == total - 2 + 2  # all but the pooler, plus the head
    with pytest.raises(ConfigError, match="freeze_layers.*exceeds the model's 2 encoder layers"):
        apply_freezing(backbone, "bottom", 3)
    assert len(encoder_blocks(backbone)) == 2


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("path", ["tfbert", "transformers"])
def test_mixed_precision_keeps_logits_float32(tiny_model_dir, policy, path):
    set_precision(policy)
    try:
        backbone = load_backbone(str(tiny_model_dir), path)
        model = build_sequence_classifier(backbone, 2, INPUTS)
        dense = model.get_layer("classifier")
        assert dense.dtype_policy.name == "float32"
        assert encoder_blocks(backbone)[0].dtype_policy.name == policy
        assert all(w.dtype == tf.float32 for w in backbone.weights)  # variables stay float32
        logits = model(batch(), training=False)
        assert logits.dtype == tf.float32 and np.isfinite(logits.numpy()).all()
    finally:
        set_precision("float32")


def test_bundled_model_resolves_and_loads_without_torch(bundled_dir):
    """The own encoder reads the PyTorch-format safetensors directly; the transformers path converts once."""
    from safetensors.numpy import load_file

    assert resolve_model_dir("bundled:all-MiniLM-L6-v2") == bundled_dir
    assert resolve_model_dir("all-MiniLM-L6-v2") == bundled_dir
    state = load_file(str(bundled_dir / "model.safetensors"))
    encoder = load_backbone("bundled:all-MiniLM-L6-v2")
    assert is_own_encoder(encoder)
    np.testing.assert_array_equal(encoder.embeddings.word_embeddings.numpy(), state["embeddings.word_embeddings.weight"])
    np.testing.assert_array_equal(encoder.blocks[5].output_dense.kernel.numpy(),
                                  state["encoder.layer.5.output.dense.weight"].T)
    # Fused QKV: query, key and value side by side.
    np.testing.assert_array_equal(encoder.blocks[2].qkv.kernel.numpy()[:, 384:768],
                                  state["encoder.layer.2.attention.self.key.weight"].T)
    weights = tf_weights_dir(bundled_dir)
    assert (weights / "tf_model.h5").is_file()
    backbone = load_backbone("bundled:all-MiniLM-L6-v2", "transformers")
    tf_kernel = next(w for w in backbone.weights if "layer_._5/output/dense/kernel" in w.name)
    np.testing.assert_array_equal(tf_kernel.numpy(), state["encoder.layer.5.output.dense.weight"].T)


def test_refuses_pickles_remote_code_and_missing_dirs(tmp_path):
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelError, match="never unpickles"):
        tf_weights_dir(tmp_path / "pickle")
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(ModelError, match="refuses trust_remote_code"):
        tf_weights_dir(tmp_path / "remote")
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(ModelError, match="is not a model directory"):
        resolve_model_dir(str(tmp_path / "missing"))
    with pytest.raises(ModelError, match="unknown bundled model"):
        resolve_model_dir("bundled:bert-huge")


def test_max_seq_length_beyond_position_table_is_a_config_error(tiny_model_dir):
    from tfbert.modeling.backbone import check_sequence_length
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(tiny_model_dir))
    check_sequence_length(config, 512)
    with pytest.raises(ConfigError, match="'data.max_seq_length': 513 exceeds the model's 512 position embeddings"):
        check_sequence_length(config, 513)
