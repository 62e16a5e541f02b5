"""Every shipped recipe loads and builds: model, optimizer and tf.data pipeline.

Models that are not available offline (hub ids) are swapped for the tiny random BERT; data files
are cut to a small sample of the same file (or a synthetic file of the same format where the
recipe's data is not bundled) so the test stays fast.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA
from tfbert.config import load_config
from tfbert.experiment import build_experiment
from tfbert.pretrained import BUNDLED_PREFIX

RECIPES = sorted((ROOT / "configs").glob("*.yaml"))


def _prepare_data(config, tmp_path: Path) -> list[str]:
    """Overrides for recipes whose data a script derives from ../shared/data (SST-2's sentence split)."""
    if not str(config.data.train_file).startswith("data/sst2/"):
        return []
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the project")
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_sst2", ROOT / "scripts" / "prepare_sst2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "sst2"
    if not (out / "train.tsv").is_file():
        assert module.main(["--output", str(out)]) == 0
    return [f"data.train_file={out / 'train.tsv'}", f"data.validation_file={out / 'validation.tsv'}"]


def _sample(path: Path, tmp_path: Path, fmt: str, task: str) -> Path:
    out = tmp_path / f"sample-{path.name}"
    if not path.is_file():  # data the project does not ship (e.g. arXiv): same format, synthetic rows
        if task == "sequence_classification":
            rows = [f'"paper {i} about topic {i % 11}",{i % 11}' for i in range(165)]
            out = out.with_suffix(".csv")
            out.write_text("text,label\n" + "\n".join(rows) + "\n")
            return out
        raise AssertionError(f"no sample rule for missing {path}")
    if fmt == "squad" or path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        data["data"] = data["data"][:40]
        for article in data["data"]:
            article["paragraphs"] = article["paragraphs"][:1]
        out.write_text(json.dumps(data))
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    if fmt == "conll":
        cut = [i for i, l in enumerate(lines) if not l.strip()][40]
        out.write_text("\n".join(lines[:cut]) + "\n")
    else:
        out.write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    return out


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds(recipe, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes use paths relative to the project root
    config = load_config(recipe)
    overrides = [f"training.output_dir={tmp_path / 'run'}"]
    if not config.model.name_or_path.startswith(BUNDLED_PREFIX):
        overrides.append(f"model.name_or_path={tiny_model_dir}")
    if "../shared" in str(config.data.train_file) and not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the project")
    prepared = _prepare_data(config, tmp_path)
    if prepared:
        config = load_config(recipe, prepared)
    samples: dict[str, Path] = {}
    for key in ("train_file", "validation_file", "test_file"):
        value = getattr(config.data, key)
        if value:
            for path in [value] if isinstance(value, str) else value:
                if path not in samples:
                    samples[path] = _sample(Path(path), tmp_path, config.data.format, config.task.type)
            cut = samples[value] if isinstance(value, str) else f"[{', '.join(str(samples[p]) for p in value)}]"
            overrides.append(f"data.{key}={cut}")
    if config.task.type == "question_answering":
        overrides += ["data.train_articles=0-29", "data.validation_articles=30-35"]
    config = load_config(recipe, prepared + overrides)
    experiment = build_experiment(config)
    assert experiment.model.optimizer is not None
    features, labels = next(iter(experiment.train_dataset))
    assert features["input_ids"].shape[0] <= experiment.plan.global_batch_size
    out = experiment.model(features, training=False)
    assert out is not None


# ----------------------------------------------------------- every offline recipe ends with a useful model

def test_degenerate_check_catches_constant_and_baseline_models():
    from tfbert.evaluation.sanity import degenerate_reason

    def report(matrix):
        return {"confusion_matrix": {"labels": ["ham", "spam"], "matrix": matrix}}

    # The frozen-backbone seed before the fix: "ham" for all 1,115 test messages.
    assert degenerate_reason("sequence_classification", report([[966, 0], [149, 0]])) == \
        "predicts ham for every example (1115 of 1115)"
    # Both classes predicted, yet no better than always answering "ham" (0.866).
    assert "majority baseline 0.8664" in degenerate_reason("sequence_classification", report([[950, 16], [133, 16]]))
    assert degenerate_reason("sequence_classification", report([[960, 6], [10, 139]])) is None
    assert degenerate_reason("token_classification", {"f1": 0.0}) is not None
    assert degenerate_reason("token_classification", {"f1": 0.31}) is None
    assert degenerate_reason("question_answering", {"f1": 0.0}) is not None
    assert degenerate_reason("question_answering", {"f1": 42.0}) is None


#: Optimizer updates per offline recipe: enough for a model that works to show it on 2 CPU cores.
BRIEF_STEPS = {"sms_spam_minilm": 40, "seed_sms_spam_frozen_backbone": 60, "ag_news_minilm": 60, "sst2_minilm": 100,
               "wnut17_ner_minilm": 150, "wnut17_ner_minilm_dev": 150, "squad_qa_minilm": 60,
               # one epoch: a quarter epoch learns only neutral, a constant guess (docs/benchmarks.md)
               "goemotions_minilm": 1229}
OFFLINE = [r for r in RECIPES if r.stem in BRIEF_STEPS]


def test_every_offline_recipe_has_a_brief_step_count():
    offline = {r.stem for r in RECIPES if load_config(r).model.name_or_path.startswith(BUNDLED_PREFIX)}
    assert offline == set(BRIEF_STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", OFFLINE, ids=lambda p: p.stem)
def test_recipe_trains_a_model_better_than_a_constant_guess(recipe, tmp_path, monkeypatch):
    """Each offline recipe, trained briefly (`BRIEF_STEPS` updates, its own settings otherwise), must
    predict more than one class and beat the majority baseline on its evaluation split."""
    from tfbert.evaluation.sanity import degenerate_reason
    from tfbert.training.trainer import train

    monkeypatch.chdir(ROOT)
    config = load_config(recipe)
    if "../shared" in str(config.data.train_file) and not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the project")
    prepared = _prepare_data(config, tmp_path)
    config = load_config(recipe, prepared + [f"training.output_dir={tmp_path / 'run'}", f"training.max_steps={BRIEF_STEPS[recipe.stem]}",
                                  "export.at_end=false", "training.tensorboard=false", "training.verbose=0"])
    train(config, log=lambda *_: None)
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    reason = degenerate_reason(config.task.type, report)
    assert reason is None, f"{recipe.stem}: {reason}"


def test_sst2_split_holds_out_whole_sentences_and_their_phrases(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_sst2", ROOT / "scripts" / "prepare_sst2.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    sentences = [f"film number {i} is a fine piece of work" for i in range(6)] + ["a dull and tired movie"]
    phrases = ["fine piece", "a fine piece of work", "dull", "tired movie", "number 3", "work of art"]
    rows = [(p, str(i % 2)) for i, p in enumerate(sentences + phrases)]
    train, held = prepare.split(rows, held_out=3, min_words=5, seed=1)
    assert len(held) == 3 and all(s in sentences for s, _ in held)  # only whole, maximal sentences
    train_text = {p for p, _ in train}
    for sentence, _ in held:
        assert not prepare.contained_phrases(sentence, train_text)  # no training row inside a held-out one
    assert "work of art" in train_text  # phrases of no held-out sentence stay
    # "number 3" stays exactly when sentence 3 was not held out
    assert ("number 3" in train_text) == ("film number 3 is a fine piece of work" not in dict(held))
