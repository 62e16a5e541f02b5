"""The sequence classifier unrolled for IPU pipelining: embeddings, each encoder block, head.

The encoder is one Keras layer inside tfbert's Functional model, so pipeline stages could only be
"whole backbone" or "head". Graphcore's pipelining assigns stages per layer invocation of a
Functional model, so this module rebuilds the same computation with the encoder's own sub-layers
(``embeddings``, ``blocks[i]``: each a self-contained node taking the attention bias) as separate
nodes. The unrolled model shares every variable with the standard one, which stays the model that
is saved and exported (`serving_model`). It needs tfbert's own encoder (``model.backbone: auto``
or ``tfbert``): a transformers backbone's blocks take arguments a Functional node cannot carry.
"""
from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass

from tfbert.errors import ConfigError
from tfbert.modeling.backbone import apply_pooler, find_backbone, is_own_encoder, model_inputs
from tfbert.modeling.classifier import pool, reads_first_token_only
from tfbert.modeling.encoder.layers import attention_bias
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
    encoder = find_backbone(model)
    if not is_own_encoder(encoder):
        raise ConfigError(
            f"config key 'distribution.pipeline_splits': pipelining needs tfbert's own encoder "
            f"(model.backbone: auto or tfbert); {type(encoder).__name__} is a transformers backbone"
        )
    # Tasks with a pooled head (`Task.supports_pipelining`, checked when the experiment is built).
    dropout, classifier = model.get_layer("classifier_dropout"), model.get_layer("classifier")
    names = list(model.input.keys()) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    inputs = model_inputs(names)
    bias = attention_bias(inputs, encoder.compute_dtype)
    hidden = encoder.embeddings(inputs["input_ids"], inputs.get("token_type_ids"))
    first_token_only = reads_first_token_only(pooling)  # as `build_sequence_classifier` calls the encoder
    for block in encoder.blocks:
        hidden = block(hidden, bias, first_token_only=first_token_only and block is encoder.blocks[-1])
    hidden = encoder.sequence(hidden, inputs["input_ids"], first_token_only)
    pooled = apply_pooler(encoder, hidden[:, 0]) if pooling == "pooler" else None
    vector = pool(hidden, pooled, inputs["attention_mask"], pooling)
    logits = classifier(dropout(vector))
    unrolled = TaskModel(inputs=inputs, outputs=logits, name=f"{model.name}_pipelined",
                         gradient_accumulation_steps=model.gradient_accumulation_steps)
    head = [dropout, classifier] + ([encoder.pooler] if pooled is not None else [])
    _UNROLLED[unrolled] = _Unrolled(serving=model, embeddings=encoder.embeddings, encoder_layers=list(encoder.blocks),
                                    head=head)
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
