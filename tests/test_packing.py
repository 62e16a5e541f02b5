"""``data.padding: packed``: the pack layout, packed batches, and a packed model that equals the unpacked one.

The model tests run the tiny BERT without dropout, so a packed batch and the same examples
unpacked must give the same logits and the same gradients (to 1e-5).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import HAM, SPAM

TOLERANCE = 1e-5
SEQ = 64
K = 4


@pytest.fixture(scope="module")
def nodrop_dir(tiny_nodrop_model_dir):
    return tiny_nodrop_model_dir


def _ragged(rows) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(r) for r in rows])
    return np.concatenate(rows).astype(np.int32), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@pytest.fixture(scope="module")
def encoded(nodrop_dir):
    """SPAM + HAM texts (and pairs of them) tokenized: 24 examples of 10-50 tokens."""
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(nodrop_dir))
    texts = SPAM + HAM
    singles = tokenizer(texts, truncation=True, max_length=SEQ)
    pairs = tokenizer(texts, texts[::-1], truncation=True, max_length=SEQ)  # token type 1 present
    return {name: list(singles[name]) + list(pairs[name]) for name in ("input_ids", "token_type_ids")}


def _split(encoded, labels):
    from tfbert.data.encoding import EncodedSplit

    return EncodedSplit(features={n: _ragged(rows) for n, rows in encoded.items()}, labels=labels)


def classification_split(encoded):
    n = len(encoded["input_ids"])
    return _split(encoded, (np.arange(n) * 7 % 3).astype(np.int64))


def token_split(encoded):
    from tfbert.data.encoding import IGNORE_INDEX, RaggedLabels

    rows = []
    for i, ids in enumerate(encoded["input_ids"]):
        tags = (np.arange(len(ids)) * (i + 3)) % 3
        tags[0] = tags[-1] = IGNORE_INDEX
        tags[1::4] = IGNORE_INDEX  # later word pieces
        rows.append(tags)
    return _split(encoded, RaggedLabels(*_ragged(rows)))


def qa_split(encoded):
    from tfbert.modeling.span_extractor import END, START

    lengths = np.array([len(r) for r in encoded["input_ids"]])
    start = (np.arange(len(lengths)) * 5) % (lengths - 3) + 1
    start[::5] = 0  # windows without the answer point at their own [CLS]
    end = np.minimum(start + 2, lengths - 2)
    end[::5] = 0
    return _split(encoded, {START: start.astype(np.int32), END: end.astype(np.int32)})


def _backbone(nodrop_dir):
    from tfbert.modeling.backbone import load_backbone

    return load_backbone(str(nodrop_dir), "tfbert")


NAMES = ["input_ids", "token_type_ids", "attention_mask"]


def standard_model(nodrop_dir, task_type: str, pooling: str = "cls", accumulation: int = 1):
    from tfbert.modeling.classifier import build_sequence_classifier
    from tfbert.modeling.span_extractor import build_span_model
    from tfbert.modeling.token_classifier import build_token_classifier

    backbone = _backbone(nodrop_dir)
    if task_type == "sequence_classification":
        return build_sequence_classifier(backbone, 3, NAMES, pooling=pooling, dropout=0.0,
                                         gradient_accumulation_steps=accumulation)
    if task_type == "token_classification":
        return build_token_classifier(backbone, 3, NAMES, dropout=0.0, gradient_accumulation_steps=accumulation)
    return build_span_model(backbone, NAMES, gradient_accumulation_steps=accumulation)


def compiled_pair(nodrop_dir, task_type: str, pooling: str = "cls", accumulation: int = 1, learning_rate=0.0):
    """(standard model, packed twin), both compiled with plain SGD: they share every variable."""
    import tf_keras

    from tfbert.modeling.packed import build_packed_model
    from tfbert.tasks import get_task

    model = standard_model(nodrop_dir, task_type, pooling, accumulation)
    twin = build_packed_model(model, get_task(task_type), SEQ, K, pooling)
    model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate), **get_task(task_type).compile_args())
    twin.compile(optimizer=tf_keras.optimizers.SGD(learning_rate), **get_task(task_type).packed_compile_args())
    return model, twin


def gradients(model, x, y) -> dict:
    """Gradient of the compiled loss, by variable."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = model.compute_loss(x, y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return {v.ref(): tf.convert_to_tensor(g).numpy() for v, g in zip(model.trainable_variables, grads)
            if g is not None}


def assert_same_gradients(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert max(np.abs(g).max() for g in a.values()) > 1e-3  # a real gradient, not zeros on both sides
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=TOLERANCE, rtol=0, err_msg=key.deref().name)


def first_packed_batch(split, packs: int):
    """The first packed batch (epoch 0's layout) and the example indices it holds."""
    from tfbert.data.packing import plan_packing
    from tfbert.data.pipeline import make_dataset

    plan = plan_packing(split.lengths, SEQ, K)
    examples = plan.epoch_assignment(split.lengths, 0, 0)[:packs]
    x, y = next(iter(make_dataset(split, packs, "packed", SEQ, max_examples_per_pack=K)))
    return x, y, examples


def unpacked_batch(split, examples):
    from tfbert.data.encoding import select_rows
    from tfbert.data.pipeline import make_dataset

    chosen = select_rows(split, examples[examples >= 0])
    return next(iter(make_dataset(chosen, len(chosen), "dynamic", SEQ)))


# --- the layout ------------------------------------------------------------------------------------


def test_spfhp_packs_every_example_within_the_limits_and_reshuffles_per_epoch():
    from tfbert.data.packing import plan_packing

    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(1 / 14, 2000) + 2, 64)
    plan = plan_packing(lengths, 64, 6)
    slots = plan.slot_lengths
    assert (slots.sum(axis=1) <= 64).all() and (np.count_nonzero(slots, axis=1) <= 6).all()
    assert np.array_equal(np.sort(slots[slots > 0]), np.sort(lengths))
    a0 = plan.epoch_assignment(lengths, 42, 0)
    assert np.array_equal(np.sort(a0[a0 >= 0]), np.arange(len(lengths)))
    # Each slot holds an example of the slot's length, whatever the epoch's permutation of packs.
    assert sorted(map(tuple, np.where(a0 >= 0, lengths[np.maximum(a0, 0)], 0))) == sorted(map(tuple, slots))
    assert np.array_equal(a0, plan.epoch_assignment(lengths, 42, 0))  # a pure function of (seed, epoch)
    assert not np.array_equal(a0, plan.epoch_assignment(lengths, 42, 1))
    # The cap of 6 binds here (first-fit-decreasing reaches the same 89.8%); 16 fills the rows.
    assert plan_packing(lengths, 64, 16).efficiency > 0.99


def test_new_packs_take_as_many_examples_of_a_length_as_fit():
    from tfbert.data.packing import plan_packing

    # 100 examples of 5 tokens: 12 fit in 64 tokens, so 9 packs (the paper's one-per-new-pack rule
    # would leave 100 packs of 5 tokens, 8% real).
    plan = plan_packing(np.full(100, 5), 64, 16)
    assert plan.num_packs == 9 and plan.efficiency == pytest.approx(500 / (9 * 64))
    assert plan_packing(np.full(100, 5), 64, 4).num_packs == 25  # at most 4 per pack


def test_packed_batches_hold_every_example_with_its_own_positions_and_labels(encoded):
    from tfbert.data.pipeline import make_dataset

    split = classification_split(encoded)
    seen = []
    for x, y in make_dataset(split, 3, "packed", SEQ, max_examples_per_pack=K):
        x = {k: v.numpy() for k, v in x.items()}
        y = y.numpy()
        assert x["input_ids"].shape == (3, SEQ) and x["example_starts"].shape == (3, K) and y.shape == (3, K)
        for p in range(3):
            for k in range(K):
                tokens = x["example_ids"][p] == k + 1
                if not tokens.any():
                    assert y[p, k] == -100
                    continue
                where = np.flatnonzero(tokens)
                assert where[0] == x["example_starts"][p, k] and np.array_equal(where, np.arange(where[0], where[-1] + 1))
                assert np.array_equal(x["position_ids"][p, where], np.arange(len(where)))
                ids = x["input_ids"][p, where].tolist()
                index = encoded["input_ids"].index(ids)
                assert x["token_type_ids"][p, where].tolist() == list(encoded["token_type_ids"][index])
                assert y[p, k] == split.labels[index]
                seen.append(index)
            assert (x["input_ids"][p][x["example_ids"][p] == 0] == 0).all()
    assert sorted(seen) == list(range(len(split)))  # the last partial batch is kept (empty packs)


def test_token_and_span_labels_move_with_their_example(encoded):
    from tfbert.data.pipeline import make_dataset
    from tfbert.modeling.span_extractor import END, START

    split = token_split(encoded)
    x, y = next(iter(make_dataset(split, 2, "packed", SEQ, max_examples_per_pack=K)))
    x, y = {k: v.numpy() for k, v in x.items()}, y.numpy()
    assert y.shape == (2, SEQ)
    for p in range(2):
        for k in range(K):
            where = np.flatnonzero(x["example_ids"][p] == k + 1)
            if len(where):
                i = encoded["input_ids"].index(x["input_ids"][p, where].tolist())
                labels = split.labels.values[split.labels.row_splits[i]:split.labels.row_splits[i + 1]]
                assert y[p, where].tolist() == labels.tolist()
        assert (y[p][x["example_ids"][p] == 0] == -100).all()
    split = qa_split(encoded)
    x, y = next(iter(make_dataset(split, 2, "packed", SEQ, max_examples_per_pack=K)))
    for p in range(2):
        for k in range(K):
            where = np.flatnonzero(x["example_ids"].numpy()[p] == k + 1)
            if len(where):
                i = encoded["input_ids"].index(x["input_ids"].numpy()[p, where].tolist())
                assert y[START].numpy()[p, k] == where[0] + split.labels[START][i]
                assert y[END].numpy()[p, k] == where[0] + split.labels[END][i]


def test_packed_stream_resumes_with_the_same_batches(encoded):
    from tfbert.data.pipeline import make_train_stream

    split = classification_split(encoded)

    def batches(start, count):
        stream = make_train_stream(split, 2, 4, padding="packed", max_seq_length=SEQ, seed=7, start_batch=start,
                                   max_examples_per_pack=K)
        return [x["input_ids"].numpy() for x, _ in stream.take(count)]

    full = batches(0, 12)
    assert all(b.shape == (2, SEQ) for b in full)
    resumed = batches(5, 7)
    assert all(np.array_equal(a, b) for a, b in zip(full[5:], resumed))
    assert not np.array_equal(np.concatenate(full[:4]), np.concatenate(full[4:8]))  # epochs reshuffle


# --- the model -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean"])
def test_packed_classifier_logits_equal_unpacked(nodrop_dir, encoded, pooling):
    from tfbert.data.encoding import EncodedSplit
    from tfbert.data.pipeline import make_dataset
    from tfbert.modeling.packed import build_packed_model
    from tfbert.tasks import get_task

    split = classification_split(encoded)
    model = standard_model(nodrop_dir, "sequence_classification", pooling)
    twin = build_packed_model(model, get_task("sequence_classification"), SEQ, K, pooling)
    reference = model.predict(make_dataset(EncodedSplit(split.features, None), 8, "dynamic"), verbose=0)
    x, y, examples = first_packed_batch(split, 3)
    logits = twin(x).numpy()
    assert logits.shape == (3, K, 3)
    valid = examples >= 0
    np.testing.assert_allclose(logits[valid], reference[examples[valid]], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_packed_classifier_gradients_equal_unpacked(nodrop_dir, encoded, pooling):
    split = classification_split(encoded)
    model, twin = compiled_pair(nodrop_dir, "sequence_classification", pooling)
    x, y, examples = first_packed_batch(split, 3)
    ux, uy = unpacked_batch(split, examples)
    assert len(uy) == (examples >= 0).sum() > 3  # several examples per pack
    assert_same_gradients(gradients(twin, x, y), gradients(model, ux, uy))


def test_packed_token_classifier_equals_unpacked(nodrop_dir, encoded):
    split = token_split(encoded)
    model, twin = compiled_pair(nodrop_dir, "token_classification")
    x, y, examples = first_packed_batch(split, 3)
    ux, uy = unpacked_batch(split, examples)
    packed_logits, logits = twin(x).numpy(), model(ux).numpy()
    seg = x["example_ids"].numpy()
    for row, i in enumerate(examples[examples >= 0]):
        p, k = np.argwhere(examples == i)[0]
        n = int(ux["attention_mask"][row].numpy().sum())
        np.testing.assert_allclose(packed_logits[p][seg[p] == k + 1], logits[row, :n], atol=TOLERANCE, rtol=0)
    assert_same_gradients(gradients(twin, x, y), gradients(model, ux, uy))


def test_packed_span_logits_stay_inside_each_window_and_gradients_equal(nodrop_dir, encoded):
    """Each window's softmax runs over its own tokens: compared with windows run one by one, unpadded."""
    import tensorflow as tf

    from tfbert.data.encoding import select_rows
    from tfbert.data.pipeline import make_dataset
    from tfbert.modeling.span_extractor import END, START

    split = qa_split(encoded)
    model, twin = compiled_pair(nodrop_dir, "question_answering")
    x, y, examples = first_packed_batch(split, 2)
    out = twin(x)
    seg = x["example_ids"].numpy()
    singles = []
    for i in examples[examples >= 0]:
        p, k = np.argwhere(examples == i)[0]
        ux, uy = next(iter(make_dataset(select_rows(split, [i]), 1, "dynamic", SEQ)))
        ref = model(ux)
        for name in (START, END):
            row = out[name].numpy()[p, k]
            np.testing.assert_allclose(row[seg[p] == k + 1], ref[name].numpy()[0], atol=TOLERANCE, rtol=0)
            assert (row[seg[p] != k + 1] <= -1e8).all()
        singles.append(gradients(model, ux, uy))
    mean = {key: np.mean([g[key] for g in singles], axis=0) for key in singles[0]}
    assert_same_gradients(gradients(twin, x, y), mean)
    assert tf.reduce_all(tf.equal(y[START] >= 0, examples >= 0))


def test_packed_gradient_accumulation_gives_the_unpacked_update(nodrop_dir, encoded):
    """Two packed micro-batches accumulated = the same two micro-batches of examples unpacked."""
    import tensorflow as tf

    from tfbert.data.packing import plan_packing
    from tfbert.data.pipeline import make_dataset

    split = classification_split(encoded)
    model, twin = compiled_pair(nodrop_dir, "sequence_classification", "cls", accumulation=2, learning_rate=1.0)
    initial = [v.numpy() for v in model.variables]
    twin.fit(make_dataset(split, 2, "packed", SEQ, max_examples_per_pack=K).take(2), epochs=1, verbose=0)
    packed = [v.numpy() for v in model.variables]
    for v, value in zip(model.variables, initial):
        v.assign(value)
    assignment = plan_packing(split.lengths, SEQ, K).epoch_assignment(split.lengths, 0, 0)
    first, second = unpacked_batch(split, assignment[:2]), unpacked_batch(split, assignment[2:4])
    micro = tf.data.Dataset.from_tensors(first).concatenate(tf.data.Dataset.from_tensors(second))
    model.fit(micro, epochs=1, verbose=0)
    unpacked = [v.numpy() for v in model.variables]
    assert max(np.abs(a - b).max() for a, b in zip(unpacked, initial)) > 1e-3  # one real update happened
    for a, b, v in zip(packed, unpacked, model.variables):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=0, err_msg=v.name)


def test_packed_classifier_under_mixed_float16(nodrop_dir, encoded):
    from tfbert.modeling.packed import build_packed_model
    from tfbert.tasks import get_task
    from tfbert.training.precision import set_precision

    set_precision("mixed_float16")  # conftest restores float32
    split = classification_split(encoded)
    model = standard_model(nodrop_dir, "sequence_classification", "mean")
    twin = build_packed_model(model, get_task("sequence_classification"), SEQ, K, "mean")
    x, _, examples = first_packed_batch(split, 3)
    ux, _ = unpacked_batch(split, examples)
    logits = twin(x).numpy()
    assert logits.dtype == np.float32
    # Measured: 5.8e-5 apart on logits of at most 0.072 (float32: 1.5e-8). float16 keeps ~3 digits,
    # so the hidden states the head reads (of order 1) round at ~1e-3 in either layout: that is the
    # bound: 17x the measured difference, 1/72 of the largest logit.
    np.testing.assert_allclose(logits[examples >= 0], model(ux).numpy(), atol=1e-3, rtol=0)


def test_transformers_backbone_stops_with_one_line(tmp_path):
    """Packing needs the own encoder: transformers' TF models cannot keep packed examples apart."""
    from transformers import DistilBertConfig, TFDistilBertModel

    from tfbert.errors import ConfigError
    from tfbert.modeling.packed import check_packable

    model = TFDistilBertModel(DistilBertConfig(vocab_size=100, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    with pytest.raises(ConfigError, match=r"^config key 'data.padding': packed needs tfbert's own encoder") as info:
        check_packable(model)
    assert "\n" not in str(info.value) and "'distilbert'" in str(info.value)


# --- the run ---------------------------------------------------------------------------------------


def test_static_shape_strategies_pack_by_default():
    from tfbert.data.packing import plan_packing, resolve_padding
    from tfbert.training.batch_plan import BatchPlan

    assert resolve_padding("bucket", "tpu") == resolve_padding("bucket", "ipu") == "packed"
    assert resolve_padding("max_length", "tpu") == "max_length" and resolve_padding("bucket", "default") == "bucket"
    assert resolve_padding("bucket", "ipu", can_pack=False) == "max_length"
    plan = plan_packing(np.full(100, 5), 64, 16)
    batch = BatchPlan(num_examples=plan.num_packs, per_replica_batch_size=2, drop_remainder=True, strategy="tpu",
                      num_train_epochs=2, packing=plan)
    assert batch.batches_per_epoch == 4 and batch.total_optimizer_steps == 8
    line = batch.describe()
    assert "100 examples packed into 9 rows of 64 tokens (packing efficiency 86.8% real tokens" in line
    assert "= 2 packs (~22.2 examples) per update on tpu; 4 batches/epoch, 8 optimizer steps" in line


def test_packed_experiment_trains_without_retracing_and_evaluates_unpacked(tiny_config):
    import tfbert
    from tfbert.distribute import serving_model

    config = tiny_config("data.padding=packed", "training.num_train_epochs=2", "data.max_examples_per_pack=8")
    experiment = tfbert.build_experiment(config)
    plan = experiment.plan
    assert plan.packing is not None and plan.drop_remainder
    assert plan.per_replica_batch_size == plan.packing.packs_for(4)
    assert "packing efficiency" in plan.describe() and "examples) per update" in plan.describe()
    spec = experiment.train_stream().element_spec[0]
    assert spec["input_ids"].shape.as_list() == [plan.per_replica_batch_size, 32]
    assert spec["example_starts"].shape.as_list() == [plan.per_replica_batch_size, 8]
    history = experiment.model.fit(experiment.train_stream(), epochs=2, steps_per_epoch=plan.batches_per_epoch,
                                   verbose=0)
    assert np.isfinite(history.history["loss"]).all() and "accuracy" in history.history
    assert experiment.model.train_function.experimental_get_tracing_count() == 1
    standard = serving_model(experiment.model)
    assert standard is not experiment.model and "example_ids" not in standard.input
    report = experiment.evaluate_split("validation")
    assert report == experiment.task.evaluate(standard, experiment.data, "validation", config, experiment.tokenizer)
    # Library users' one-pass datasets are packed too (validation keeps every example).
    x, _ = next(iter(experiment.validation_dataset))
    assert "example_ids" in x
    # train_dataset is the stream fit reads, over the planned epochs, each epoch packed and shuffled anew.
    batches = [x["input_ids"].numpy() for x, _ in experiment.train_dataset]
    assert len(batches) == plan.epochs * experiment.steps_per_epoch
    assert all(b.shape == (plan.per_replica_batch_size, 32) for b in batches)
    np.testing.assert_array_equal(batches[0], next(iter(experiment.train_stream()))[0]["input_ids"].numpy())
    per_epoch = experiment.steps_per_epoch
    assert not all(np.array_equal(a, b) for a, b in zip(batches[:per_epoch], batches[per_epoch:]))


def test_packed_run_with_accumulation_saves_the_unpacked_model(tiny_config):
    from pathlib import Path

    from tfbert.modeling.saving import load_pretrained
    from tfbert.run.trainer import train

    lines: list[str] = []
    config = tiny_config("data.padding=packed", "training.gradient_accumulation_steps=2", "training.save_steps=2",
                         "export.at_end=false")
    summary = train(config, log=lines.append)
    plan = next(line for line in lines if line.startswith("plan: "))
    assert "packed into" in plan and "x 2 accumulation" in plan and "packing efficiency" in plan
    loaded = load_pretrained(Path(summary["model_dir"]))
    assert "example_ids" not in loaded.model.input  # the saved model is the standard, unpacked one
    # ...and it is the trained model: evaluated again on the same (seeded) validation split, it
    # gives exactly the accuracy the run reported.
    from tfbert.tasks import get_task

    task = get_task(loaded.config.task.type)
    data = task.load_data(loaded.config, loaded.tokenizer, loaded.config.training.seed)
    again = task.evaluate(loaded.model, data, "validation", loaded.config, loaded.tokenizer)
    assert summary["eval"]["split"] == "validation" and again["num_examples"] == 12
    assert again["accuracy"] == summary["eval"]["accuracy"]


def test_packed_run_resumed_from_a_backup_ends_like_the_uninterrupted_run(tiny_config, nodrop_dir, tmp_path):
    """The packed twin's backups restore, and the resumed stream gives the same packed batches."""
    import tensorflow as tf

    from tfbert.training.backup import list_backups
    from tfbert.run.trainer import train

    common = [f"model.name_or_path={nodrop_dir}", "model.classifier_dropout=0", "data.padding=packed",
              "training.num_train_epochs=2", "training.save_steps=3", "training.save_total_limit=20",
              "training.load_best_model_at_end=false", "export.at_end=false", "optimizer.learning_rate=1e-3"]
    full = tiny_config(*common, f"training.output_dir={tmp_path / 'full'}")
    train(full, log=lambda *_: None)
    backups = list_backups(tmp_path / "full")
    assert len(backups) >= 3
    resumed = tiny_config(*common, f"training.output_dir={tmp_path / 'resumed'}", f"training.resume={backups[0]}")
    train(resumed, log=lambda *_: None)

    def final(run):
        path = str(list_backups(run)[-1] / "ckpt")
        reader = tf.train.load_checkpoint(path)
        return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(path) if n.startswith(("model/", "optimizer/"))}

    a, b = final(tmp_path / "full"), final(tmp_path / "resumed")
    assert a.keys() == b.keys() and any(n.startswith("optimizer/") for n in a)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=TOLERANCE, rtol=0, err_msg=name)
