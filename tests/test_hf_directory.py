"""A fine-tuned model directory is a transformers directory: transformers and tfbert's SavedModel agree.

The models are the tiny random BERT with fresh heads: agreement is a property of the export, not of
training, so real sentences (SMS, WNUT-17, SQuAD) on an untrained model test it as well, and fast.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SHARED_DATA, write_spam_tsv

WNUT_TEST = SHARED_DATA / "wnut17" / "emerging.test.annotated"
SQUAD = SHARED_DATA / "squad_v1.1" / "dev-v1.1-articles-00-35.json"
needs_shared = pytest.mark.skipif(not WNUT_TEST.is_file() or not SQUAD.is_file(), reason="../shared/data absent")

# Runs in a fresh process that never imports tfbert: what a transformers user (or a server) does.
FRESH = r"""
import json, sys
import numpy as np
import tensorflow_text  # the SavedModel's tokenizer ops
import tensorflow as tf
import transformers
from transformers import pipeline as hf_pipeline
transformers.logging.set_verbosity_error()

# transformers 4.55-4.57's TF classes cannot read PyTorch-format safetensors (huggingface/transformers#40028)
# and pick model.safetensors before tf_model.h5: TF users of these releases pass use_safetensors=False.
TF = {"use_safetensors": False}

def pipeline(*args, **kwargs):
    # transformers 4.57 without torch: the default dtype="auto" reaches `hasattr(torch, ...)` (NameError).
    return hf_pipeline(*args, dtype=None, model_kwargs=TF, **kwargs)

jobs, out = json.loads(sys.argv[1]), {}
for job in jobs:
    serve = tf.saved_model.load(job["saved_model"]).signatures["serving_default"]
    result = {}
    if job["task"] == "sequence_classification":
        ours = serve(text=tf.constant(job["texts"]))
        result["ours"] = {"probabilities": ours["probabilities"].numpy().tolist(),
                          "labels": [b.decode() for b in ours["label"].numpy()]}
        model = transformers.TFAutoModelForSequenceClassification.from_pretrained(job["model"], **TF)
        tok = transformers.AutoTokenizer.from_pretrained(job["model"])
        logits = model(dict(tok(job["texts"], padding=True, return_tensors="tf"))).logits
        result["auto"] = {"probabilities": tf.nn.softmax(logits).numpy().tolist(),
                          "labels": [model.config.id2label[i] for i in logits.numpy().argmax(-1)]}
        pipe = pipeline("text-classification", model=job["model"], framework="tf", top_k=None)
        result["pipeline"] = [{d["label"]: d["score"] for d in row} for row in pipe(job["texts"])]
    elif job["task"] == "token_classification":
        ours = serve(text=tf.constant(job["texts"]))
        n = ours["num_entities"].numpy()
        result["ours"] = [[[t.decode(), int(s), int(e)] for t, s, e in zip(
            ours["entity_type"].numpy()[i][:n[i]], ours["entity_start"].numpy()[i][:n[i]],
            ours["entity_end"].numpy()[i][:n[i]])] for i in range(len(job["texts"]))]
        model = transformers.TFAutoModelForTokenClassification.from_pretrained(job["model"], **TF)
        pipe = pipeline("token-classification", model=model, tokenizer=job["model"], framework="tf",
                        aggregation_strategy="first")
        result["pipeline"] = [[[e["entity_group"], int(e["start"]), int(e["end"])] for e in row]
                              for row in pipe(job["texts"])]
    else:
        ours = serve(question=tf.constant(job["questions"]), context=tf.constant(job["contexts"]))
        result["ours"] = [[a.decode(), int(s), int(e)] for a, s, e in zip(
            ours["answer"].numpy(), ours["answer_start"].numpy(), ours["answer_end"].numpy())]
        pipe = pipeline("question-answering", model=job["model"], framework="tf")
        answers = pipe(question=job["questions"], context=job["contexts"], align_to_words=False,
                       max_seq_len=job["max_seq_length"], doc_stride=job["doc_stride"],
                       max_question_len=job["max_query_length"], max_answer_len=job["max_answer_length"])
        result["pipeline"] = [[a["answer"], int(a["start"]), int(a["end"])] for a in answers]
    out[job["task"]] = result
out["tfbert_imported"] = any(m == "tfbert" or m.startswith("tfbert.") for m in sys.modules)
print(json.dumps(out))
"""


def _wnut_sentences(path: Path, limit: int) -> list[tuple[list[str], list[str]]]:
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            token, tag = line.split("\t")
            tokens.append(token)
            tags.append(tag)
        elif tokens:
            sentences.append((tokens, tags))
            tokens, tags = [], []
        if len(sentences) == limit:
            break
    return sentences


def _experiment(tiny_model_dir: Path, tmp: Path, task: str, *overrides: str):
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment

    config = load_config(None, [f"model.name_or_path={tiny_model_dir}", f"task.type={task}",
                                f"training.output_dir={tmp / 'run'}", "training.metric_for_best_model=loss",
                                *overrides])
    return build_experiment(config)


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory) -> dict:
    """Per task: an (untrained) experiment, its transformers directory and its SavedModel."""
    from tfbert.modeling.saving import save_pretrained

    tmp = tmp_path_factory.mktemp("hf-dirs")
    spam = write_spam_tsv(tmp / "spam.tsv")
    experiments = {"sequence_classification": _experiment(
        tiny_model_dir, tmp / "cls", "sequence_classification", f"data.train_file={spam}", "data.has_header=false",
        "data.column_names=[label, text]", "data.max_seq_length=64", "model.pooling=pooler")}
    if WNUT_TEST.is_file() and SQUAD.is_file():
        train = tmp / "wnut.jsonl"  # a few training sentences only fix the label set (all 13 tags)
        train.write_text("".join(json.dumps({"tokens": t, "tags": g}) + "\n" for t, g in
                                 _wnut_sentences(SHARED_DATA / "wnut17" / "wnut17train.conll", 200)))
        experiments["token_classification"] = _experiment(
            tiny_model_dir, tmp / "ner", "token_classification", f"data.train_file={train}",
            "data.max_seq_length=128")
        experiments["question_answering"] = _experiment(
            tiny_model_dir, tmp / "qa", "question_answering", f"data.train_file={SQUAD}", "data.train_articles=0",
            "data.max_seq_length=384", "data.doc_stride=128",
            # The pipeline scores every (start, end) pair; tfbert, like the SQuAD reference decoder,
            # only the n_best_size best starts x ends. An n-best as wide as the window makes the two
            # searches the same, so the answers must agree exactly.
            "task.n_best_size=384")
    out = {}
    for task, experiment in experiments.items():
        model_dir = save_pretrained(tmp / task / "model", experiment.model, experiment.tokenizer,
                                    experiment.config, experiment.label_names)
        saved = experiment.task.export(experiment.model, experiment.tokenizer, experiment.label_names,
                                       tmp / task / "saved_model", experiment.config)
        out[task] = {"experiment": experiment, "model": model_dir, "saved_model": saved}
    return out


@pytest.fixture(scope="module")
def fresh(runs) -> dict:
    """Both servings' answers, computed in one fresh process without tfbert."""
    jobs = []
    for task, run in runs.items():
        job = {"task": task, "model": str(run["model"]), "saved_model": str(run["saved_model"])}
        if task == "sequence_classification":
            job["texts"] = (ROOT / "data" / "sms_spam" / "unseen.txt").read_text(encoding="utf-8").splitlines()
        elif task == "token_classification":
            job["texts"] = [" ".join(tokens) for tokens, _ in _wnut_sentences(WNUT_TEST, 50)]
        else:
            d, t = run["experiment"].config.data, run["experiment"].config.task
            # Contexts that fit one window: across windows tfbert ranks spans by raw start + end logits,
            # the pipeline by per-window probabilities, so multi-window answers may legitimately differ.
            tokenizer = run["experiment"].tokenizer
            qas = [(qa["question"], p["context"]) for article in json.loads(SQUAD.read_text())["data"][1:6]
                   for p in article["paragraphs"] for qa in p["qas"]
                   if len(tokenizer(qa["question"], p["context"])["input_ids"]) <= d.max_seq_length][::7][:50]
            job.update(questions=[q for q, _ in qas], contexts=[c for _, c in qas], max_seq_length=d.max_seq_length,
                       doc_stride=d.doc_stride, max_query_length=d.max_query_length,
                       max_answer_length=t.max_answer_length)
        jobs.append(job)
    result = subprocess.run([sys.executable, "-c", FRESH, json.dumps(jobs)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["jobs"] = {j["task"]: j for j in jobs}
    return out


def test_directory_is_a_transformers_directory(runs):
    model_dir = runs["sequence_classification"]["model"]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "ham", "1": "spam"} and config["label2id"] == {"ham": 0, "spam": 1}
    for name in ("tf_model.h5", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "tfbert_config.yaml",
                 "labels.json", "tfbert_model.json", "README.md"):
        assert (model_dir / name).is_file(), name
    assert json.loads((model_dir / "tfbert_model.json").read_text())["head"] == "transformers"


def test_classification_agrees_with_saved_model(fresh):
    result = fresh["sequence_classification"]
    assert not fresh["tfbert_imported"]
    ours = np.array(result["ours"]["probabilities"])
    np.testing.assert_allclose(np.array(result["auto"]["probabilities"]), ours, atol=1e-4)
    piped = np.array([[row["ham"], row["spam"]] for row in result["pipeline"]])
    np.testing.assert_allclose(piped, ours, atol=1e-4)
    assert result["auto"]["labels"] == result["ours"]["labels"]
    assert len(ours) == 5


@needs_shared
def test_ner_pipeline_finds_the_same_entities(fresh):
    result = fresh["token_classification"]
    assert len(result["ours"]) == 50
    assert sum(len(row) for row in result["ours"]) > 20  # a random head tags plenty: the test has teeth
    for text, ours, theirs in zip(fresh["jobs"]["token_classification"]["texts"], result["ours"], result["pipeline"]):
        assert ours == theirs, text


@needs_shared
def test_qa_pipeline_gives_the_same_answers(fresh):
    result = fresh["question_answering"]
    assert len(result["ours"]) == 50
    assert result["ours"] == result["pipeline"]


@pytest.mark.parametrize("task", ["sequence_classification", "token_classification", "question_answering"])
def test_tfbert_reloads_its_directory(runs, task):
    from tfbert.modeling.saving import load_pretrained

    if task not in runs:
        pytest.skip("../shared/data absent")
    run = runs[task]
    loaded = load_pretrained(run["model"])
    assert loaded.label_names == run["experiment"].label_names
    def by_name(model) -> dict:  # the backbone's scope is numbered per model built in the process
        return {re.sub(r"^tf_bert_model(_\d+)?/", "", v.name): v.numpy() for v in model.weights}

    ours, theirs = by_name(loaded.model), by_name(run["experiment"].model)
    # The token and span classes have no pooler (unused by those heads): every other weight comes back.
    shared = [k for k in theirs if "pooler" not in k or task == "sequence_classification"]
    assert len(shared) > 30
    for key in shared:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def _old_format_save(directory: Path, model, tokenizer, config, label_names) -> None:
    """The format-1 writer, as `save_pretrained` wrote model directories before format 2."""
    directory.mkdir(parents=True)
    (directory / "tfbert_config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    (directory / "labels.json").write_text(json.dumps(
        {"id2label": list(label_names), "label2id": {n: i for i, n in enumerate(label_names)}}), encoding="utf-8")
    backbone = next(layer for layer in model.layers if hasattr(layer, "base_model_prefix"))
    backbone.config.save_pretrained(str(directory / "backbone"))
    tokenizer.save_pretrained(str(directory / "tokenizer"))
    model.save_weights(str(directory / "weights"))


@pytest.mark.parametrize("pooling", ["cls", "pooler"])
def test_old_format_loads_and_migrates_with_one_command(tiny_config, tmp_path, pooling):
    from transformers import TFAutoModel, TFAutoModelForSequenceClassification

    from tfbert.cli import common
    from tfbert.cli import export as export_cli
    from tfbert.run.experiment import build_experiment
    from tfbert.modeling.saving import HEAD_FILE, load_pretrained

    # Format 1 was written on transformers' backbone.
    experiment = build_experiment(tiny_config(f"model.pooling={pooling}", "model.backbone=transformers"))
    old = tmp_path / "old"
    _old_format_save(old, experiment.model, experiment.tokenizer, experiment.config, experiment.label_names)
    batch = {k: v.astype(np.int32) for k, v in
             experiment.tokenizer(["win a prize", "see you at lunch today"], padding=True, return_tensors="np").items()}
    expected = experiment.model(batch, training=False).numpy()
    np.testing.assert_allclose(load_pretrained(old).model(batch, training=False).numpy(), expected, atol=1e-6)

    new = tmp_path / "new"
    assert common.run(export_cli.main, ["--model", str(old), "--format", "transformers", "--output", str(new)]) == 0
    np.testing.assert_allclose(load_pretrained(new).model(batch, training=False).numpy(), expected, atol=1e-6)
    tf_batch = {k: v for k, v in batch.items()}
    if pooling == "pooler":
        hf = TFAutoModelForSequenceClassification.from_pretrained(str(new), use_safetensors=False)
        np.testing.assert_allclose(hf(tf_batch).logits.numpy(), expected, atol=1e-5)
    else:  # no transformers class: a standard backbone plus the head's weights, and a note saying so
        from safetensors.numpy import load_file

        assert json.loads((new / "config.json").read_text())["architectures"] == ["BertModel"]
        head = load_file(str(new / HEAD_FILE))
        hidden = TFAutoModel.from_pretrained(str(new), use_safetensors=False)(tf_batch).last_hidden_state.numpy()[:, 0]
        np.testing.assert_allclose(hidden @ head["classifier.kernel"] + head["classifier.bias"], expected, atol=1e-5)
        assert "has no transformers class" in (new / "README.md").read_text()


def test_model_card_has_the_hub_metadata_block(tiny_config):
    from huggingface_hub import ModelCard

    from tfbert.model_card import render_model_card

    config = tiny_config()
    evaluation = {"num_examples": 12, "metrics": {"loss": 0.3, "accuracy": 0.9167, "macro_f1": 0.9}}
    card = ModelCard(render_model_card(config, None, [], evaluation, ["ham", "spam"], model_name="spam-tiny"))
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert "tfbert" in data.tags and data.metrics == ["accuracy", "f1"]
    assert data.base_model is None  # a local path is no Hub id
    results = {(r.metric_type, r.metric_name): r.metric_value for r in data.eval_results}
    assert results == {("accuracy", "Accuracy"): 0.9167, ("f1", "Macro F1"): 0.9}
    assert {r.dataset_split for r in data.eval_results} == {"test"}
    config.model.name_or_path = "bundled:all-MiniLM-L6-v2"
    bundled = ModelCard(render_model_card(config, None, [], None, ["ham", "spam"], model_name="m")).data
    assert bundled.base_model == "sentence-transformers/all-MiniLM-L6-v2" and not bundled.eval_results
