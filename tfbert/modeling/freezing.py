"""Layer freezing: train all, freeze embeddings + the bottom N encoder layers, or the whole backbone."""
from __future__ import annotations

from tfbert.errors import ConfigError
from tfbert.modeling.backbone import embeddings_layer, encoder_blocks, pooler_layer

#: kept for callers that ask for "the encoder layers"
encoder_layers = encoder_blocks


def apply_freezing(backbone, mode: str, num_layers: int = 0) -> None:
    """Set `trainable` on backbone parts; call before `compile`.

    An unused pooler stays frozen (the classifier freezes it when it reads [CLS] or a mean):
    un-freezing the backbone must not bring back a layer that gets no gradient.
    """
    pooler = pooler_layer(backbone)
    pooler_trainable = pooler.trainable if pooler is not None else True
    backbone.trainable = True
    if pooler is not None:
        pooler.trainable = pooler_trainable
    if mode == "none":
        return
    if mode == "backbone":
        backbone.trainable = False
        return
    if mode != "bottom":
        raise ConfigError(f"config key 'training.freeze': {mode!r} is not allowed; expected none, bottom, backbone")
    layers = encoder_blocks(backbone)
    if num_layers > len(layers):
        raise ConfigError(
            f"config key 'training.freeze_layers': {num_layers} exceeds the model's {len(layers)} encoder layers"
        )
    embeddings_layer(backbone).trainable = False
    for layer in layers[:num_layers]:
        layer.trainable = False
