"""tfbert: fine-tune BERT-family models with TensorFlow/Keras and export SavedModels that serve raw text.

The library in five calls::

    config = tfbert.load_config("configs/sms_spam_minilm.yaml", ["optimizer.learning_rate=3e-5"])
    experiment = tfbert.build_experiment(config)        # compiled Keras model + tf.data splits
    experiment.fit()                                     # or model.fit(experiment.train_dataset, ...)
    tfbert.save_pretrained("out/model", experiment.model, experiment.tokenizer, config, experiment.label_names)
    tfbert.export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names, "out/saved_model",
                              config=config)
"""
from typing import TYPE_CHECKING

# Imported on first use: `import tfbert` (and every command-line tool) stays cheap until TensorFlow
# is needed, so the tools can silence TensorFlow's start-up lines before it loads, and serving
# does not pay for training modules (or training for tensorflow-text, ~100 MB resident).
_LAZY = {
    "ExperimentConfig": "tfbert.config", "load_config": "tfbert.config",
    "ConfigError": "tfbert.errors", "DataError": "tfbert.errors", "ModelError": "tfbert.errors",
    "TfbertError": "tfbert.errors", "Experiment": "tfbert.run.experiment", "build_experiment": "tfbert.run.experiment",
    "load_pretrained": "tfbert.modeling.saving", "save_pretrained": "tfbert.modeling.saving",
    "train": "tfbert.run.trainer",
    "export_saved_model": "tfbert.serving.export", "load_saved_model": "tfbert.serving.export",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from tfbert.config import ExperimentConfig, load_config
    from tfbert.errors import ConfigError, DataError, ModelError, TfbertError
    from tfbert.run.experiment import Experiment, build_experiment
    from tfbert.modeling.saving import load_pretrained, save_pretrained
    from tfbert.serving.export import export_saved_model, load_saved_model
    from tfbert.run.trainer import train


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfbert' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DataError", "Experiment", "ExperimentConfig", "ModelError", "TfbertError",
    "build_experiment", "export_saved_model", "load_config", "load_pretrained", "load_saved_model",
    "save_pretrained", "train",
]
