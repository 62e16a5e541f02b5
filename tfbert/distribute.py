"""Where a `tf.distribute` strategy is chosen."""
from __future__ import annotations

import tensorflow as tf

from tfbert.errors import ConfigError

STRATEGIES = ("default",)


def choose_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for ``--strategy NAME``; build models and optimizers inside its scope."""
    if name == "default":
        return tf.distribute.get_strategy()
    raise ConfigError(f"--strategy: {name!r} is not available; expected one of {', '.join(STRATEGIES)}")
