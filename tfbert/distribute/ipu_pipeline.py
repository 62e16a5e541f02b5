"""The sequence classifier unrolled for IPU pipelining: embeddings, each encoder layer, head.

A transformers backbone is one Keras layer inside tfbert's Functional model, so pipeline stages
could only be "whole backbone" or "head". Graphcore's pipelining assigns stages per layer
invocation of a Functional model, so this module rebuilds the same computation with the
backbone's own sub-layers (``embeddings``, ``encoder.layer[i]``) as separate nodes. The unrolled
model shares every variable with the standard one, which stays the model that is saved and
exported (`serving_model`).
"""
from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass
from types import SimpleNamespace

import tensorflow as tf

from tfbert.errors import ConfigError
from tfbert.modeling.backbone import find_backbone, main_layer, model_inputs
from tfbert.modeling.classifier import pool
from tfbert.modeling.task_model import TaskModel


@dataclass
class _Unrolled:
    serving: object  # the standard model sharing the variables (saved and exported)
    embeddings: object
    encoder_layers: list
    head: list


_UNROLLED: "weakref.WeakKeyDictionary[object, _Unrolled]" = weakref.WeakKeyDictionary()


def unroll_for_pipelining(model: TaskModel, pooling: str) -> TaskModel:
    """A Functional `TaskModel` computing the same logits as `model`, one node per encoder layer."""
    backbone = find_backbone(model)
    main = main_layer(backbone)
    layers = list(getattr(getattr(main, "encoder", None), "layer", None) or [])
    if getattr(main, "embeddings", None) is None or not layers:
        raise ConfigError(
            f"config key 'distribution.pipeline_splits': pipelining needs a BERT-style backbone "
            f"(embeddings + encoder.layer); {type(backbone).__name__} has none"
        )
    try:
        dropout, classifier = model.get_layer("classifier_dropout"), model.get_layer("classifier")
    except ValueError:
        raise ConfigError("config key 'distribution.pipeline_splits': pipelining supports task.type "
                          "sequence_classification only") from None
    names = list(model.input.keys()) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    inputs = model_inputs(names)
    hidden = main.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
    # The additive mask BERT's main layer builds: 0 where attended, -10000 on padding.
    mask = tf.cast(inputs["attention_mask"][:, None, None, :], hidden.dtype)
    extended = (1.0 - mask) * -10000.0
    for layer in layers:
        hidden = layer(hidden_states=hidden, attention_mask=extended, head_mask=None, encoder_hidden_states=None,
                       encoder_attention_mask=None, past_key_value=None, output_attentions=False)[0]
    pooled = main.pooler(hidden) if pooling == "pooler" else None
    vector = pool(SimpleNamespace(last_hidden_state=hidden, pooler_output=pooled), inputs["attention_mask"], pooling)
    logits = classifier(dropout(vector))
    unrolled = TaskModel(inputs=inputs, outputs=logits, name=f"{model.name}_pipelined",
                         gradient_accumulation_steps=model.gradient_accumulation_steps)
    head = [dropout, classifier] + ([main.pooler] if pooled is not None else [])
    _UNROLLED[unrolled] = _Unrolled(serving=model, embeddings=main.embeddings, encoder_layers=layers, head=head)
    return unrolled


def serving_model(model):
    """The model to save and export: the standard twin of an unrolled or packed model, else `model` itself."""
    from tfbert.modeling.packed import unpacked_model

    info = _UNROLLED.get(model)
    return info.serving if info is not None else unpacked_model(model)


def layer_stages(model, splits: list[int]) -> tuple[dict[int, int], int]:
    """``({id(layer): stage}, number of stages)``: embeddings on 0, layer i where `splits` puts it, head last."""
    info = _UNROLLED.get(model)
    if info is None:
        raise ConfigError("config key 'distribution.pipeline_splits': the model was not unrolled for pipelining")
    if splits[-1] >= len(info.encoder_layers):
        raise ConfigError(f"config key 'distribution.pipeline_splits': {splits} splits at encoder layer "
                          f"{splits[-1]}, but the backbone has {len(info.encoder_layers)} layers (0-{len(info.encoder_layers) - 1})")
    last = len(splits)
    stages = {id(info.embeddings): 0}
    for index, layer in enumerate(info.encoder_layers):
        stages[id(layer)] = bisect.bisect_right(splits, index)
    for layer in info.head:
        stages[id(layer)] = last
    return stages, last + 1


def assign_stages(assignments: list, stages: dict[int, int]) -> list[int]:
    """Set ``pipeline_stage`` on each of Graphcore's per-invocation assignments (in post-order).

    Layers without a stage of their own (mask and slicing ops) join the stage of the layer before
    them, so stages never decrease along the graph.
    """
    current = 0
    for assignment in assignments:
        current = max(current, stages.get(id(assignment.layer), current))
        assignment.pipeline_stage = current
    return [a.pipeline_stage for a in assignments]


def set_pipeline_stages(model, splits: list[int]) -> int:
    """Assign stages through the SDK's ``get/set_pipeline_stage_assignment``; returns the stage count."""
    stages, count = layer_stages(model, splits)
    assignments = model.get_pipeline_stage_assignment()
    assign_stages(assignments, stages)
    model.set_pipeline_stage_assignment(assignments)
    return count
