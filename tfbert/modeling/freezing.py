"""Layer freezing: train all, freeze embeddings + the bottom N encoder layers, or the whole backbone."""
from __future__ import annotations

from tfbert.errors import ConfigError
from tfbert.modeling.backbone import main_layer as _main_layer


def encoder_layers(backbone) -> list:
    """The transformer blocks, bottom first."""
    main = _main_layer(backbone)
    for path in ("encoder.layer", "transformer.layer", "encoder.layers"):
        obj = main
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return list(obj)
    raise ConfigError(f"training.freeze: cannot find the encoder layers of {type(backbone).__name__}")


def apply_freezing(backbone, mode: str, num_layers: int = 0) -> None:
    """Set `trainable` on backbone parts; call before `compile`.

    An unused pooler stays frozen (the classifier freezes it when it reads [CLS] or a mean):
    un-freezing the backbone must not bring back a layer that gets no gradient.
    """
    pooler = getattr(_main_layer(backbone), "pooler", None)
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
    layers = encoder_layers(backbone)
    if num_layers > len(layers):
        raise ConfigError(
            f"config key 'training.freeze_layers': {num_layers} exceeds the model's {len(layers)} encoder layers"
        )
    _main_layer(backbone).embeddings.trainable = False
    for layer in layers[:num_layers]:
        layer.trainable = False
