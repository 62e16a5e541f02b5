"""Hyperparameter search on Optuna (``tools/search.py``): a study of trials, each a normal run.

- `study`: the search itself (settings, the Optuna study, trials in child processes, pruning,
  summaries and the best config);
- `space`: the search space and its checks against the base config; sampled values are applied
  with `tfbert.config.apply_values`, the public way to set dotted config keys;
- `trials`: what runs around a trial (its epochs, locks, child processes, signals, summary tables).
"""
from __future__ import annotations

from tfbert.search.space import FIXED_KEYS, Param, load_space, parse_space, trial_config
from tfbert.search.study import Search, SearchError, SearchSettings, non_default_values, prepare, run_search

__all__ = ["FIXED_KEYS", "Param", "Search", "SearchError", "SearchSettings", "load_space", "non_default_values",
           "parse_space", "prepare", "run_search", "trial_config"]
