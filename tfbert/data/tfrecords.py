"""Already-tokenized splits as sharded TFRecord files, on a local path or ``gs://`` bucket.

``tools/make_tfrecords.py`` tokenizes once (on any machine) and writes, per split,
``<split>-00000-of-0000N.tfrecord`` shards plus ``metadata.json``; a trainer with
``data.tfrecords`` reads them instead of tokenizing, e.g. on a TPU VM reading a bucket.

Each record holds one example: the token-id features unpadded (int64 lists) and its labels
(``label``: the example's label, encoded as its task says (`Task.record_label_dtype`): an int64
class id, or float32 values such as a multi-label row of 0/1; ``labels``: one id per token;
``label/<name>``: per-example fields such as QA positions). Reading gives back exactly the
`EncodedSplit` the files would have produced, in the same order, so the usual `tf.data` pipeline
(padding, static shapes for TPU, sharding) applies unchanged and a run from TFRecords matches a
run from the files. ``metadata.json`` is written last: a directory without it is incomplete.

Paths go through `tf.io.gfile`, so ``gs://`` works wherever TensorFlow's GCS file system does
(standard TensorFlow builds with credentials available).
"""
from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import tensorflow as tf

from tfbert.data.encoding import EncodedSplit, RaggedLabels
from tfbert.data.task_data import TaskData
from tfbert.errors import ConfigError, DataError

FORMAT = "tfbert-tfrecords"
VERSION = 1
METADATA = "metadata.json"
SPLITS = ("train", "validation", "test")


@dataclass
class RecordSet:
    """What a TFRecord directory holds: its metadata and the splits read back."""

    metadata: dict
    splits: dict[str, EncodedSplit] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return list(self.metadata["label_names"])


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of the tokenizer's vocabulary: records are only valid for the same ids."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha1(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _join(directory: str, name: str) -> str:
    # posixpath keeps gs:// URLs intact (os.path would too on POSIX, but not on Windows).
    return posixpath.join(directory.rstrip("/"), name)


def _label_kind(labels) -> str:
    if labels is None:
        return "none"
    if isinstance(labels, RaggedLabels):
        return "token"
    if isinstance(labels, dict):
        return "fields"
    return "class"


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64).ravel()))


def _float(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel()))


def _examples(split: EncodedSplit, label_dtype: str):
    """Serialized `tf.train.Example`s of a split, in order (per-example labels as `label_dtype`)."""
    ragged = {name: (values, splits) for name, (values, splits) in split.features.items()}
    labels = split.labels
    for i in range(len(split)):
        feature = {name: _int64(values[splits[i]:splits[i + 1]]) for name, (values, splits) in ragged.items()}
        if isinstance(labels, RaggedLabels):
            feature["labels"] = _int64(labels.values[labels.row_splits[i]:labels.row_splits[i + 1]])
        elif isinstance(labels, dict):
            for key, array in labels.items():
                value = array[i]
                is_int = np.issubdtype(array.dtype, np.integer) or array.dtype == bool
                feature[f"label/{key}"] = _int64(value) if is_int else _float(value)
        elif labels is not None:
            feature["label"] = _int64(labels[i]) if label_dtype == "int64" else _float(labels[i])
        yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecords(directory: str, splits: dict[str, EncodedSplit], label_names: list[str], *,
                    task_type: str, max_seq_length: int, tokenizer, source: str = "", num_shards: int = 4,
                    overwrite: bool = False, label_dtype: str = "int64") -> dict:
    """Write each split as `num_shards` contiguous shards (order kept), then ``metadata.json``.

    `label_dtype` is how the task encodes a per-example label (`Task.record_label_dtype`):
    ``int64`` class ids or ``float32`` values, written as a list per example.
    """
    if label_dtype not in ("int64", "float32"):
        raise ValueError(f"label_dtype must be 'int64' or 'float32', got {label_dtype!r}")
    for name, split in splits.items():
        labels = split.labels
        if (label_dtype == "int64" and isinstance(labels, np.ndarray)
                and not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool)):
            # int64 would truncate them silently.
            raise DataError(f"{name} labels are {labels.dtype} values; this task writes int64 class ids")
    if num_shards < 1:
        raise ConfigError(f"--shards: must be >= 1, got {num_shards}")
    if tf.io.gfile.exists(directory) and tf.io.gfile.listdir(directory) and not overwrite:
        raise ConfigError(f"{directory}: already holds files; choose another directory or pass --overwrite")
    tf.io.gfile.makedirs(directory)
    if tf.io.gfile.exists(_join(directory, METADATA)):
        tf.io.gfile.remove(_join(directory, METADATA))  # the directory is incomplete until rewritten
    metadata = {
        "format": FORMAT, "version": VERSION, "task_type": task_type, "max_seq_length": int(max_seq_length),
        "label_names": list(label_names), "tokenizer": source, "vocab_size": len(tokenizer.get_vocab()),
        "vocab_fingerprint": vocab_fingerprint(tokenizer), "pad_token_id": tokenizer.pad_token_id, "splits": {},
    }
    for name, split in splits.items():
        count = len(split)
        shards = min(num_shards, max(count, 1))
        bounds = np.linspace(0, count, shards + 1).astype(int)
        files = []
        examples = _examples(split, label_dtype)
        for shard in range(shards):
            filename = f"{name}-{shard:05d}-of-{shards:05d}.tfrecord"
            with tf.io.TFRecordWriter(_join(directory, filename)) as writer:
                for _ in range(bounds[shard], bounds[shard + 1]):
                    writer.write(next(examples))
            files.append({"file": filename, "num_examples": int(bounds[shard + 1] - bounds[shard])})
        labels = split.labels
        metadata["splits"][name] = {
            "num_examples": count, "files": files, "features": list(split.features), "label_kind": _label_kind(labels),
            "label_fields": ({k: ("int64" if np.issubdtype(v.dtype, np.integer) or v.dtype == bool else "float32")
                              for k, v in labels.items()} if isinstance(labels, dict) else {}),
        }
        if _label_kind(labels) == "class":
            metadata["splits"][name].update(label_dtype=label_dtype, label_shape=list(np.shape(labels)[1:]))
    with tf.io.gfile.GFile(_join(directory, METADATA), "w") as handle:
        handle.write(json.dumps(metadata, indent=2, ensure_ascii=False))
    return metadata


def read_metadata(directory: str) -> dict:
    """``metadata.json`` of a TFRecord directory, checked."""
    path = _join(directory, METADATA)
    if not tf.io.gfile.exists(path):
        raise DataError(f"{directory}: no {METADATA}; not a tools/make_tfrecords.py output, or an incomplete one")
    try:
        with tf.io.gfile.GFile(path, "r") as handle:
            metadata = json.loads(handle.read())
    except (json.JSONDecodeError, tf.errors.OpError) as exc:
        raise DataError(f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    if metadata.get("format") != FORMAT or metadata.get("version") != VERSION:
        raise DataError(f"{path}: not a {FORMAT} v{VERSION} metadata file")
    return metadata


def _read_split(directory: str, info: dict) -> EncodedSplit:
    spec = {name: tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64) for name in info["features"]}
    kind = info["label_kind"]
    # Records written before labels had a dtype hold int64 class ids.
    label_dtype, label_shape = info.get("label_dtype", "int64"), info.get("label_shape", [])
    if kind == "class":
        spec["label"] = tf.io.FixedLenFeature(label_shape, tf.int64 if label_dtype == "int64" else tf.float32)
    elif kind == "token":
        spec["labels"] = tf.io.RaggedFeature(tf.int64, row_splits_dtype=tf.int64)
    elif kind == "fields":
        for key, dtype in info["label_fields"].items():
            spec[f"label/{key}"] = tf.io.FixedLenFeature([], tf.int64 if dtype == "int64" else tf.float32)
    files = [_join(directory, f["file"]) for f in info["files"]]
    parts: dict[str, list] = {name: [] for name in spec}
    # Files in order, records in order: the split comes back exactly as written.
    dataset = tf.data.TFRecordDataset(files).batch(4096).map(lambda x: tf.io.parse_example(x, spec))
    try:
        for batch in dataset:
            for name, value in batch.items():
                parts[name].append(value)
    except tf.errors.OpError as exc:
        raise DataError(f"{directory}: cannot read the records ({str(exc).splitlines()[0]})") from None

    def ragged(name):
        if not parts[name]:
            return np.zeros(0, np.int32), np.zeros(1, np.int64)
        joined = tf.concat(parts[name], axis=0)
        return joined.flat_values.numpy().astype(np.int32), joined.row_splits.numpy().astype(np.int64)

    features = {name: ragged(name) for name in info["features"]}
    labels = None
    if kind == "class":
        dtype = np.int64 if label_dtype == "int64" else np.float32
        labels = (np.concatenate([p.numpy() for p in parts["label"]]).astype(dtype) if parts["label"]
                  else np.zeros([0, *label_shape], dtype))
    elif kind == "token":
        labels = RaggedLabels(*ragged("labels"))
    elif kind == "fields":
        labels = {key: np.concatenate([p.numpy() for p in parts[f"label/{key}"]]) for key in info["label_fields"]}
        labels = {k: v.astype(np.int64) if info["label_fields"][k] == "int64" else v for k, v in labels.items()}
    split = EncodedSplit(features=features, labels=labels)
    if len(split) != info["num_examples"]:
        raise DataError(f"{directory}: expected {info['num_examples']} examples, read {len(split)} (missing shards?)")
    return split


def read_tfrecords(directory: str, splits: Optional[list[str]] = None) -> RecordSet:
    """The metadata and the requested (default: all) splits of a TFRecord directory."""
    metadata = read_metadata(directory)
    names = [s for s in metadata["splits"] if splits is None or s in splits]
    return RecordSet(metadata=metadata, splits={s: _read_split(directory, metadata["splits"][s]) for s in names})


def check_compatible(metadata: dict, config, tokenizer, where: str) -> None:
    """Records must match the run's task, sequence length, vocabulary and labels."""
    if metadata["task_type"] != config.task.type:
        raise ConfigError(f"config key 'task.type': {config.task.type!r}, but {where} holds "
                          f"{metadata['task_type']!r} records")
    if metadata["max_seq_length"] != config.data.max_seq_length:
        raise ConfigError(f"config key 'data.max_seq_length': {config.data.max_seq_length}, but {where} was "
                          f"tokenized with max_seq_length {metadata['max_seq_length']}")
    if metadata["vocab_fingerprint"] != vocab_fingerprint(tokenizer):
        raise ConfigError(f"config key 'model.name_or_path': its vocabulary differs from the one {where} was "
                          f"tokenized with ({metadata.get('tokenizer') or 'unknown'})")
    if config.data.labels is not None and list(config.data.labels) != metadata["label_names"]:
        raise ConfigError(f"config key 'data.labels': {config.data.labels} disagrees with {where} "
                          f"({metadata['label_names']})")


def load_task_data(task, config, tokenizer, seed: int, label_names: Optional[list[str]] = None):
    """The task's data: from files as usual, or with ``data.tfrecords`` from the records.

    With records, a split configured as a file (``data.validation_file``/``test_file``) is read
    from that file; every other split the records hold comes from the records.
    """
    directory = config.data.tfrecords
    if not directory:
        return task.load_data(config, tokenizer, seed=seed, label_names=label_names)
    if config.data.train_file:
        raise ConfigError("config key 'data.tfrecords': set data.train_file or data.tfrecords, not both")
    metadata = read_metadata(directory)
    check_compatible(metadata, config, tokenizer, directory)
    if label_names is not None and list(label_names) != metadata["label_names"]:
        raise ConfigError(f"config key 'data.tfrecords': labels {metadata['label_names']} disagree with the "
                          f"checkpoint's {label_names}")
    files = {s: p for s, p in (("validation", config.data.validation_file), ("test", config.data.test_file)) if p}
    if files:
        data = task.load_data(config, tokenizer, seed=seed, label_names=metadata["label_names"], splits=files)
    else:
        data = TaskData(label_names=list(metadata["label_names"]))
    records = read_tfrecords(directory, [s for s in metadata["splits"] if s not in files])
    data.splits.update(records.splits)
    return data
