"""Which Hugging Face checkpoints tfbert's own encoder runs, and how their ``config.json`` reads.

The encoder (`tfbert.modeling.encoder.TransformerEncoder`) is one post-LayerNorm transformer
stack; the BERT family's members differ only in a few facts, each recorded here once:

- **names**: the PyTorch parameter names of each weight (`Family.block_names` etc.), so a
  checkpoint loads and saves under exactly the names transformers uses;
- **positions**: BERT, ELECTRA and DistilBERT count positions from 0; RoBERTa and XLM-R from
  ``pad_token_id + 1`` (and give padding the ``pad_token_id`` row), as their ``create_position_ids``;
- **token types**: DistilBERT has none;
- **embedding width**: ELECTRA's embeddings may be narrower than the encoder, with a projection;
- **pooler**: BERT and RoBERTa checkpoints carry one (a dense + tanh on the first token); ELECTRA
  and DistilBERT do not.

`EncoderConfig` keeps transformers' attribute names (``hidden_size``, ``num_hidden_layers``,
``initializer_range``…), so code reading ``backbone.config`` works for this encoder and for a
transformers backbone alike. Reading a config imports no TensorFlow.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from tfbert.errors import ModelError

#: hidden_act values the encoder computes exactly as transformers does
ACTIVATIONS = {
    "gelu": "gelu",              # exact, erf-based
    "gelu_new": "gelu_tanh",     # tanh approximation
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "relu": "relu",
}


@dataclass(frozen=True)
class Family:
    """What one ``model_type`` looks like in a checkpoint.

    Names are PyTorch parameter names relative to the base model (``prefix`` is prepended in task
    checkpoints: ``bert.encoder.layer.0…``). Block names take ``{i}``; each maps an internal weight
    to one checkpoint tensor, except the fused ``qkv`` projection, which is three (query, key,
    value), concatenated along the output axis at load and split again at save.
    """

    model_type: str
    prefix: str
    #: transformers' class names: the bare backbone, and the heads tfbert's own heads equal
    base_class: str
    #: whether tfbert's ``pooling: pooler`` head is ``<Arch>ForSequenceClassification``'s own head
    pooler_is_hf_head: bool
    embedding_names: dict[str, str]
    block_names: dict[str, Any]
    pooler_names: dict[str, str] = field(default_factory=dict)
    #: first position id of a sequence (RoBERTa: pad_token_id + 1), or 0
    roberta_positions: bool = False


_BERT_BLOCK = {
    "qkv/kernel": ("encoder.layer.{i}.attention.self.query.weight", "encoder.layer.{i}.attention.self.key.weight",
                   "encoder.layer.{i}.attention.self.value.weight"),
    "qkv/bias": ("encoder.layer.{i}.attention.self.query.bias", "encoder.layer.{i}.attention.self.key.bias",
                 "encoder.layer.{i}.attention.self.value.bias"),
    "attention_output/kernel": "encoder.layer.{i}.attention.output.dense.weight",
    "attention_output/bias": "encoder.layer.{i}.attention.output.dense.bias",
    "attention_layer_norm/gamma": "encoder.layer.{i}.attention.output.LayerNorm.weight",
    "attention_layer_norm/beta": "encoder.layer.{i}.attention.output.LayerNorm.bias",
    "intermediate/kernel": "encoder.layer.{i}.intermediate.dense.weight",
    "intermediate/bias": "encoder.layer.{i}.intermediate.dense.bias",
    "output/kernel": "encoder.layer.{i}.output.dense.weight",
    "output/bias": "encoder.layer.{i}.output.dense.bias",
    "output_layer_norm/gamma": "encoder.layer.{i}.output.LayerNorm.weight",
    "output_layer_norm/beta": "encoder.layer.{i}.output.LayerNorm.bias",
}
_BERT_EMBEDDINGS = {
    "word_embeddings": "embeddings.word_embeddings.weight",
    "position_embeddings": "embeddings.position_embeddings.weight",
    "token_type_embeddings": "embeddings.token_type_embeddings.weight",
    "layer_norm/gamma": "embeddings.LayerNorm.weight",
    "layer_norm/beta": "embeddings.LayerNorm.bias",
}
_BERT_POOLER = {"pooler/kernel": "pooler.dense.weight", "pooler/bias": "pooler.dense.bias"}

FAMILIES: dict[str, Family] = {
    "bert": Family("bert", "bert", "BertModel", True, _BERT_EMBEDDINGS, _BERT_BLOCK, _BERT_POOLER),
    "roberta": Family("roberta", "roberta", "RobertaModel", False, _BERT_EMBEDDINGS, _BERT_BLOCK, _BERT_POOLER,
                      roberta_positions=True),
    "xlm-roberta": Family("xlm-roberta", "roberta", "XLMRobertaModel", False, _BERT_EMBEDDINGS, _BERT_BLOCK,
                          _BERT_POOLER, roberta_positions=True),
    "electra": Family("electra", "electra", "ElectraModel", False,
                      {**_BERT_EMBEDDINGS, "projection/kernel": "embeddings_project.weight",
                       "projection/bias": "embeddings_project.bias"}, _BERT_BLOCK),
    "distilbert": Family(
        "distilbert", "distilbert", "DistilBertModel", False,
        {k: v for k, v in _BERT_EMBEDDINGS.items() if k != "token_type_embeddings"},
        {
            "qkv/kernel": ("transformer.layer.{i}.attention.q_lin.weight", "transformer.layer.{i}.attention.k_lin.weight",
                           "transformer.layer.{i}.attention.v_lin.weight"),
            "qkv/bias": ("transformer.layer.{i}.attention.q_lin.bias", "transformer.layer.{i}.attention.k_lin.bias",
                         "transformer.layer.{i}.attention.v_lin.bias"),
            "attention_output/kernel": "transformer.layer.{i}.attention.out_lin.weight",
            "attention_output/bias": "transformer.layer.{i}.attention.out_lin.bias",
            "attention_layer_norm/gamma": "transformer.layer.{i}.sa_layer_norm.weight",
            "attention_layer_norm/beta": "transformer.layer.{i}.sa_layer_norm.bias",
            "intermediate/kernel": "transformer.layer.{i}.ffn.lin1.weight",
            "intermediate/bias": "transformer.layer.{i}.ffn.lin1.bias",
            "output/kernel": "transformer.layer.{i}.ffn.lin2.weight",
            "output/bias": "transformer.layer.{i}.ffn.lin2.bias",
            "output_layer_norm/gamma": "transformer.layer.{i}.output_layer_norm.weight",
            "output_layer_norm/beta": "transformer.layer.{i}.output_layer_norm.bias",
        }),
}

#: ``model_type`` values the own encoder runs (`model.backbone: auto` picks it for these)
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder's hyperparameters, under transformers' attribute names.

    ``raw`` is the checkpoint's ``config.json`` as read; saving writes it back with only the
    labels (and ``architectures``) changed, so nothing a transformers loader reads is lost.
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    #: 0: the model has no token types (DistilBERT)
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    #: width of the embeddings; a projection to ``hidden_size`` when different (ELECTRA)
    embedding_size: Optional[int] = None
    has_pooler: bool = True
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def family(self) -> Family:
        return FAMILIES[self.model_type]

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def activation(self) -> str:
        """The internal activation name (``gelu``, ``gelu_tanh``, ``relu``)."""
        return ACTIVATIONS[self.hidden_act]

    @property
    def position_offset(self) -> int:
        """Position id of a sequence's first token (RoBERTa: ``pad_token_id + 1``)."""
        return self.pad_token_id + 1 if self.family.roberta_positions else 0

    def replace(self, **changes: Any) -> "EncoderConfig":
        return dataclasses.replace(self, **changes)


def unsupported_reason(raw: dict) -> Optional[str]:
    """Why the own encoder cannot run the checkpoint described by `raw` (``config.json``), or None."""
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
        return f"model_type {model_type!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}"
    act = raw.get("activation", raw.get("hidden_act", "gelu")) if model_type == "distilbert" else raw.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        return f"hidden_act {act!r} is not one of {', '.join(ACTIVATIONS)}"
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        return f"position_embedding_type {position_type!r} (only 'absolute' is supported)"
    if model_type == "distilbert" and raw.get("sinusoidal_pos_embds"):
        return "sinusoidal_pos_embds: true"
    if raw.get("is_decoder") or raw.get("add_cross_attention"):
        return "a decoder configuration"
    return None


def encoder_config_from_dict(raw: dict, has_pooler: Optional[bool] = None) -> EncoderConfig:
    """The `EncoderConfig` of a checkpoint's ``config.json`` (a `ModelError` naming what is unsupported).

    Args:
        raw: the parsed ``config.json``.
        has_pooler: whether the weights hold a pooler; default: the family's BERT/RoBERTa have one.
    """
    reason = unsupported_reason(raw)
    if reason:
        raise ModelError(f"config.json: tfbert's encoder cannot run this checkpoint: {reason}")
    model_type = raw["model_type"]
    family = FAMILIES[model_type]
    try:
        if model_type == "distilbert":
            values = dict(
                vocab_size=raw["vocab_size"], hidden_size=raw.get("dim", 768), num_hidden_layers=raw.get("n_layers", 6),
                num_attention_heads=raw.get("n_heads", 12), intermediate_size=raw.get("hidden_dim", 3072),
                hidden_act=raw.get("activation", "gelu"), hidden_dropout_prob=raw.get("dropout", 0.1),
                attention_probs_dropout_prob=raw.get("attention_dropout", 0.1), type_vocab_size=0,
                max_position_embeddings=raw.get("max_position_embeddings", 512), layer_norm_eps=1e-12,
                initializer_range=raw.get("initializer_range", 0.02), pad_token_id=raw.get("pad_token_id", 0) or 0)
        else:
            values = dict(
                vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"], num_hidden_layers=raw["num_hidden_layers"],
                num_attention_heads=raw["num_attention_heads"], intermediate_size=raw["intermediate_size"],
                hidden_act=raw.get("hidden_act", "gelu"), hidden_dropout_prob=raw.get("hidden_dropout_prob", 0.1),
                attention_probs_dropout_prob=raw.get("attention_probs_dropout_prob", 0.1),
                max_position_embeddings=raw.get("max_position_embeddings", 512),
                type_vocab_size=raw.get("type_vocab_size", 2), layer_norm_eps=raw.get("layer_norm_eps", 1e-12),
                initializer_range=raw.get("initializer_range", 0.02), pad_token_id=raw.get("pad_token_id", 0) or 0,
                embedding_size=raw.get("embedding_size") if model_type == "electra" else None)
    except KeyError as exc:
        raise ModelError(f"config.json: key {exc.args[0]!r} missing for model_type {model_type!r}") from None
    if values["hidden_size"] % values["num_attention_heads"]:
        raise ModelError(f"config.json: hidden_size {values['hidden_size']} is not a multiple of "
                         f"num_attention_heads {values['num_attention_heads']}")
    if values.get("embedding_size") == values["hidden_size"]:
        values["embedding_size"] = None
    pooler = bool(family.pooler_names) if has_pooler is None else has_pooler and bool(family.pooler_names)
    return EncoderConfig(model_type=model_type, has_pooler=pooler, raw=dict(raw), **values)


__all__ = ["ACTIVATIONS", "EncoderConfig", "FAMILIES", "Family", "SUPPORTED_MODEL_TYPES", "encoder_config_from_dict",
           "unsupported_reason"]
