"""The side-by-side benchmark's smoke mode runs, so the script cannot rot (the full run is not CI)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_DATA

SST2 = SHARED_DATA / "sst2" / "train.tsv"


def test_flop_formula_and_ratios(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import compare_training as ct

    shape = {"d_model": 4, "n_layers": 2, "d_ff": 8, "params_matmul": 2 * (4 * 16 + 2 * 4 * 8)}
    result = {"timed_seconds": 2.0, "examples": 4, "real_tokens": 10, "padded_tokens": 16,
              "sum_sq_real": 30, "sum_sq_padded": 64}
    out = ct.derive(result, shape, peak_gflops=1e-9)  # peak 1 FLOP/s: MFU = FLOP/s
    assert out["mfu"] == pytest.approx((6 * 256 * 10 + 12 * 2 * 4 * 30) / 2.0)
    assert out["hfu"] == pytest.approx((6 * 256 * 16 + 12 * 2 * 4 * 64) / 2.0)
    assert out["real_tokens_per_s"] == 5.0 and out["padded_tokens_per_s"] == 8.0

    log = ct.StepLog()
    for lengths in ([3, 5], [2, 2], [4, 1], [9, 9]):  # one batch more than steps: prefetched, not trained
        log.add_batch(lengths, 6)
    for step in (1, 2, 3):
        log.step_done(step)
    summary = log.summary({"spawn_time": 0.0})
    assert summary["timed_steps"] == 2 and summary["examples"] == 4
    assert summary["real_tokens"] == 9 and summary["padded_tokens"] == 24
    assert summary["sum_sq_real"] == 4 + 4 + 16 + 1


def test_packed_batches_count_examples_and_rows(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import compare_training as ct

    # Two packed rows of width 8: examples of 3 and 4 tokens, then one of 5 (the rest padding).
    example_ids = [[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 1, 1, 0, 0, 0]]
    assert ct._example_lengths(example_ids) == [3, 4, 5]
    log = ct.StepLog()
    log.add_batch(ct._example_lengths(example_ids), 8, rows=2)
    log.add_batch(ct._example_lengths(example_ids), 8, rows=2)
    log.step_done(1)
    log.step_done(2)
    summary = log.summary({"spawn_time": 0.0})
    assert summary["examples"] == 3 and summary["real_tokens"] == 12 and summary["padded_tokens"] == 16
    assert summary["sum_sq_real"] == 9 + 16 + 25 and summary["sum_sq_padded"] == 2 * 64


def test_targets_pick_tfbert_best_mode_and_fastest_trainer(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import compare_training as ct

    def m(real, acc=0.86, rss=1500.0, mfu=0.4):
        return {"real_tokens_per_s": real, "accuracy": acc, "peak_rss_mib": rss, "mfu": mfu, "hfu": mfu}
    med = {"tfbert": m(3000), "tfbert-packed-bf16": m(7000, mfu=0.55, rss=1400), "tfbert-packed": m(4000),
           "tfbert-max-length": m(500), "torch-trainer-grouped": m(2000, rss=1600),
           "torch-trainer-grouped-bf16": m(3000, acc=0.875, rss=1500)}
    serving = {"infer-tfbert": [{"latency_p50_ms": 3.0, "throughput_ex_s": 300.0}],
               "infer-onnx": [{"latency_p50_ms": 2.4, "throughput_ex_s": 271.0}]}
    lines = ct.targets(med, serving, {"sst2": {"efficiency": 0.995}, "sms_spam": {"efficiency": 0.94}})
    text = "\n".join(lines)
    assert "best mode: tfbert packed, mixed_bfloat16" in text
    assert "(PyTorch Trainer (group_by_length=True, bf16=True)): 2.33× — **met**" in text
    assert "MFU ≥ 50% of the matmul peak of the precision used: 55.0%" in text
    assert "largest gap 0.0150 (PyTorch Trainer (group_by_length=True, bf16=True)) — **missed**" in text
    assert "SST-2 `train.tsv`: 99.5% — **met**" in text and "SMS spam" in text and "94.0% — **missed**" in text
    assert "packed ≥ 6× max_length (float32, tfbert padding=max_length, float32): 8.00× — **met**" in text
    assert "1,400 vs 1,500 MiB — **met**" in text
    assert "300.0 vs 271.0 examples/s — **met**" in text
    assert "3.00 ms vs 2.40 ms (ONNX Runtime + HF fast tokenizer) — **missed**" in text


@pytest.mark.slow  # the bundled MiniLM in every contender (minutes on 2 cores); --run-slow
@pytest.mark.skipif(not SST2.is_file(), reason=f"{SST2} absent")
def test_smoke_mode_runs_installed_contenders():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare_training.py"), "--smoke", "--data", str(SST2)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    rows = {}
    for label in ("| tfbert (defaults: bucket, float32) |", "| tfbert packed, mixed_bfloat16 |", "| seeds' recipe"):
        rows[label] = next(line for line in out.splitlines() if line.startswith(label))
        assert "skipped" not in rows[label]
    # MFU against the peak of the contender's own precision, and the packed rows nearly all real tokens.
    assert "| bfloat16 |" in rows["| tfbert packed, mixed_bfloat16 |"]
    assert "| float32 |" in rows["| tfbert (defaults: bucket, float32) |"]
    packed_fraction = float(rows["| tfbert packed, mixed_bfloat16 |"].split("|")[6])
    assert packed_fraction >= 0.9
    # Every contender either ran or says why not.
    for label in ("PyTorch Trainer (defaults)", "PyTorch Trainer (group_by_length=True)",
                  "PyTorch Trainer (group_by_length=True, bf16=True)", "KerasHub"):
        assert label in out
    assert "MFU" in out and "Targets:" in out and "bfloat16" in out.split("Matmul peaks")[1].splitlines()[0]
    for name in ("SST-2 `train.tsv`", "SMS spam"):
        assert re.search(rf"packing efficiency ≥ 95% real tokens on {re.escape(name)}.*: \d+\.\d% — \*\*(met|missed)", out)


def test_profile_buckets_of_known_ops(monkeypatch):
    """Ops both frameworks really run (names from their traces) land in the buckets the profile table promises."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import profile_compare as pc

    tf_ops = {  # (node name, op type) -> bucket; tfbert's encoder, then transformers' TF BERT
        ("sequence_classifier/bert/layer_0/qkv/BiasAdd", "_MklNativeFusedMatMul"): "dense matmuls",
        ("gradient_tape/sequence_classifier/bert/layer_0/qkv/BiasAdd/BiasAddGrad", "BiasAddGrad"): "element-wise",
        ("sequence_classifier/bert/layer_0/add", "_MklFusedBatchMatMulV2"): "attention",
        ("gradient_tape/sequence_classifier/bert/layer_0/Sum", "Sum"): "attention",  # the softmax gradient
        ("sequence_classifier/bert/layer_0/add_1", "AddV2"): "element-wise",  # a residual
        ("sequence_classifier/bert/sub", "Sub"): "attention",  # the mask
        ("sequence_classifier/bert/layer_0/attention_dropout/dropout/random_uniform/RandomUniform",
         "RandomUniform"): "dropout",
        ("gradient_tape/sequence_classifier/bert/layer_0/attention_layer_norm/FusedBatchNormGradV3",
         "_MklNativeFusedBatchNormGradV3"): "LayerNorm",
        ("sequence_classifier/bert/embeddings/Gather", "ResourceGather"): "embeddings",
        ("AdamW/UnsortedSegmentSum", "UnsortedSegmentSum"): "embeddings",
        ("AdamW/ResourceApplyAdam", "ResourceApplyAdam"): "optimizer",
        ("AdamW/global_norm/L2Loss", "L2Loss"): "optimizer",
        ("sequence_classifier/bert/layer_0/intermediate/Gelu/Erfc", "Erfc"): "element-wise",
        ("AddN_3", "AddN"): "element-wise",
        ("sparse_categorical_crossentropy/weighted_loss/Sum", "Sum"): "other ops",
        ("count_nonzero/NotEqual", "NotEqual"): "other ops",
        ("sequence_classifier/tf_bert_model/bert/encoder/layer_._0/attention/self/query/Tensordot/MatMul",
         "_MklMatMul"): "dense matmuls",
        ("sequence_classifier/tf_bert_model/bert/encoder/layer_._0/attention/self/transpose", "_MklTranspose"):
            "attention",
        ("sequence_classifier/tf_bert_model/bert/encoder/layer_._0/output/LayerNorm/batchnorm/Rsqrt", "Rsqrt"):
            "LayerNorm",
        ("sequence_classifier/tf_bert_model/bert/encoder/layer_._0/output/add", "AddV2"): "element-wise",
    }
    for (name, op_type), bucket in tf_ops.items():
        assert pc.tf_bucket(name, op_type) == bucket, (name, op_type)

    torch_ops = {  # context chain, innermost first -> bucket
        ("aten::mm", "AddmmBackward0", "aten::addmm", "aten::linear"): "dense matmuls",
        ("aten::sum", "autograd::engine::evaluate_function: AddmmBackward0"): "element-wise",  # bias gradient
        ("aten::mul", "MulBackward0", "aten::dropout", "module: BertSelfOutput"): "dropout",
        ("aten::bmm", "aten::matmul", "aten::_scaled_dot_product_attention_math",
         "aten::scaled_dot_product_attention"): "attention",
        ("aten::copy_", "aten::clone", "aten::reshape", "ViewBackward0", "aten::view",
         "module: BertSelfAttention", "module: BertAttention", "module: backbone"): "attention",
        ("aten::add", "module: BertSelfOutput", "module: BertAttention", "module: backbone"): "element-wise",
        ("aten::add", "module: BertEmbeddings", "module: backbone"): "embeddings",
        ("aten::fill_", "aten::zero_", "aten::zeros", "aten::embedding_dense_backward"): "embeddings",
        ("aten::native_layer_norm_backward", "NativeLayerNormBackward0", "aten::layer_norm"): "LayerNorm",
        ("aten::_fused_adamw_", "Optimizer.step#AdamW.step"): "optimizer",
        ("aten::linalg_vector_norm", "aten::_foreach_norm", "clip_grad_norm_"): "optimizer",
        ("aten::gelu_backward", "GeluBackward0", "aten::gelu"): "element-wise",
        ("aten::nll_loss_backward", "NllLossBackward0", "aten::nll_loss_nd"): "other ops",
    }
    for chain, bucket in torch_ops.items():
        assert pc.torch_bucket(list(chain)) == bucket, chain

    # Thread A: an op of 10 ms with one of 2 ms nested in it; thread B: 10 ms overlapping A's last 5.
    events = [("A", 0.0, 10.0, "a", "attention"), ("A", 2.0, 4.0, "b", "dropout"), ("B", 5.0, 15.0, "c", "optimizer")]
    self_ms, share_ms, busy = pc.attribute(events)
    assert self_ms == [8.0, 2.0, 10.0] and busy == 15.0
    assert share_ms == [5.5, 2.0, 7.5] and sum(share_ms) == busy


@pytest.mark.skipif(not SST2.is_file(), reason=f"{SST2} absent")
def test_profile_compare_smoke(tiny_model_dir, monkeypatch):
    """The tfbert-vs-PyTorch profile's smoke mode: every bucket in the table, buckets adding up to the op total.

    The torch side runs too where benchmarks/.venvs/torch exists (not in CI).
    """
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import compare_training as ct
    import profile_compare as pc

    contenders = ["tfbert-after"] + (["torch"] if ct._python_for("torch") else [])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_compare.py"), "--smoke", "--model", str(tiny_model_dir),
         "--data", str(SST2), "--widths", "8", "16", "--contenders", *contenders],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| ms per step |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == [f"{w}: {pc.LABELS[c]}" for w in ("8", "16") for c in contenders]
    rows = {}
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    assert set(pc.BUCKETS) <= set(rows)
    for i, column in enumerate(columns):
        buckets = [float(rows[b][i].replace(",", "")) for b in pc.BUCKETS]
        total = float(rows["total op time (≥ 1 op running)"][i].replace(",", ""))
        # Each cell is rounded to 0.1 ms: the sum may be off by up to 0.05 per bucket and the total.
        assert sum(buckets) == pytest.approx(total, abs=0.05 * (len(buckets) + 1)), column
        assert total > 0 and float(rows["dense matmuls"][i].replace(",", "")) > 0, column
        wall = float(rows["wall, profiled"][i].replace(",", ""))
        overhead = float(rows["overhead (wall − op time)"][i].replace(",", ""))
        assert total + overhead == pytest.approx(wall, abs=0.15), column
        assert float(rows["ops per step (TF kernels / torch leaf aten ops)"][i].replace(",", "")) > 100, column
    assert "Command: `" in proc.stdout and "CPU: " in proc.stdout


def test_onnx_ab_times_every_file_on_the_same_inputs(monkeypatch, tmp_path):
    """benchmarks/compare_onnx.py on two tiny graphs (ids -> float): one row per file and thread count."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # undone after the test
    import compare_onnx

    paths = []
    for name, op in (("a", "Identity"), ("b", "Neg")):
        ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
        mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence"])
        nodes = [helper.make_node("Add", ["input_ids", "attention_mask"], ["sum"]),
                 helper.make_node("Cast", ["sum"], ["cast"], to=TensorProto.FLOAT),
                 helper.make_node(op, ["cast"], ["logits"])]
        model = helper.make_model(helper.make_graph(nodes, name, [ids, mask], [out]),
                                  opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        paths.append(str(tmp_path / f"{name}.onnx"))
        onnx.save(model, paths[-1])
    rows = compare_onnx.compare(paths, threads=1, rounds=3, block=2, length=5)
    assert len(rows) == 2 and all(r["batch1_ms"] > 0 and r["batch64_ex_s"] > 0 for r in rows)
    assert compare_onnx.main([*paths, "--threads", "1", "--rounds", "2", "--block", "1"]) == 0
