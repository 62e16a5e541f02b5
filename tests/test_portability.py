"""A tfbert model directory works in transformers 5 (no TensorFlow there): `scripts/check_portability.sh`.

The checker runs in a separate venv (CPU torch + the newest transformers 5.x) that takes minutes to
build, and a check takes a minute and a half of CPU, so the checks are `slow`: ``./scripts/test.sh
--run-slow`` builds the venv (or reuses it) and runs them; CI's clean clone never has the venv. The models are the tiny random BERT with fresh
heads, one run per task type: parity is a property of the saved files, not of training (as in
`test_hf_directory.py`), and the tiny model makes every run take seconds. A `pooling: cls` run covers
heads without a transformers class (the backbone plus `tfbert_head.safetensors`). The second half
tests the dependency guard (`tfbert/compat.py`) and `setup.cfg`'s bounds: no venv needed there.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, write_spam_tsv

SCRIPT = ROOT / "scripts" / "check_portability.sh"
VENV = Path(os.environ.get("TFBERT_PORTABILITY_VENV", ROOT / "benchmarks" / ".venvs" / "transformers5"))
WNUT_TRAIN = SHARED_DATA / "wnut17" / "wnut17train.conll"
SQUAD = SHARED_DATA / "squad_v1.1" / "dev-v1.1-articles-00-35.json"
HAVE_SHARED = WNUT_TRAIN.is_file() and SQUAD.is_file()
MULTI_LABEL_ROWS = [("What a wonderful, happy day, I love it", "joy,love"), ("I am so angry right now", "anger"),
                    ("The meeting is at ten tomorrow", ""), ("Terrible, furious, I hate waiting", "anger")]


def _wnut_jsonl(path: Path, limit: int = 200) -> Path:
    """The first WNUT-17 training sentences as JSONL: they only fix the label set (all 13 tags)."""
    from tfbert.data.conll import read_conll

    rows = [json.dumps({"tokens": s.words, "tags": s.tags}) for s in read_conll(WNUT_TRAIN)[:limit]]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def make_runs(out: Path, tiny_model_dir: Path) -> dict[str, Path]:
    """Per task type (and a head without a transformers class), a run directory with `model/` (tfbert's
    writer) and `saved_model/` (its export), by name."""
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment
    from tfbert.modeling.saving import save_pretrained

    from tests.test_text_regression import write_pairs

    multi_label = out / "multi_label.tsv"
    multi_label.write_text("text\tlabels\n" + "".join(f"{t}\t{l}\n" for t, l in MULTI_LABEL_ROWS * 3), encoding="utf-8")
    spam = [f"data.train_file={write_spam_tsv(out / 'spam.tsv')}", "data.has_header=false",
            "data.column_names=[label, text]", "data.max_seq_length=64"]
    tasks = {  # name: (task type, overrides)
        "sequence_classification": ("sequence_classification", [*spam, "model.pooling=pooler"]),
        # no transformers class: the backbone (AutoModel) plus tfbert_head.safetensors
        "sequence_classification_cls": ("sequence_classification", [*spam, "model.pooling=cls"]),
        # a SavedModel computing in bfloat16: its weights are also checked against tf_model.h5 in float32
        "sequence_classification_bf16": ("sequence_classification", [*spam, "precision.policy=mixed_bfloat16"]),
        # A fixed threshold: the labels over it are part of what must agree.
        "multi_label_classification": ("multi_label_classification", [
            f"data.train_file={multi_label}", "data.format=tsv", "data.label_column=labels", "data.max_seq_length=64",
            "task.threshold=0.5"]),
        # One score per pair, read by transformers as problem_type: regression.
        "text_regression": ("text_regression", [
            f"data.train_file={write_pairs(out / 'pairs.tsv')}", "data.text_column=sentence1",
            "data.text_pair_column=sentence2", "data.label_column=score", "data.max_seq_length=64"]),
    }
    if HAVE_SHARED:
        tasks["token_classification"] = ("token_classification", [
            f"data.train_file={_wnut_jsonl(out / 'wnut.jsonl')}", "data.max_seq_length=128"])
        # n_best as wide as the window: tfbert's n-best search and the pipeline's full search then
        # look at the same spans, so even an untrained head must give the same answers.
        tasks["question_answering"] = ("question_answering", [
            f"data.train_file={SQUAD}", "data.train_articles=0", "data.max_seq_length=384", "data.doc_stride=128",
            "task.n_best_size=384"])
    runs = {}
    for name, (task, overrides) in tasks.items():
        run = out / name
        config = load_config(None, [f"model.name_or_path={tiny_model_dir}", f"task.type={task}",
                                    f"training.output_dir={run}", "training.metric_for_best_model=loss", *overrides])
        experiment = build_experiment(config)
        save_pretrained(run / "model", experiment.model, experiment.tokenizer, experiment.config,
                        experiment.label_names)
        experiment.task.export(experiment.model, experiment.tokenizer, experiment.label_names, run / "saved_model",
                               experiment.config)
        runs[name] = run
    return runs


# ------------------------------------------------------------------ the checker, in the transformers-5 venv

def _hf_venv() -> Path:
    """The transformers-5 venv, or a skip saying how to build it (checked when the test runs, not at collection)."""
    if not (VENV / ".ready").is_file():
        pytest.skip(f"no transformers-5 venv at {VENV}: run scripts/check_portability.sh to build it")
    return VENV


def _check(*args: str | Path, json_out: Path | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run scripts/check_portability.sh with this interpreter as tfbert's side; (process, its --json report)."""
    env = dict(os.environ, TFBERT_PYTHON=sys.executable, TFBERT_PORTABILITY_VENV=str(VENV))
    extra = ["--json", str(json_out)] if json_out else []
    proc = subprocess.run(["bash", str(SCRIPT), *extra, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=1200)
    report = json.loads(json_out.read_text()) if json_out and json_out.is_file() else None
    return proc, report


@pytest.mark.slow
def test_script_builds_its_venv():
    """Builds benchmarks/.venvs/transformers5 when absent (minutes; reused after), so the tests below run."""
    proc = subprocess.run(["bash", str(SCRIPT), "--setup-only"], capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, TFBERT_PORTABILITY_VENV=str(VENV)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    versions = dict(line.split("==") for line in (VENV / "versions.txt").read_text().split())
    assert versions["transformers"].split(".")[0] == "5" and versions["torch"].startswith("2.13.0")


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    _hf_venv()
    return make_runs(tmp_path_factory.mktemp("portability"), tiny_model_dir)


@pytest.fixture(scope="module")
def checked(runs, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    proc, report = _check(*runs.values(), json_out=tmp_path_factory.mktemp("check") / "report.json")
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, report


@pytest.mark.slow
def test_every_task_type_loads_and_agrees_in_transformers_5(runs, checked):
    proc, report = checked
    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert proc.returncode == 0 and not failed, proc.stdout[-4000:]
    assert report["versions"]["transformers"].split(".")[0] == "5"
    expected = {  # every check that must have run (and passed) per task type
        "sequence_classification": {"load", "AutoModelForSequenceClassification",
                                    "pipeline(text-classification, top_k=None)"},
        "sequence_classification_cls": {"load", "AutoModel (backbone + tfbert_head.safetensors, pooling cls)"},
        "sequence_classification_bf16": {"load", "same function as tf_model.h5 (float32)",
                                         "AutoModelForSequenceClassification",
                                         "pipeline(text-classification, top_k=None)"},
        "multi_label_classification": {"load", "AutoModelForSequenceClassification",
                                       "pipeline(text-classification, top_k=None, function_to_apply='sigmoid')"},
        "text_regression": {"load", "AutoModelForSequenceClassification",
                            "pipeline(text-classification, top_k=None, function_to_apply='none')"},
        "token_classification": {"load", "AutoModelForTokenClassification",
                                 "pipeline(token-classification, aggregation_strategy='first')"},
        "question_answering": {"load", "AutoModelForQuestionAnswering",
                               "answers from AutoModelForQuestionAnswering (the v4 pipeline's span rule)"},
    }
    assert set(runs) == set(expected) - (set() if HAVE_SHARED else {"token_classification", "question_answering"})
    for name, run in runs.items():
        passed = {c["check"] for c in report["checks"] if c["run"] == str(run) and c["status"] == "PASS"}
        assert expected[name] <= passed, (name, passed)
    float32_check = "same function as tf_model.h5 (float32)"
    for check in report["checks"]:
        if check["check"] not in ("load", float32_check) and check["status"] == "PASS":
            # the texts ran: 5 SMS (paired with the next for regression), 50 sentences, 50 questions
            assert check["detail"].startswith(("5 unseen SMS", "5 pairs of unseen SMS", "50 WNUT-17", "50 SQuAD")), check
    bf16 = {c["check"]: c["detail"] for c in report["checks"] if c["run"] == str(runs["sequence_classification_bf16"])}
    assert bf16[float32_check].startswith("the SavedModel computes in mixed_bfloat16")
    assert bf16["AutoModelForSequenceClassification"].endswith("(the SavedModel computes in mixed_bfloat16: "
                                                               "tolerance 0.05)")
    assert all(float32_check not in {c["check"] for c in report["checks"] if c["run"] == str(run)}
               for name, run in runs.items() if name != "sequence_classification_bf16")  # float32 runs: 1e-4 direct
    # one line per check on stdout, then the tally
    assert proc.stdout.strip().splitlines()[-1].startswith(f"{len(report['checks'])} checks: ")


@pytest.mark.slow
def test_checker_fails_without_safetensors_and_on_a_changed_weight(runs, tmp_path):
    from safetensors.numpy import load_file, save_file

    source = runs["sequence_classification"]
    assert (source / "model" / "model.safetensors").is_file(), "tfbert's writer wrote no model/model.safetensors"
    cases = {name: tmp_path / name for name in ("h5_only", "changed_bias", "renamed")}
    for run in cases.values():
        shutil.copytree(source, run)
    (cases["h5_only"] / "model" / "model.safetensors").unlink()  # what tfbert wrote before issue 21
    for name, change in (("changed_bias", lambda t: t.update({"classifier.bias": t["classifier.bias"] + [0.5, -0.5]})),
                         ("renamed", lambda t: t.update({"classifier.kernel": t.pop("classifier.weight")}))):
        path = cases[name] / "model" / "model.safetensors"
        tensors = load_file(str(path))
        change(tensors)
        save_file({k: v.astype(tensors[k].dtype) for k, v in tensors.items()}, str(path), metadata={"format": "pt"})

    proc, report = _check(*cases.values(), json_out=tmp_path / "report.json")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = {name: [c for c in report["checks"] if c["run"] == str(run)] for name, run in cases.items()}
    [h5_only] = lines["h5_only"]  # one clear line, nothing checked after a failed load
    assert h5_only["status"] == "FAIL" and h5_only["check"] == "load"
    assert h5_only["detail"].startswith("no model.safetensors in ") and "(has tf_model.h5)" in h5_only["detail"]
    assert f"FAIL {cases['h5_only']}  load: no model.safetensors" in proc.stdout
    changed = {c["check"]: c for c in lines["changed_bias"]}
    assert changed["load"]["status"] == "PASS"
    for check in ("AutoModelForSequenceClassification", "pipeline(text-classification, top_k=None)"):
        assert changed[check]["status"] == "FAIL" and "probabilities differ by up to" in changed[check]["detail"]
    [renamed] = lines["renamed"]
    assert renamed["status"] == "FAIL" and "1 missing keys (classifier.weight)" in renamed["detail"]


def test_checker_usage_errors_are_one_line(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "check_portability.py"), "--hf-python", sys.executable,
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {tmp_path}: no SavedModel to compare with "
                                   f"(expected {tmp_path}/saved_model/saved_model.pb)")


# ------------------------------------------------------------------ dependency hygiene

def _fake_versions(monkeypatch, **versions: str | None) -> None:
    """`tfbert.compat` sees these versions (None: not installed); other packages as installed."""
    from importlib.metadata import PackageNotFoundError, version

    from tfbert import compat

    def installed_version(name: str) -> str | None:
        if name in versions:
            return versions[name]
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    monkeypatch.setattr(compat, "installed_version", installed_version)


def test_version_guard_names_found_and_needed_versions(monkeypatch):
    from tfbert.compat import DependencyError, check_dependencies, dependency_problem

    assert dependency_problem() is None  # this venv: the lock file's versions
    _fake_versions(monkeypatch, transformers="5.2.0")
    with pytest.raises(DependencyError) as raised:
        check_dependencies()
    assert str(raised.value) == ("tfbert needs transformers>=4.57,<5 (TensorFlow classes); found 5.2.0: "
                                 "pip install 'transformers>=4.57,<5'")
    assert raised.value.exit_code == 2
    for found, ok in (("5.0.0rc1", False), ("4.56.2", False), ("4.57.0", True), ("4.58.1", True), (None, False)):
        _fake_versions(monkeypatch, transformers=found)
        assert (dependency_problem() is None) == ok, found
    _fake_versions(monkeypatch, transformers="5.25.0", **{"huggingface-hub": "1.4.0"})
    assert dependency_problem() == (
        "tfbert needs transformers>=4.57,<5 (TensorFlow classes); found 5.25.0 and huggingface-hub>=0.34,<1 "
        "(transformers 4.57 requires it); found 1.4.0: pip install 'transformers>=4.57,<5' 'huggingface-hub>=0.34,<1'")
    _fake_versions(monkeypatch, transformers=None)
    assert "found none" in dependency_problem()
    _fake_versions(monkeypatch, tokenizers="0.23.3")  # what transformers 5 brings along
    assert dependency_problem() == ("tfbert needs tokenizers>=0.22,<=0.23.0 (transformers 4.57 requires it); "
                                    "found 0.23.3: pip install 'tokenizers>=0.22,<=0.23.0'")
    _fake_versions(monkeypatch, tokenizers="0.23.0")
    assert dependency_problem() is None


def test_version_guard_catches_a_mixed_tensorflow_family(monkeypatch):
    from tfbert.compat import dependency_problem

    _fake_versions(monkeypatch, tensorflow="2.22.0", **{"tf-keras": "2.21.0", "tensorflow-text": "2.21.1"})
    assert dependency_problem() == (
        "tfbert needs tensorflow, tf-keras and tensorflow-text of one release (tf-keras and tensorflow-text are "
        "built for one TensorFlow); found tensorflow 2.22.0, tf-keras 2.21.0, tensorflow-text 2.21.1: "
        "pip install 'tensorflow>=2.21,<2.22' 'tf-keras>=2.21,<2.22' 'tensorflow-text>=2.21,<2.22'")
    _fake_versions(monkeypatch, tensorflow="2.22.0", **{"tf-keras": "2.22.1", "tensorflow-text": "2.22.0"})
    assert dependency_problem() is None  # one family, just newer: not known to break, not refused


def _fake_transformers_5(root: Path) -> Path:
    """A `transformers` 5.2.0 that fails like the real one does for tfbert (no TF classes), first on sys.path."""
    (root / "transformers").mkdir(parents=True)
    (root / "transformers" / "__init__.py").write_text(
        "raise ImportError(\"cannot import name 'TFAutoModel' from 'transformers'\")\n")
    dist = root / "transformers-5.2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: transformers\nVersion: 5.2.0\n")
    return root


@pytest.mark.parametrize("tool", ["train", "evaluate", "export", "predict", "make_tfrecords", "report", "search"])
def test_every_command_stops_with_one_line_under_transformers_5(tool, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(_fake_transformers_5(tmp_path / "site")))
    args = {"train": ["--config", str(ROOT / "configs" / "sms_spam_minilm.yaml")],
            "predict": ["--saved-model", str(tmp_path), "a text"]}.get(tool, [])
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / f"{tool}.py"), *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: tfbert needs transformers>=4.57,<5 (TensorFlow classes); found 5.2.0: "
        "pip install 'transformers>=4.57,<5'"]


def test_version_guard_imports_nothing_heavy():
    code = ("import sys; from tfbert.compat import check_dependencies; check_dependencies(); "
            "print(sorted(m for m in ('tensorflow', 'transformers', 'tf_keras', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_setup_cfg_bounds_agree_with_the_guard_and_the_lock_file():
    """Upper bounds only where the README says why; the lock file satisfies every range; the guard checks the same."""
    import configparser

    from packaging.requirements import Requirement
    from packaging.version import Version

    from tfbert import compat

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = [line.strip() for line in parser["options"]["install_requires"].splitlines()]
    requirements = {r.name.lower(): r for r in (Requirement(line) for line in lines
                                                  if line and not line.startswith("#"))}
    lock = dict(line.strip().split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line)
    lock = {name.lower().replace("_", "-"): Version(v) for name, v in lock.items()}
    for name, requirement in requirements.items():
        assert lock[name] in requirement.specifier, (name, str(requirement.specifier), lock[name])
        capped = any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier)
        assert capped == (name in {"transformers", "huggingface-hub", "tokenizers", *compat.TENSORFLOW_FAMILY}), name
    for guarded in compat.REQUIREMENTS:
        assert str(requirements[guarded.package].specifier) == str(Requirement(guarded.spec).specifier)
    major, minor = compat.TENSORFLOW_RELEASE
    for name in compat.TENSORFLOW_FAMILY:
        family_range = Requirement(f"x>={major}.{minor},<{major}.{minor + 1}").specifier
        assert str(requirements[name].specifier) == str(family_range), name
