#!/usr/bin/env python
"""Does a tfbert model directory work in transformers 5? Compare it there with the run's SavedModel.

transformers 5 has no TensorFlow: it loads a local directory only from ``model.safetensors`` with
PyTorch parameter names (or ``pytorch_model.bin``), never from ``tf_model.h5``. Users' environments
move to it whatever tfbert pins, so what tfbert writes must work there, and "it loads" is not
enough: a wrongly named tensor is silently re-initialised, a transposed one gives other logits.
So for each run this compares what a transformers-5 user gets with what tfbert serves:

- ``AutoModelFor<Task>.from_pretrained(RUN/model)``: every weight loaded (none missing or of the
  wrong shape); its probabilities equal the SavedModel's within 1e-4 and give the same labels.
  Classification is compared end to end (transformers' tokenizer + model vs the raw-string
  signature); token and span heads on the same token ids (the SavedModel's ``serve_token_ids``).
- ``pipeline(...)`` on the same texts: text-classification (``top_k=None``; multi-label with
  ``function_to_apply="sigmoid"`` and the SavedModel's per-label thresholds), token-classification
  (``aggregation_strategy="first"``: the same entities, offsets and scores) and question-answering
  (the same answers and offsets). transformers removed the question-answering pipeline in 5.3;
  there the answers are decoded from ``AutoModelForQuestionAnswering``'s logits with that
  pipeline's rule (best start + end logit over context tokens, ``max_answer_len``), and the line
  says so.
- Text regression (``problem_type: regression``): the SavedModel's ``score`` against the model's
  single logit and ``pipeline("text-classification", function_to_apply="none")``'s score.
- Heads with no transformers class (``model.pooling: cls``/``mean``): ``AutoModel`` plus
  ``tfbert_head.safetensors``, as the model card describes.
- A run trained in mixed precision exports a SavedModel that computes in 16 bits: there the
  SavedModel is compared at tfbert's 16-bit tolerance, and the weights at 1e-4 against
  ``tf_model.h5`` run in float32 by transformers 4's TF class (the line says so).

The texts are those of the transformers-4 round trip (``tests/test_hf_directory.py``): the demo's
unseen SMS messages, the first 50 WNUT-17 test sentences, 50 SQuAD questions whose context fits one
window (multi-window answers may legitimately differ: tfbert ranks raw logits across windows, the
pipeline per-window probabilities); built-in ones where ``../shared/data`` is absent.

Two halves in this one file, each run by its own interpreter, exchanging JSON files:

- the parent (tfbert's venv, TensorFlow + tensorflow-text; never imports tfbert, so it checks the
  files as they are) reads each run, runs the SavedModel, compares and prints one line per check;
- ``--worker`` (the transformers-5 venv: torch, transformers, no TensorFlow) loads the directories.

The top level is standard library only, so both interpreters can import it.
``scripts/check_portability.sh`` builds the transformers-5 venv and calls this. Exit status: 0 when
every check passes, 1 when one fails, 2 for a usage error (a run without ``model/`` or
``saved_model/``).
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TOLERANCE = 1e-4
# A SavedModel exported from a mixed-precision run computes in 16 bits (its weights are float32):
# probabilities then differ from float32 ones by rounding, ~4e-3 measured for bfloat16 (NER,
# MiniLM). Such runs are compared with the SavedModel at tfbert's own 16-bit tolerance
# (modeling/saving.py), and their weights at 1e-4 against tf_model.h5 run in float32.
SIXTEEN_BIT_TOLERANCE = 5e-2
SAFETENSORS = "model.safetensors"
# tfbert's own files (transformers ignores them): which task and head a directory holds.
MANIFEST = "tfbert_model.json"
HEAD_FILE = "tfbert_head.safetensors"
SERVING_INFO = Path("assets.extra") / "tfbert_serving.json"
AUTO_CLASS = {"sequence_classification": "AutoModelForSequenceClassification",
              "multi_label_classification": "AutoModelForSequenceClassification",
              "text_regression": "AutoModelForSequenceClassification",
              "token_classification": "AutoModelForTokenClassification",
              "question_answering": "AutoModelForQuestionAnswering"}
#: one output row per text (or pair): classification, multi-label, regression
SEQUENCE_TASKS = ("sequence_classification", "multi_label_classification", "text_regression")
#: the text-classification pipeline's ``function_to_apply`` per task (softmax, its default, otherwise)
PIPELINE_ACTIVATION = {"multi_label_classification": "sigmoid", "text_regression": "none"}

# Used only where ../shared/data is absent (a clone without the shared data sets).
FALLBACK_SENTENCES = ["Sarah flew from Paris to New York with Air France on Monday",
                      "Check out the new Star Wars trailer on YouTube",
                      "I met John Smith at the Google office in London"]
FALLBACK_QA = [("Where did Sarah fly to?", "Sarah flew from Paris to New York with Air France on Monday."),
               ("Which company has an office in London?", "I met John Smith at the Google office in London."),
               ("What colour is the sky?", "On a clear day the sky is blue, and at sunset it turns orange.")]


class UsageError(Exception):
    """A run that cannot be checked at all (reported as one line, exit code 2)."""


# ---------------------------------------------------------------------------------------------- shared

def safetensors_format(path: Path) -> str | None:
    """The ``format`` entry of a safetensors file's metadata, read from its JSON header (no library)."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return (header.get("__metadata__") or {}).get("format")


def first_line(exc: BaseException) -> str:
    """An exception as one line (transformers' messages run on, progress bars and all)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------------------------------------- worker

def worker(jobs_path: Path, results_path: Path) -> None:
    """In the transformers-5 venv: load each directory, run the model and the pipeline, write JSON."""
    from importlib.metadata import version

    import numpy as np
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_grad_enabled(False)
    jobs = json.loads(jobs_path.read_text(encoding="utf-8"))
    results: dict[str, Any] = {"versions": {n: version(n) for n in
                                            ("transformers", "torch", "tokenizers", "huggingface-hub", "safetensors")},
                               "runs": []}
    for job in jobs:
        out: dict[str, Any] = {}
        results["runs"].append(out)
        try:
            _work(job, out, np, transformers)
        except Exception as exc:  # one broken run must not hide the others' results
            out["crash"] = first_line(exc)
    results_path.write_text(json.dumps(results), encoding="utf-8")


def _load(transformers, class_name: str, model_dir: str):
    """`from_pretrained` with its loading report; (model, report) or (None, report with the error)."""
    try:
        model, info = getattr(transformers, class_name).from_pretrained(model_dir, output_loading_info=True)
    except Exception as exc:
        return None, {"error": first_line(exc)}
    model.eval()
    return model, {"class": type(model).__name__,
                   **{k: sorted(str(x) for x in info.get(k, ())) for k in ("missing_keys", "unexpected_keys",
                                                                            "mismatched_keys")}}


def _encode(tokenizer, job: dict, **kwargs) -> dict:
    return dict(tokenizer(*job["inputs"], padding=True, return_tensors="pt", **kwargs))


def _work(job: dict, out: dict, np, transformers) -> None:
    """One run's outputs into `out` (filled as it goes, so a crash keeps what came before)."""
    task, model_dir = job["task"], job["model"]
    if job["head"] != "transformers":
        _work_tfbert_head(job, out, np, transformers)
        return
    model, out["load"] = _load(transformers, AUTO_CLASS[task], model_dir)
    if model is None:
        return
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    if task in SEQUENCE_TASKS:
        encoded = _encode(tokenizer, job, truncation=True, max_length=job["max_seq_length"])
        out["ids"] = {k: v.numpy().tolist() for k, v in encoded.items()}
        logits = model(**encoded).logits
        out["auto"] = {"logits": logits.float().numpy().tolist(),
                       "id2label": {str(k): v for k, v in model.config.id2label.items()}}
        apply = PIPELINE_ACTIVATION.get(task)
        pipe = transformers.pipeline("text-classification", model=model_dir, device="cpu")
        texts = job["inputs"][0] if len(job["inputs"]) == 1 else [
            {"text": a, "text_pair": b} for a, b in zip(*job["inputs"])]
        rows = pipe(texts, top_k=None, truncation=True, max_length=job["max_seq_length"],
                    **({"function_to_apply": apply} if apply else {}))
        out["pipeline"] = [{d["label"]: d["score"] for d in row} for row in rows]
    elif task == "token_classification":
        encoded = _encode(tokenizer, job, truncation=True, max_length=job["max_seq_length"])
        out["ids"] = {k: v.numpy().tolist() for k, v in encoded.items()}
        out["auto"] = {"logits": model(**encoded).logits.float().numpy().tolist()}
        pipe = transformers.pipeline("token-classification", model=model_dir, device="cpu",
                                     aggregation_strategy="first")
        out["pipeline"] = [[[e["entity_group"], int(e["start"]), int(e["end"]), float(e["score"])] for e in row]
                           for row in pipe(job["inputs"][0])]
    else:
        _work_qa(job, out, model, tokenizer, np, transformers)


def _work_qa(job: dict, out: dict, model, tokenizer, np, transformers) -> None:
    """Span logits on the token ids, answers decoded with the v4 pipeline's rule, and the pipeline where it exists."""
    questions, contexts = job["inputs"]
    encoded = tokenizer(questions, contexts, padding=True, truncation="only_second", max_length=job["max_seq_length"],
                        return_offsets_mapping=True, return_tensors="pt")
    offsets = encoded.pop("offset_mapping").numpy()
    out["ids"] = {k: v.numpy().tolist() for k, v in encoded.items()}
    result = model(**encoded)
    start, end = result.start_logits.float().numpy(), result.end_logits.float().numpy()
    out["auto"] = {"start_logits": start.tolist(), "end_logits": end.tolist()}
    answers = []
    for i, context in enumerate(contexts):
        # What transformers 4's QuestionAnsweringPipeline does for one window (align_to_words=False):
        # spans of context tokens only, start <= end, at most max_answer_len tokens; the best
        # p_start * p_end, i.e. the best start + end logit (softmax is monotonic per window).
        is_context = np.array([s == 1 for s in encoded.sequence_ids(i)])
        scores = start[i][:, None] + end[i][None, :]
        length = np.arange(len(is_context))[None, :] - np.arange(len(is_context))[:, None]
        valid = is_context[:, None] & is_context[None, :] & (length >= 0) & (length < job["max_answer_length"])
        if not valid.any():  # no context token in the window: tfbert's "no answer"
            answers.append(["", -1, -1])
            continue
        s, e = np.unravel_index(np.where(valid, scores, -np.inf).argmax(), scores.shape)
        a, b = int(offsets[i][s][0]), int(offsets[i][e][1])
        answers.append([context[a:b], a, b])
    out["decoded"] = answers
    try:
        pipe = transformers.pipeline("question-answering", model=job["model"], device="cpu")
    except KeyError as exc:  # removed in transformers 5.3: "The task question-answering has been removed ..."
        out["pipeline_error"] = str(exc.args[0] if exc.args else exc).split(". ")[0]
        return
    rows = pipe(question=questions, context=contexts, align_to_words=False, max_seq_len=job["max_seq_length"],
                doc_stride=job["doc_stride"], max_question_len=job["max_query_length"],
                max_answer_len=job["max_answer_length"])
    rows = rows if isinstance(rows, list) else [rows]  # one question comes back as a dict
    out["pipeline"] = [[r["answer"], int(r["start"]), int(r["end"])] for r in rows]


def _work_tfbert_head(job: dict, out: dict, np, transformers) -> None:
    """A head with no transformers class: the backbone through AutoModel, tfbert's dense head applied here."""
    model, out["load"] = _load(transformers, "AutoModel", job["model"])
    if model is None:
        return
    tokenizer = transformers.AutoTokenizer.from_pretrained(job["model"])
    encoded = _encode(tokenizer, job, truncation=True, max_length=job["max_seq_length"])
    out["ids"] = {k: v.numpy().tolist() for k, v in encoded.items()}
    hidden = model(**encoded).last_hidden_state.float().numpy()
    out["auto"] = {"logits": tfbert_head_logits(job, hidden, encoded["attention_mask"].numpy(), np).tolist()}


def tfbert_head_logits(job: dict, hidden, attention_mask, np):
    """logits = pooled vector @ kernel + bias, from `tfbert_head.safetensors`, as the model card says."""
    from safetensors.numpy import load_file

    mask = attention_mask[:, :, None].astype(np.float32)
    vector = hidden[:, 0] if job["pooling"] == "cls" else (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
    head = load_file(str(Path(job["model"]) / HEAD_FILE))
    kernel = next(v for k, v in head.items() if k.endswith(".kernel"))
    bias = next(v for k, v in head.items() if k.endswith(".bias"))
    return vector @ kernel + bias


# ---------------------------------------------------------------------------------------------- parent

def _import_tensorflow():
    """TensorFlow and tensorflow-text (the SavedModel's tokenizer ops) without their start-up lines."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            import tensorflow as tf
            import tensorflow_text  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel("ERROR")
    return tf


def resolve_run(path: Path) -> tuple[Path, Path]:
    """(model directory, SavedModel) of a run directory, or of a model directory beside its SavedModel."""
    model_dir, saved = (path, path.parent / "saved_model") if (path / "config.json").is_file() else (
        path / "model", path / "saved_model")
    if not (model_dir / "config.json").is_file():
        raise UsageError(f"{path}: no model directory (expected {model_dir}/config.json)")
    if not (saved / "saved_model.pb").is_file():
        raise UsageError(f"{path}: no SavedModel to compare with (expected {saved}/saved_model.pb)")
    return model_dir, saved


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _wnut_sentences(limit: int) -> list[str] | None:
    path = SHARED_DATA / "wnut17" / "emerging.test.annotated"
    if not path.is_file():
        return None
    sentences, tokens = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            tokens.append(line.split("\t")[0])
        elif tokens:
            sentences.append(" ".join(tokens))
            tokens = []
        if len(sentences) == limit:
            break
    return sentences


def _squad_questions(model_dir: Path, max_seq_length: int, limit: int) -> list[tuple[str, str]] | None:
    """Every 7th question of SQuAD dev articles 1-5 whose question + context fit one window."""
    path = SHARED_DATA / "squad_v1.1" / "dev-v1.1-articles-00-35.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pairs = [(qa["question"], p["context"]) for article in json.loads(path.read_text(encoding="utf-8"))["data"][1:6]
             for p in article["paragraphs"] for qa in p["qas"]]
    lengths = tokenizer.encode_batch(pairs)
    return [pair for pair, enc in zip(pairs, lengths) if len(enc.ids) <= max_seq_length][::7][:limit]


def make_job(run: Path) -> dict:
    """What the worker needs for one run: its task, head and inputs (texts, or questions and contexts)."""
    import yaml

    model_dir, saved = resolve_run(run)
    manifest = _read_json(model_dir / MANIFEST)
    task = manifest.get("task") or _read_json(saved / SERVING_INFO).get("task")
    if task not in AUTO_CLASS:
        raise UsageError(f"{model_dir}: unknown task {task!r} (no {MANIFEST} or {SERVING_INFO})")
    config = yaml.safe_load((model_dir / "tfbert_config.yaml").read_text(encoding="utf-8")) \
        if (model_dir / "tfbert_config.yaml").is_file() else {}
    data, task_config = config.get("data", {}), config.get("task", {})
    job = {"run": str(run), "model": str(model_dir), "saved_model": str(saved), "task": task,
           "head": manifest.get("head", "transformers"), "pooling": manifest.get("pooling", "pooler"),
           "max_seq_length": data.get("max_seq_length", 128),
           # the policy the run resolved ("auto" is recorded as what it chose): the SavedModel's compute dtype
           "precision": config.get("precision", {}).get("policy", "float32")}
    if task in SEQUENCE_TASKS:
        texts = (ROOT / "data" / "sms_spam" / "unseen.txt").read_text(encoding="utf-8").splitlines()
        job["source"] = f"{len(texts)} unseen SMS texts"
        job["inputs"] = [texts]
        if data.get("text_pair_column"):  # a pair task: each message with the next as its pair
            job["inputs"] = [texts, texts[1:] + texts[:1]]
            job["source"] = f"{len(texts)} pairs of unseen SMS texts"
    elif task == "token_classification":
        sentences = _wnut_sentences(50)
        job["source"] = "50 WNUT-17 test sentences" if sentences else "3 built-in sentences (no ../shared/data)"
        job["inputs"] = [sentences or FALLBACK_SENTENCES]
    else:
        pairs = _squad_questions(model_dir, job["max_seq_length"], 50)
        job["source"] = f"{len(pairs)} SQuAD dev questions (one window each)" if pairs else \
            "3 built-in questions (no ../shared/data)"
        pairs = pairs or FALLBACK_QA
        job["inputs"] = [[q for q, _ in pairs], [c for _, c in pairs]]
        job.update(doc_stride=data.get("doc_stride", 128), max_query_length=data.get("max_query_length", 64),
                   max_answer_length=task_config.get("max_answer_length", 30))
    return job


class Report:
    """One line per check: ``PASS``/``FAIL``/``SKIP`` (a skip never fails the run), and the tally."""

    def __init__(self) -> None:
        self.checks: list[dict] = []

    def add(self, status: str, run: str, check: str, detail: str) -> None:
        self.checks.append({"status": status, "run": run, "check": check, "detail": detail})
        print(f"{status} {run}  {check}: {detail}", flush=True)

    def expect(self, ok: bool, run: str, check: str, detail: str) -> None:
        self.add("PASS" if ok else "FAIL", run, check, detail)

    @property
    def failed(self) -> int:
        return sum(c["status"] == "FAIL" for c in self.checks)


def _softmax(np, x, axis: int = -1):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(np, x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _first_mismatch(items: list, ours: list, theirs: list) -> str:
    """Where two equally long lists first differ, named by `items` (the texts, or text and token)."""
    i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    return f"first at #{i} ({str(items[i])[:60]}): SavedModel {ours[i]} vs transformers {theirs[i]}"


def _check_load(report: Report, job: dict, result: dict, version: str) -> bool:
    """The directory loaded, every weight from the file: the one check that the others rest on."""
    name, model_dir = job["run"], Path(job["model"])
    load = result.get("load") or {"error": result.get("crash", "no result")}
    st = model_dir / SAFETENSORS
    if "error" in load:
        if not st.is_file():
            others = ", ".join(n for n in ("tf_model.h5", "pytorch_model.bin") if (model_dir / n).is_file())
            report.add("FAIL", name, "load", f"no {SAFETENSORS} in {model_dir} (has {others or 'no weights'}); "
                       f"transformers {version} loads only PyTorch-named {SAFETENSORS}: {load['error']}")
        else:
            report.add("FAIL", name, "load", f"transformers {version} cannot load {model_dir}: {load['error']}")
        return False
    fmt = safetensors_format(st) if st.is_file() else None
    problems = [f"{len(load[k])} {k.replace('_', ' ')} ({', '.join(load[k][:3])}{', ...' if len(load[k]) > 3 else ''})"
                for k in ("missing_keys", "mismatched_keys") if load.get(k)]
    if not st.is_file():
        problems.append(f"no {SAFETENSORS} (transformers loaded another weights file)")
    elif fmt != "pt":
        problems.append(f"{SAFETENSORS} metadata format is {fmt!r}, not 'pt'")
    detail = f"{load['class']} from {SAFETENSORS}"
    if load.get("unexpected_keys"):
        detail += f"; {len(load['unexpected_keys'])} unused tensors ({', '.join(load['unexpected_keys'][:3])})"
    report.expect(not problems, name, "load", "; ".join([detail] + problems) if problems else
                  detail + ", every weight loaded")
    return not problems


def compare(report: Report, job: dict, result: dict, version: str, tf) -> None:
    """Check one run: load, then the model's and the pipeline's outputs against the SavedModel's."""
    import numpy as np

    if not _check_load(report, job, result, version):
        return
    name, task = job["run"], job["task"]
    if "crash" in result:
        report.add("FAIL", name, "transformers", f"loaded, then failed in transformers {version}: {result['crash']}")
        return
    if job["precision"] != "float32":
        _check_float32_weights(report, job, result, np, tf)
    saved = tf.saved_model.load(job["saved_model"])
    serve = saved.signatures["serving_default"]
    if task == "text_regression":
        _compare_regression(report, job, result, serve, np, tf)
    elif task in SEQUENCE_TASKS:
        _compare_classification(report, job, result, serve, np, tf)
    elif task == "token_classification":
        _compare_tokens(report, job, result, saved.signatures["serve_token_ids"], serve, np, tf)
    else:
        _compare_qa(report, job, result, saved.signatures["serve_token_ids"], serve, version, np, tf)


def _tolerance(job: dict) -> float:
    """1e-4 against a float32 SavedModel; tfbert's 16-bit tolerance against a mixed-precision one."""
    return TOLERANCE if job["precision"] == "float32" else SIXTEEN_BIT_TOLERANCE


def _precision_note(job: dict) -> str:
    return "" if job["precision"] == "float32" else \
        f" (the SavedModel computes in {job['precision']}: tolerance {SIXTEEN_BIT_TOLERANCE:g})"


def probabilities(task: str, outputs: dict, attention_mask, np):
    """What "probabilities" means per task, flattened: softmax or sigmoid per text (regression: the
    score), softmax per real
    token, softmax of start and of end logits over each window's real tokens."""
    mask = np.asarray(attention_mask, bool)
    if task == "sequence_classification":
        return _softmax(np, outputs["logits"]).ravel()
    if task == "multi_label_classification":
        return _sigmoid(np, outputs["logits"]).ravel()
    if task == "text_regression":  # the score itself
        return np.asarray(outputs["logits"], np.float64).ravel()
    if task == "token_classification":
        return _softmax(np, outputs["logits"])[mask].ravel()
    return np.concatenate([_softmax(np, np.where(mask, np.asarray(outputs[k], np.float64), -np.inf)).ravel()
                           for k in ("start_logits", "end_logits")])


def _check_float32_weights(report: Report, job: dict, result: dict, np, tf) -> None:
    """A mixed-precision run: transformers 5 against tf_model.h5 run in float32 by transformers 4's TF class."""
    import transformers

    name, task, model_dir = job["run"], job["task"], job["model"]
    check = "same function as tf_model.h5 (float32)"
    if not (Path(model_dir) / "tf_model.h5").is_file():
        report.add("SKIP", name, check, "no tf_model.h5 to run in float32")
        return
    transformers.logging.set_verbosity_error()
    auto = "TFAutoModel" if job["head"] != "transformers" else "TF" + AUTO_CLASS[task]
    # use_safetensors=False: transformers 4.57 would prefer model.safetensors and fail on PyTorch-format
    # files in TF (huggingface/transformers#40028).
    model = getattr(transformers, auto).from_pretrained(model_dir, use_safetensors=False)
    ids = {k: tf.constant(v) for k, v in result["ids"].items()}
    output = model(ids, training=False)
    if job["head"] != "transformers":
        reference = {"logits": tfbert_head_logits(job, output.last_hidden_state.numpy(),
                                                  np.asarray(result["ids"]["attention_mask"]), np)}
    elif task == "question_answering":
        reference = {"start_logits": output.start_logits.numpy(), "end_logits": output.end_logits.numpy()}
    else:
        reference = {"logits": output.logits.numpy()}
    mask = result["ids"]["attention_mask"]
    diff = float(np.abs(probabilities(task, result["auto"], mask, np) - probabilities(task, reference, mask, np)).max())
    report.expect(diff <= TOLERANCE, name, check, f"the SavedModel computes in {job['precision']}, so "
                  f"{'AutoModel' if job['head'] != 'transformers' else AUTO_CLASS[task]} is also compared with "
                  f"{auto} in float32 on the same token ids: max |dp| {diff:.1e}"
                  + ("" if diff <= TOLERANCE else f" (> {TOLERANCE:g})"))


def _compare_classification(report: Report, job: dict, result: dict, serve, np, tf) -> None:
    name, multi = job["run"], job["task"] == "multi_label_classification"
    ours = _serve_texts(job, serve, tf)
    probs = ours["probabilities"].astype(np.float64)
    names = json.loads((Path(job["saved_model"]) / SERVING_INFO).read_text(encoding="utf-8"))["labels"]
    texts = job["inputs"][0]
    if multi:
        threshold = ours["threshold"][0].astype(np.float64)  # each label's own threshold
        our_labels = [[v.decode() for v in row[:n]] for row, n in zip(ours["labels"], ours["num_predicted"])]

        def labels_of(p):
            return [[names[j] for j in np.flatnonzero(row >= threshold)] for row in p]
    else:
        our_labels = [v.decode() for v in ours["label"]]

        def labels_of(p):
            return [names[j] for j in p.argmax(-1)]

    what = "sigmoid" if multi else "softmax"
    logits = np.asarray(result["auto"]["logits"])
    theirs = _sigmoid(np, logits) if multi else _softmax(np, logits)
    if "id2label" in result["auto"]:
        id2label = [result["auto"]["id2label"][str(i)] for i in range(len(names))]
        if id2label != names:
            report.add("FAIL", name, _model_check(job),
                       f"config.json id2label {id2label} differs from the SavedModel's {names}")
            return
    _expect_close(report, job, _model_check(job), f"{job['source']}, {what}", probs, theirs,
                  our_labels, labels_of(theirs), texts)
    if _pipeline_skipped(report, job):
        return
    rows = result["pipeline"]
    if any(set(row) != set(names) for row in rows):
        report.add("FAIL", name, "pipeline(text-classification)",
                   f"labels {sorted(rows[0])} differ from the SavedModel's {names}")
        return
    piped = np.array([[row[n] for n in names] for row in rows])
    _expect_close(report, job, _pipeline_check(job), job["source"], probs, piped, our_labels, labels_of(piped), texts)


def _serve_texts(job: dict, serve, tf) -> dict:
    """The SavedModel's raw-text signature on the job's texts (and pairs), as numpy arrays."""
    inputs = {"text": tf.constant(job["inputs"][0])}
    if len(job["inputs"]) == 2:
        inputs["text_pair"] = tf.constant(job["inputs"][1])
    return {k: v.numpy() for k, v in serve(**inputs).items()}


def _model_check(job: dict) -> str:
    """The check's name for the model itself: its Auto class, or AutoModel + tfbert's head file."""
    if job["head"] == "transformers":
        return AUTO_CLASS[job["task"]]
    return f"AutoModel (backbone + {HEAD_FILE}, pooling {job['pooling']})"


def _pipeline_check(job: dict) -> str:
    """The check's name for the text-classification pipeline, with the options it ran with."""
    apply = PIPELINE_ACTIVATION.get(job["task"])
    return "pipeline(text-classification, top_k=None" + (f", function_to_apply='{apply}')" if apply else ")")


def _pipeline_skipped(report: Report, job: dict) -> bool:
    """A head without a transformers class has no pipeline to check: report the skip and say so."""
    if job["head"] == "transformers":
        return False
    report.add("SKIP", job["run"], "pipeline(text-classification)", f"pooling {job['pooling']} has no transformers "
               "class; the pipeline would add an untrained head (the model card says so)")
    return True


def _expect_close(report: Report, job: dict, check: str, source: str, ours, theirs, our_labels, their_labels,
                  texts) -> None:
    import numpy as np

    name, tolerance = job["run"], _tolerance(job)
    if ours.shape != theirs.shape:
        report.add("FAIL", name, check, f"shape {theirs.shape} vs the SavedModel's {ours.shape}")
        return
    diff = float(np.abs(ours - theirs).max()) if ours.size else 0.0
    problems = []
    labelled = our_labels is not None  # regression has scores only
    if not diff <= tolerance:
        problems.append(f"{'probabilities' if labelled else 'scores'} differ by up to {diff:.2e} (> {tolerance:g})")
    if labelled and our_labels != their_labels:
        problems.append("labels differ, " + _first_mismatch(texts, our_labels, their_labels))
    report.expect(not problems, name, check, f"{source}: max |{'dp' if labelled else 'd'}| {diff:.1e}" + (
        "; " + "; ".join(problems) if problems else ", same labels" if labelled else "") + _precision_note(job))


def _compare_regression(report: Report, job: dict, result: dict, serve, np, tf) -> None:
    """The SavedModel's ``score`` against the model's one logit and the pipeline's score (no activation)."""
    name, texts = job["run"], job["inputs"][0]
    ours = _serve_texts(job, serve, tf)["score"].astype(np.float64)
    theirs = np.asarray(result["auto"]["logits"], np.float64)
    if theirs.ndim != 2 or theirs.shape[1] != 1:
        report.add("FAIL", name, "logits", f"shape {theirs.shape}, not one score per text")
        return
    _expect_close(report, job, _model_check(job), f"{job['source']}, scores", ours, theirs[:, 0], None, None, texts)
    if _pipeline_skipped(report, job):
        return
    rows = result["pipeline"]
    if any(len(row) != 1 for row in rows):
        report.add("FAIL", name, "pipeline(text-classification)", f"{len(rows[0])} outputs per text, not one score")
        return
    piped = np.array([next(iter(row.values())) for row in rows], np.float64)
    _expect_close(report, job, _pipeline_check(job), f"{job['source']}, scores", ours, piped, None, None, texts)


def _token_id_inputs(signature, ids: dict, tf) -> dict:
    wanted = signature.structured_input_signature[1]
    return {k: tf.constant(ids[k], tf.int32) for k in wanted}


def _compare_tokens(report: Report, job: dict, result: dict, serve_ids, serve, np, tf) -> None:
    name, texts = job["run"], job["inputs"][0]
    ours = serve_ids(**_token_id_inputs(serve_ids, result["ids"], tf))
    mask = np.asarray(result["ids"]["attention_mask"], bool)
    probs = _softmax(np, ours["logits"].numpy())[mask]
    theirs = _softmax(np, result["auto"]["logits"])[mask]
    where = [f"{texts[i][:40]} / token {j}" for i, j in np.argwhere(mask)]
    _expect_close(report, job, "AutoModelForTokenClassification", f"{job['source']} ({mask.sum()} tokens, same "
                  "token ids), softmax per token", probs, theirs, probs.argmax(-1).tolist(),
                  theirs.argmax(-1).tolist(), where)
    out = {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}
    entities = [[[t.decode(), int(s), int(e)] for t, s, e in zip(
        out["entity_type"][i][:n], out["entity_start"][i][:n], out["entity_end"][i][:n])]
        for i, n in enumerate(out["num_entities"])]
    scores = np.concatenate([out["entity_score"][i][:n] for i, n in enumerate(out["num_entities"])] or [[]])
    piped = [[e[:3] for e in row] for row in result["pipeline"]]
    check = "pipeline(token-classification, aggregation_strategy='first')"
    total = sum(len(row) for row in entities)
    if entities != piped:
        differ = sum(a != b for a, b in zip(entities, piped))
        report.add("FAIL", name, check, f"{job['source']}: entities differ in {differ} texts, "
                   + _first_mismatch(texts, entities, piped))
        return
    diff = float(np.abs(scores - np.array([e[3] for row in result["pipeline"] for e in row])).max()) if total else 0.0
    report.expect(diff <= _tolerance(job), name, check, f"{job['source']}: the same {total} entities and offsets, "
                  f"entity scores max |d| {diff:.1e}" + _precision_note(job))


def _compare_qa(report: Report, job: dict, result: dict, serve_ids, serve, version: str, np, tf) -> None:
    name = job["run"]
    questions, contexts = job["inputs"]
    ours = serve_ids(**_token_id_inputs(serve_ids, result["ids"], tf))
    mask = np.asarray(result["ids"]["attention_mask"], bool)
    diffs, same_best = [], True
    for key in ("start_logits", "end_logits"):
        # Probabilities over each window's real tokens (padding excluded), as the 1e-4 rule says.
        a = _softmax(np, np.where(mask, ours[key].numpy(), -np.inf))
        b = _softmax(np, np.where(mask, np.asarray(result["auto"][key]), -np.inf))
        diffs.append(float(np.abs(a - b).max()))
        same_best &= bool((a.argmax(-1) == b.argmax(-1)).all())
    diff, tolerance = max(diffs), _tolerance(job)
    report.expect(diff <= tolerance and same_best, name, "AutoModelForQuestionAnswering",
                  f"{job['source']}, start/end softmax on the same token ids: max |dp| {diff:.1e}"
                  + ("" if diff <= tolerance else f" (> {tolerance:g})")
                  + (", same best start and end" if same_best else "; best start/end tokens differ")
                  + _precision_note(job))
    out = {k: v.numpy() for k, v in serve(question=tf.constant(questions), context=tf.constant(contexts)).items()}
    answers = [[a.decode(), int(s), int(e)] for a, s, e in zip(out["answer"], out["answer_start"], out["answer_end"])]
    decoded = result["decoded"]
    check = "answers from AutoModelForQuestionAnswering (the v4 pipeline's span rule)"
    report.expect(answers == decoded, name, check, f"{job['source']}: " + (
        f"the same {len(answers)} answers and offsets" if answers == decoded else
        f"{sum(a != b for a, b in zip(answers, decoded))} answers differ, "
        + _first_mismatch(questions, answers, decoded)))
    if "pipeline_error" in result:
        report.add("SKIP", name, "pipeline(question-answering)", f"transformers {version} has none "
                   f"({result['pipeline_error']}; removed in 5.3): answers checked with its span rule above")
        return
    piped = result["pipeline"]
    report.expect(answers == piped, name, "pipeline(question-answering, align_to_words=False)", f"{job['source']}: " + (
        f"the same {len(answers)} answers and offsets" if answers == piped else
        f"{sum(a != b for a, b in zip(answers, piped))} answers differ, " + _first_mismatch(questions, answers, piped)))


def start_worker(hf_python: str, jobs: list[dict], workdir: Path) -> subprocess.Popen:
    """Start the worker half in the transformers-5 venv (the parent meanwhile loads TensorFlow)."""
    (workdir / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    # Offline: the directories are local, and a check must never fetch anything from a hub.
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", HF_HUB_DISABLE_PROGRESS_BARS="1",
               TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([hf_python, str(Path(__file__).resolve()), "--worker", str(workdir / "jobs.json"),
                             str(workdir / "results.json")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish_worker(proc: subprocess.Popen, workdir: Path) -> dict:
    """The worker's results, or a RuntimeError ending with its output."""
    output, _ = proc.communicate()
    results_path = workdir / "results.json"
    if proc.returncode != 0 or not results_path.is_file():
        tail = "\n".join(output.strip().splitlines()[-10:])
        raise RuntimeError(f"the transformers-5 worker failed (exit {proc.returncode}):\n{tail}")
    return json.loads(results_path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check tfbert model directories in transformers 5 against their "
                                                 "SavedModels (scripts/check_portability.sh sets up the venv).")
    parser.add_argument("runs", nargs="*", type=Path, help="run directories (RUN/model + RUN/saved_model)")
    parser.add_argument("--hf-python", help="the transformers-5 venv's python")
    parser.add_argument("--json", type=Path, help="also write the versions and every check here")
    parser.add_argument("--worker", nargs=2, type=Path, metavar=("JOBS", "RESULTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    if not args.runs or not args.hf_python:
        parser.error("give --hf-python and at least one run directory")
    try:
        jobs = [make_job(run) for run in args.runs]
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tfbert-portability-") as tmp:
        proc = start_worker(args.hf_python, jobs, Path(tmp))
        tf = _import_tensorflow()
        try:
            results = finish_worker(proc, Path(tmp))
        except RuntimeError as exc:
            print(f"FAIL {exc}", flush=True)
            return 1
    versions = results["versions"]
    print("transformers-5 venv: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f" ({args.hf_python})",
          flush=True)
    report = Report()
    for job, result in zip(jobs, results["runs"]):
        compare(report, job, result, versions["transformers"], tf)
    passed = sum(c["status"] == "PASS" for c in report.checks)
    skipped = sum(c["status"] == "SKIP" for c in report.checks)
    print(f"{len(report.checks)} checks: {passed} passed, {report.failed} failed, {skipped} skipped")
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "checks": report.checks}, indent=2) + "\n",
                             encoding="utf-8")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
