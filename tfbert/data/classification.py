"""Sequence-classification data: files -> validated rows -> label ids -> tokenized splits."""
from __future__ import annotations

from typing import Optional

import numpy as np

from tfbert.config import DataConfig
from tfbert.data.encoding import tokenize_split
from tfbert.data.labels import check_labels, encode_labels, infer_label_names
from tfbert.data.readers import check_texts, concatenate_tables, read_table, require_columns
from tfbert.data.splits import stratified_split
from tfbert.data.task_data import TaskData
from tfbert.errors import DataError


def _text_columns(config: DataConfig) -> list[str]:
    return [config.text_column] + ([config.text_pair_column] if config.text_pair_column else [])


def _read_split(path: str, config: DataConfig, with_labels: bool):
    dataset = read_table(path, config)
    columns = _text_columns(config) + ([config.label_column] if with_labels else [])
    require_columns(dataset, columns, path)
    dataset = dataset.select_columns(columns)
    check_texts(dataset, _text_columns(config), path)
    if with_labels:
        check_labels(dataset[config.label_column], path, config.label_column)
    return dataset


def load_classification_data(
    config: DataConfig, tokenizer, seed: int, label_names: Optional[list[str]] = None
) -> TaskData:
    """Read the configured files, map labels, split if asked, tokenize each split once.

    `label_names` (e.g. from a trained model) fixes the label order; otherwise ``data.labels``
    or the sorted labels of the training file are used.
    """
    if not config.train_file and not config.test_file and not config.validation_file:
        raise DataError("config key 'data.train_file': no data files configured")
    rows: dict[str, tuple] = {}
    names = label_names or config.labels
    if config.train_file:
        # Each file is read and its labels mapped on its own, so that errors name the file and its row.
        paths = config.train_files()
        parts = [_read_split(path, config, with_labels=True) for path in paths]
        train = concatenate_tables(parts, paths)
        source = config.train_file_label()
        if names is None:
            names = infer_label_names(train[config.label_column])
            if len(names) < 2:
                raise DataError(f"{source}: column {config.label_column!r} has only one label {names}")
        train2id = {n: i for i, n in enumerate(names)}
        ids = np.concatenate([encode_labels(part[config.label_column], train2id, path, config.label_column)
                              for part, path in zip(parts, paths)])
        rows["train"] = (train, ids, source)
    label2id = {n: i for i, n in enumerate(names or [])}
    for split, path in (("validation", config.validation_file), ("test", config.test_file)):
        if path:
            if not label2id:
                raise DataError(f"{path}: labels unknown; set data.labels or data.train_file")
            dataset = _read_split(path, config, with_labels=True)
            rows[split] = (dataset, encode_labels(dataset[config.label_column], label2id, path,
                                                  config.label_column), path)

    for split, fraction in (("test", config.test_split), ("validation", config.validation_split)):
        if fraction and split not in rows:
            if "train" not in rows:
                raise DataError(f"config key 'data.{split}_split': needs data.train_file to split from")
            train, ids, path = rows["train"]
            # Fractions are of the whole file, so validation_split 0.1 + test_split 0.2 leaves 70%.
            relative = fraction / (1.0 - (config.test_split if split == "validation" else 0.0))
            kept, held, kept_ids, held_ids = stratified_split(train, ids, relative, seed, split, source=str(path),
                                                              label_names=list(names or []))
            rows["train"] = (kept, kept_ids, path)
            rows[split] = (held, held_ids, f"{path} ({split} split)")

    data = TaskData(label_names=list(names or []))
    for split, (dataset, ids, _) in rows.items():
        data.extras[split] = [dataset[c] for c in _text_columns(config)]
        data.splits[split] = tokenize_split(
            dataset, tokenizer, config.text_column, config.text_pair_column, config.max_seq_length, ids
        )
    return data
