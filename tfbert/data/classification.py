"""Classification data, single- or multi-label: files -> validated rows -> label arrays -> tokenized splits.

One loader for every task that reads a text (or text pair) and a label column: the tasks differ
only in how a label cell is read and encoded (`LabelColumn`: one class id per row here; the
multi-label task reads several labels into a 0/1 row), so files, several training files, held-out
splits (`tfbert.data.splits.hold_out`) and tokenization behave the same for both.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from tfbert.config import DataConfig
from tfbert.data.encoding import tokenize_split
from tfbert.data.labels import check_labels, encode_labels, infer_label_names
from tfbert.data.readers import check_texts, concatenate_tables, read_table, require_columns
from tfbert.data.splits import hold_out, split_fractions
from tfbert.data.task_data import TaskData
from tfbert.errors import DataError


class LabelColumn:
    """How a task reads its label column: one class per row (sequence classification).

    A task with another label format (several labels per row) overrides the three steps and
    `stratify`; each step's errors name the file, the row and the column.
    """

    #: whether held-out splits keep each label's share (needs one class per row)
    stratify: bool = True

    def parse(self, values: Sequence[Any], path: str, column: str) -> list:
        """The rows' labels as read from the cells (checked)."""
        check_labels(values, path, column)
        return list(values)

    @staticmethod
    def parse_cells(values: Sequence[Any], parse: Callable[[Any], Any], path: str, column: str) -> list:
        """`parse` of each cell, for a `parse` override; its `ValueError` becomes a `DataError` naming
        the file, the row (1-based, header not counted) and the column."""
        rows = []
        for row, value in enumerate(values, start=1):
            try:
                rows.append(parse(value))
            except ValueError as exc:
                raise DataError(f"{path}, row {row}: column {column!r}: {exc}") from None
        return rows

    def infer_names(self, rows: list, source: str, column: str) -> list[str]:
        """Label names from the training rows when neither the model nor ``data.labels`` gives them."""
        names = infer_label_names(rows)
        if len(names) < 2:
            raise DataError(f"{source}: column {column!r} has only one label {names}")
        return names

    def encode(self, rows: list, names: list[str], path: str, column: str) -> np.ndarray:
        """The model's targets for `rows` (here int32 class ids)."""
        return encode_labels(rows, {n: i for i, n in enumerate(names)}, path, column)


def _text_columns(config: DataConfig) -> list[str]:
    return [config.text_column] + ([config.text_pair_column] if config.text_pair_column else [])


def _read_file(path: str, config: DataConfig, labels: LabelColumn):
    """One file's table (text and label columns) and its parsed labels."""
    dataset = read_table(path, config)
    columns = _text_columns(config) + [config.label_column]
    require_columns(dataset, columns, path)
    dataset = dataset.select_columns(columns)
    check_texts(dataset, _text_columns(config), path)
    return dataset, labels.parse(dataset[config.label_column], str(path), config.label_column)


def load_classification_data(
    config: DataConfig, tokenizer, seed: int, label_names: Optional[list[str]] = None,
    labels: Optional[LabelColumn] = None, splits: Optional[dict[str, Any]] = None,
) -> TaskData:
    """Read the configured files, encode labels, hold out splits if asked, tokenize each split once.

    Args:
        config: the ``data`` section.
        tokenizer: the model's fast tokenizer.
        seed: seeds the held-out splits.
        label_names: the label order (e.g. a trained model's); else ``data.labels``, else inferred
            from the training file.
        labels: how the label column is read (default: one class per row).
        splits: split -> file(s) to read instead of the configured files (nothing is held out).
    """
    labels = labels or LabelColumn()
    files = splits or {"train": config.train_files(), "validation": config.validation_file, "test": config.test_file}
    files = {split: [str(p) for p in ([paths] if isinstance(paths, str) else paths)]
             for split, paths in files.items() if paths}
    if not files:
        raise DataError("config key 'data.train_file': no data files configured")
    # Each file is read and its labels checked on its own, so that errors name the file and its row.
    parts = {split: [(path, *_read_file(path, config, labels)) for path in paths] for split, paths in files.items()}
    names = list(label_names or config.labels or [])
    if not names:
        if "train" not in parts:
            first = next(iter(files.values()))[0]
            raise DataError(f"{first}: labels unknown; set data.labels or data.train_file")
        names = labels.infer_names([r for _, _, rows in parts["train"] for r in rows], " + ".join(files["train"]),
                                   config.label_column)
    tables, targets, sources = {}, {}, {}
    for split, chunks in parts.items():
        tables[split] = concatenate_tables([t for _, t, _ in chunks], [p for p, _, _ in chunks])
        targets[split] = np.concatenate([labels.encode(rows, names, path, config.label_column)
                                         for path, _, rows in chunks])
        sources[split] = " + ".join(files[split])

    fractions = {} if splits else split_fractions(config, present=tables)
    if fractions:
        train, ids = tables["train"], targets["train"]
        rows = hold_out(len(train), fractions, seed, sources["train"], labels=ids if labels.stratify else None,
                        label_names=names)
        for split, index in rows.items():
            tables[split], targets[split] = train.select(index), ids[index]

    data = TaskData(label_names=list(names))
    for split, table in tables.items():
        # Plain lists of str: datasets 4 hands a column back as a lazy Column, which tokenizers reject.
        data.extras[split] = [list(table[c]) for c in _text_columns(config)]
        data.splits[split] = tokenize_split(
            table, tokenizer, config.text_column, config.text_pair_column, config.max_seq_length, targets[split]
        )
    return data
