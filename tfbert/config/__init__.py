"""The typed experiment config, importable without TensorFlow, tf_keras or transformers.

`load_config`, a config error and every tool's ``--help`` stay fast because nothing here (nor the
task specs it reads, `tfbert.tasks.registry`) imports model code:

- `schema`: the sections' dataclasses, every key with its type and default;
- `values`: typed values from YAML and ``--set`` text, one-line errors with did-you-mean keys;
- `checks`: validation of the whole tree;
- `loading`: defaults -> YAML -> ``--set`` overrides (or `apply_values` from code) -> validation.
"""
from __future__ import annotations

from tfbert.config.checks import check_config, require
from tfbert.config.loading import (apply_overrides, apply_values, config_from_dict, load_config, new_config,
                                   set_task_type, validate)
from tfbert.config.schema import (STRATEGIES, DataConfig, DistributionConfig, ExperimentConfig, ExportConfig,
                                  ModelConfig, OptimizerConfig, PrecisionConfig, Strategy, TaskConfig,
                                  TrainingConfig, file_list)
from tfbert.config.values import coerce, describe, flatten_keys, nest, parse_override, read_yaml, unknown_key

__all__ = [
    "STRATEGIES", "DataConfig", "DistributionConfig", "ExperimentConfig", "ExportConfig", "ModelConfig",
    "OptimizerConfig", "PrecisionConfig", "Strategy", "TaskConfig", "TrainingConfig", "apply_overrides",
    "apply_values", "check_config", "coerce", "config_from_dict", "describe", "file_list", "flatten_keys",
    "load_config", "nest", "new_config", "parse_override", "read_yaml", "require", "set_task_type", "unknown_key",
    "validate",
]
