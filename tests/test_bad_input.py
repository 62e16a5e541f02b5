"""Bad-input catalogue (issue 9): config and data files.

Every bad case runs the train command in-process and must end with exit code 2, exactly one
stderr line ``error: ...`` that names the file and row/line (or the config key), no traceback, and
no ``training.output_dir`` left behind. A UTF-8 BOM, CRLF line ends and a 1 MB text must simply
train. A few cases run ``tools/train.py`` in a real process to show no traceback reaches a
terminal.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Union

import pytest

from tests.conftest import write_spam_tsv
from tfbert.cli import common
from tfbert.cli import train as train_cli

ROOT = Path(__file__).resolve().parents[1]

# A case gets a temporary directory and returns (extra command-line arguments, stderr regex).
Case = Callable[[Path], tuple[list[str], str]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn
    return register


def write(tmp: Path, name: str, content: Union[str, bytes]) -> Path:
    path = tmp / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def f(path: Path) -> str:
    """The regex for a file name as messages print it."""
    return re.escape(str(path))


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def base_args(model_dir: Path, tmp: Path) -> list[str]:
    """The tiny model on a small headerless spam TSV; 1 epoch, no export (fast)."""
    train = write_spam_tsv(tmp / "spam.tsv")
    return sets(
        f"model.name_or_path={model_dir}", f"data.train_file={train}", "data.has_header=false",
        "data.column_names=[label, text]", "data.max_seq_length=16", f"data.cache_dir={tmp / 'cache'}",
        "training.num_train_epochs=1", "training.per_device_train_batch_size=8", "training.verbose=0",
        "training.tensorboard=false", "export.at_end=false", f"training.output_dir={tmp / 'run'}",
    )


CSV_HEADER = sets("data.has_header=true", "data.column_names=null")
NER = sets("task.type=token_classification", "data.format=auto", "training.metric_for_best_model=loss")
QA = sets("task.type=question_answering", "data.format=squad", "data.max_seq_length=64", "data.doc_stride=16",
          "data.max_query_length=16", "training.metric_for_best_model=loss")


def train_file(path: Path, *more: str) -> list[str]:
    return sets(f"data.train_file={path}", *more)


# --------------------------------------------------------------------------------------- config

@case("config_missing")
def _(tmp):
    path = tmp / "none.yaml"
    return ["--config", str(path)], rf"^error: {f(path)}: config file not found$"


@case("yaml_syntax")
def _(tmp):
    path = write(tmp, "bad.yaml", "training:\n  seed: 1\n   bad: [\n")
    return ["--config", str(path)], rf"^error: {f(path)}, line 3: not valid YAML \(.+ at column 7\)$"


@case("yaml_not_utf8")
def _(tmp):
    path = write(tmp, "bad.yaml", b"training:\n  output_dir: caf\xe9\n")
    return ["--config", str(path)], rf"^error: {f(path)}, line 2: not valid UTF-8"


@case("yaml_unknown_key")
def _(tmp):
    path = write(tmp, "bad.yaml", "training:\n  epochs: 3\n")
    return ["--config", str(path)], (rf"^error: {f(path)}: unknown config key 'training\.epochs' "
                                     r"\(did you mean 'num_train_epochs'\?\)")


@case("set_unknown_section")
def _(tmp):
    return sets("trainig.seed=1"), r"^error: unknown config key 'trainig' \(did you mean 'training'\?\)"


@case("yaml_wrong_type")
def _(tmp):
    path = write(tmp, "bad.yaml", "optimizer:\n  learning_rate: fast\n")
    return ["--config", str(path)], rf"^error: {f(path)}: config key 'optimizer\.learning_rate': expected a number, got 'fast'$"


@case("yaml_section_not_mapping")
def _(tmp):
    path = write(tmp, "bad.yaml", "training: 3\n")
    return ["--config", str(path)], rf"^error: {f(path)}: config key 'training': expected a mapping, got 3$"


@case("wrong_type_int")
def _(tmp):
    return (sets("training.per_device_train_batch_size=eight"),
            r"^error: config key 'training\.per_device_train_batch_size': expected an integer, got 'eight'$")


@case("wrong_type_bool")
def _(tmp):
    return sets("data.has_header=maybe"), r"^error: config key 'data\.has_header': expected true or false, got 'maybe'$"


@case("wrong_type_list")
def _(tmp):
    return sets("data.labels=spam"), r"^error: config key 'data\.labels': expected a list, got 'spam'$"


@case("value_not_allowed")
def _(tmp):
    return (sets("data.padding=longest"),
            r"^error: config key 'data\.padding': 'longest' is not allowed; expected one of 'bucket', 'dynamic', 'max_length', 'packed'$")


@case("range_learning_rate")
def _(tmp):
    return sets("optimizer.learning_rate=-1"), r"^error: config key 'optimizer\.learning_rate': must be > 0$"


@case("range_not_finite")
def _(tmp):
    return sets("optimizer.learning_rate=.inf"), r"^error: config key 'optimizer\.learning_rate': expected a finite number"


@case("range_max_seq_length")
def _(tmp):
    return sets("data.max_seq_length=4"), r"^error: config key 'data\.max_seq_length': must be >= 8, got 4$"


@case("range_split")
def _(tmp):
    return sets("data.validation_split=1.5"), r"^error: config key 'data\.validation_split': must be in \[0, 1\)$"


@case("range_seed")
def _(tmp):
    return sets("training.seed=-1"), r"^error: config key 'training\.seed': must be in \[0, 2\*\*32\), got -1$"


@case("range_num_labels")
def _(tmp):
    return sets("task.num_labels=1"), r"^error: config key 'task\.num_labels': must be >= 2$"


@case("max_seq_length_beyond_positions")
def _(tmp):
    return (sets("data.max_seq_length=1024"),
            r"^error: config key 'data\.max_seq_length': 1024 exceeds the model's 512 position embeddings$")


@case("splits_leave_no_training_data")
def _(tmp):
    return (sets("data.validation_split=0.5", "data.test_split=0.49"),
            rf"^error: config key 'data\.validation_split': splitting 24 of the 24 remaining rows of "
            rf"{f(tmp / 'spam.tsv')} off as the validation set leaves 0 training rows for 2 labels")


@case("split_smaller_than_labels")
def _(tmp):
    return (sets("data.validation_split=0.01"),
            rf"^error: config key 'data\.validation_split': the validation set would hold 1 of the 48 rows of "
            rf"{f(tmp / 'spam.tsv')}, fewer than its 2 labels")


@case("no_data_files")
def _(tmp):
    return sets("data.train_file=null"), r"^error: config key 'data\.train_file': no data files configured$"


# --------------------------------------------------------------------------------------- classification data

@case("missing_validation_file")
def _(tmp):
    path = tmp / "nope.tsv"
    return sets(f"data.validation_file={path}"), rf"^error: {f(path)}: data file not found$"


@case("empty_file")
def _(tmp):
    path = write(tmp, "empty.tsv", "")
    return train_file(path), rf"^error: {f(path)}: the file is empty$"


@case("header_only")
def _(tmp):
    path = write(tmp, "head.csv", "label,text\n")
    return train_file(path) + CSV_HEADER, rf"^error: {f(path)}: no data rows after the header$"


@case("blank_line_between_rows")
def _(tmp):
    path = write(tmp, "blank.tsv", "ham\thello there\nspam\tWIN now\n\nham\tsee you\nspam\tfree prize\n")
    return train_file(path), rf"^error: {f(path)}, line 3: blank line between rows"


@case("binary_garbage")
def _(tmp):
    path = write(tmp, "data.tsv", gzip.compress(b"ham\thello\n" * 50, mtime=0))
    return train_file(path), rf"^error: {f(path)}, line 1: NUL byte at column 4; this looks like a binary file"


@case("not_utf8")
def _(tmp):
    path = write(tmp, "latin1.csv", "label,text\nham,hello\nham,caf\xe9 au lait\n".encode("latin-1"))
    return (train_file(path) + CSV_HEADER,
            rf"^error: {f(path)}, line 3: not valid UTF-8 \(byte 0xe9 at column 8\); re-encode the file as UTF-8$")


@case("utf16")
def _(tmp):
    path = write(tmp, "wide.tsv", "ham\thello\nspam\tWIN\n".encode("utf-16"))
    return train_file(path), rf"^error: {f(path)}: the file is UTF-16 .*re-encode it as UTF-8$"


@case("ragged_extra_column")
def _(tmp):
    path = write(tmp, "ragged.tsv", "ham\thello\nspam\tWIN now\nham\tsee\tyou\nspam\tfree\n")
    return (train_file(path),
            rf"^error: {f(path)}, row 3: 3 columns, expected 2 \(label, text\); a tab inside a text splits it")


@case("ragged_missing_column")
def _(tmp):
    path = write(tmp, "ragged.tsv", "ham\thello\nspam WIN now\nham\tsee you\n")
    return train_file(path), rf"^error: {f(path)}, row 2: 1 column, expected 2 \(label, text\)$"


@case("ragged_csv_with_header")
def _(tmp):
    path = write(tmp, "ragged.csv", 'label,text\nham,"hello, there"\nspam,WIN,now\n')
    return train_file(path) + CSV_HEADER, rf"^error: {f(path)}, row 2: 3 columns, expected 2 \(label, text\)$"


@case("empty_text_cell")
def _(tmp):
    path = write(tmp, "cells.csv", 'label,text\nham,hello\nspam,""\n')
    return train_file(path) + CSV_HEADER, rf"^error: {f(path)}, row 2: empty text in column 'text'$"


@case("empty_label_cell")
def _(tmp):
    path = write(tmp, "cells.tsv", "ham\thello\nspam\tWIN now\n\tno label here\n")
    return train_file(path), rf"^error: {f(path)}, row 3: empty label in column 'label'$"


@case("jsonl_missing_text")
def _(tmp):
    path = write(tmp, "rows.jsonl", '{"label": "ham", "text": "hi"}\n{"label": "spam"}\n')
    return train_file(path), rf"^error: {f(path)}, row 2: no text in column 'text' \(missing or null\)$"


@case("jsonl_missing_label")
def _(tmp):
    rows = [{"label": "ham", "text": "hi"}, {"label": "spam", "text": "win"}, {"label": None, "text": "x"}]
    path = write(tmp, "rows.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    return train_file(path), rf"^error: {f(path)}, row 3: no label in column 'label' \(missing or null\)$"


@case("json_label_not_a_value")
def _(tmp):
    path = write(tmp, "rows.json", json.dumps([{"label": ["ham", "spam"], "text": "hi"}, {"label": "ham", "text": "yo"}]))
    return train_file(path), rf"^error: {f(path)}, row 1: label \['ham', 'spam'\] in column 'label' is not a single value$"


@case("one_class_only")
def _(tmp):
    path = write(tmp, "ham.tsv", "ham\thello\nham\tsee you\nham\tok\n")
    return train_file(path), rf"^error: {f(path)}: column 'label' has only one label \['ham'\]$"


@case("labels_disagree_with_data_labels")
def _(tmp):
    return (sets("data.labels=[ham, eggs]"),
            rf"^error: {f(tmp / 'spam.tsv')}, row 1: unknown label 'spam' in column 'label'; expected one of \['ham', 'eggs'\]$")


@case("labels_disagree_with_num_labels")
def _(tmp):
    return (sets("task.num_labels=3"),
            rf"^error: config key 'task\.num_labels': 3 disagrees with the 2 labels found in {f(tmp / 'spam.tsv')}")


@case("jsonl_broken_line")
def _(tmp):
    path = write(tmp, "rows.jsonl", '{"label": "ham", "text": "hi"}\n{"label": "spam", "text": "win"\n'
                                    '{"label": "ham", "text": "yo"}\n')
    return train_file(path), rf"^error: {f(path)}, line 2: not valid JSON \(.+ at column \d+\)$"


@case("json_broken")
def _(tmp):
    path = write(tmp, "rows.json", '[\n  {"label": "ham", "text": "hi"},\n  {"label": "spam" "text": "win"}\n]\n')
    return train_file(path), rf"^error: {f(path)}, line 3: not valid JSON \(.+ at column \d+\)$"


@case("jsonl_row_not_an_object")
def _(tmp):
    path = write(tmp, "rows.jsonl", '{"label": "ham", "text": "hi"}\n["spam", "win"]\n')
    return train_file(path), rf"^error: {f(path)}, line 2: expected a JSON object, got a list$"


@case("unknown_suffix")
def _(tmp):
    path = write(tmp, "rows.xlsx", "ham\thello\n")
    return train_file(path), rf"^error: {f(path)}: cannot tell the format from the suffix '\.xlsx'"


@case("jsonl_missing_column")
def _(tmp):
    path = write(tmp, "rows.jsonl", '{"label": "ham", "sentence": "hi"}\n{"label": "spam", "sentence": "win"}\n')
    return train_file(path), rf"^error: {f(path)}: no column 'text'; the file has columns \['label', 'sentence'\]$"


# --------------------------------------------------------------------------------------- NER (CoNLL, JSON)

@case("conll_tag_outside_scheme")
def _(tmp):
    path = write(tmp, "ner.conll", "New\tB-LOC\nYork\tE-LOC\nrocks\tO\n")
    return (NER + train_file(path),
            rf"^error: {f(path)}, line 2 \('York'\): tag 'E-LOC' is not valid in the IOB2 scheme \(expected O or B/I-TYPE\)$")


@case("conll_not_a_tag")
def _(tmp):
    path = write(tmp, "ner.conll", "Ada\tB-PER\nLovelace\tI-PER\n\nin\tO\nLondon\tLOCATION\n")
    return NER + train_file(path), rf"^error: {f(path)}, line 5 \('London'\): tag 'LOCATION' is not valid"


@case("conll_wrong_number_of_columns")
def _(tmp):
    path = write(tmp, "ner.conll", "Ada NNP B-PER\nLovelace NNP I-PER\nwrote O\n")
    return (NER + train_file(path),
            rf"^error: {f(path)}, line 3: 2 columns, but the first token line \(line 1\) has 3")


@case("conll_one_column")
def _(tmp):
    path = write(tmp, "ner.conll", "Ada\tB-PER\nLovelace\n")
    return NER + train_file(path), rf"^error: {f(path)}, line 2: expected 'token<TAB>tag', got 'Lovelace'$"


@case("ner_jsonl_broken_line")
def _(tmp):
    path = write(tmp, "ner.jsonl", '{"tokens": ["Ada"], "tags": ["B-PER"]}\n{"tokens": ["x"], "tags": ["O"]\n')
    return NER + train_file(path), rf"^error: {f(path)}, line 2: not valid JSON \(.+ at column \d+\)$"


@case("ner_tag_not_in_data_labels")
def _(tmp):
    path = write(tmp, "ner.conll", "Ada\tB-PER\nin\tO\nParis\tB-LOC\n")
    return (NER + train_file(path, "data.labels=[O, B-PER, I-PER]"),
            rf"^error: {f(path)}, line 3 \('Paris'\): unknown tag 'B-LOC'; expected one of \['O', 'B-PER', 'I-PER'\]$")


@case("ner_only_outside_tags")
def _(tmp):
    path = write(tmp, "ner.conll", "nothing\tO\nhere\tO\n")
    return NER + train_file(path), rf"^error: {f(path)}: every tag is 'O'"


@case("ner_empty_file")
def _(tmp):
    path = write(tmp, "ner.conll", "\n\n")
    return NER + train_file(path), rf"^error: {f(path)}: the file is empty$"


# --------------------------------------------------------------------------------------- SQuAD

def squad(tmp: Path, mutate: Callable[[dict], None]) -> Path:
    doc = {"data": [{"title": "T", "paragraphs": [{
        "context": "Ada Lovelace wrote the first program.",
        "qas": [{"id": "q1", "question": "Who wrote it?", "answers": [{"text": "Ada Lovelace", "answer_start": 0}]}],
    }]}]}
    mutate(doc)
    return write(tmp, "squad.json", json.dumps(doc, indent=1))


def _qa(doc: dict) -> dict:
    return doc["data"][0]["paragraphs"][0]["qas"][0]


@case("squad_answer_start_mismatch")
def _(tmp):
    path = squad(tmp, lambda d: _qa(d)["answers"][0].update(answer_start=3))
    return QA + train_file(path), rf"^error: {f(path)}, question q1, answer 1: answer_start 3 does not point at 'Ada Lovelace'"


@case("squad_missing_data")
def _(tmp):
    path = write(tmp, "squad.json", json.dumps({"version": "1.1"}))
    return QA + train_file(path), rf"^error: {f(path)}: missing 'data'$"


@case("squad_missing_question")
def _(tmp):
    path = squad(tmp, lambda d: _qa(d).pop("question"))
    return QA + train_file(path), rf"^error: {f(path)}, question q1: 'question' is missing$"


@case("squad_missing_answers")
def _(tmp):
    path = squad(tmp, lambda d: _qa(d).pop("answers"))
    return QA + train_file(path), rf"^error: {f(path)}, question q1: missing 'answers'$"


@case("squad_empty_context")
def _(tmp):
    path = squad(tmp, lambda d: d["data"][0]["paragraphs"][0].update(context="  "))
    return QA + train_file(path), rf"^error: {f(path)}, article 0 \(T\), paragraph 0: empty 'context'$"


@case("squad_broken_json")
def _(tmp):
    path = write(tmp, "squad.json", '{"data": [\n  {"title": "T",\n   "paragraphs": [}\n]}\n')
    return QA + train_file(path), rf"^error: {f(path)}: not JSON \(.+ at line 3, column \d+\)$"


# --------------------------------------------------------------------------------------- output

@case("output_dir_is_a_file")
def _(tmp):
    path = write(tmp, "run.txt", "not a directory\n")
    return sets(f"training.output_dir={path}"), rf"^error: config key 'training\.output_dir': {f(path)} is a file, not a directory$"


@case("output_dir_below_a_file")
def _(tmp):
    blocker = write(tmp, "blocker", "a file\n")
    path = blocker / "runs" / "run"
    return sets(f"training.output_dir={path}"), (rf"^error: config key 'training\.output_dir': cannot create {f(path)}: "
                                                 rf"{f(blocker)} is a file$")


@case("output_dir_not_writable")
def _(tmp):
    # Root ignores permission bits; /sys is read-only for everyone, root included.
    path = Path("/sys/tfbert-run")
    return sets(f"training.output_dir={path}"), (rf"^error: config key 'training\.output_dir': cannot (create|write to) "
                                                 rf"{f(path)}")


@case("output_dir_holds_other_files")
def _(tmp):
    other = tmp / "mine"
    other.mkdir()
    write(other, "notes.txt", "keep me\n")
    return sets(f"training.output_dir={other}"), (rf"^error: config key 'training\.output_dir': {f(other)} already "
                                                  r"holds files that are not a tfbert run; choose another directory")


# --------------------------------------------------------------------------------------- the tests

def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tiny_model_dir, tmp_path, capsys):
    extra, pattern = CASES[name](tmp_path)
    argv = base_args(tiny_model_dir, tmp_path) + extra
    capsys.readouterr()
    code = common.run(train_cli.main, argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = error_lines(err)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"
    # Checked last: the output directory must not be made before data and model have loaded.
    assert not (tmp_path / "run").exists(), "a failing run left training.output_dir behind"


def test_catalogue_registers_every_case_once():
    """A name registered twice would silently replace the first case: one entry per ``@case``."""
    decorated = re.findall(r'^@case\("([^"]+)"\)', Path(__file__).read_text(encoding="utf-8"), re.MULTILINE)
    assert len(decorated) == len(set(decorated)) == len(CASES)
    assert sorted(decorated) == sorted(CASES)


@pytest.mark.parametrize("name", ["utf8_bom", "crlf", "one_megabyte_text"])
def test_awkward_but_valid_files_train(name, tiny_model_dir, tmp_path, capsys):
    lines = [f"spam\t{t}" for t in ("WIN a FREE prize now", "URGENT claim your cash", "free entry txt WIN")] * 4
    lines += [f"ham\t{t}" for t in ("see you at lunch", "I'll call you later", "did you finish the report")] * 4
    if name == "one_megabyte_text":
        lines[0] = "spam\t" + ("win free cash now " * 60_000)[:1_000_000]
    text = ("\r\n" if name == "crlf" else "\n").join(lines) + ("\r\n" if name == "crlf" else "\n")
    raw = text.encode("utf-8")
    if name == "utf8_bom":
        raw = b"\xef\xbb\xbf" + raw
    path = write(tmp_path, "data.tsv", raw)
    if name == "one_megabyte_text":
        assert path.stat().st_size > 1_000_000
    argv = base_args(tiny_model_dir, tmp_path) + train_file(path, "data.validation_split=0.25",
                                                            "training.load_best_model_at_end=false")
    code = common.run(train_cli.main, argv)
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "run"
    evaluation = json.loads((out / "eval_results.json").read_text())
    assert evaluation["split"] == "validation" and evaluation["num_examples"] == 6, evaluation
    # A BOM left in the first label, or a CR in the last column, would make extra classes.
    labels = json.loads((out / "model" / "config.json").read_text())["id2label"]
    assert sorted(labels.values()) == ["ham", "spam"], labels


def test_iob2_i_tag_starting_an_entity_is_read_as_b(tiny_model_dir, tmp_path, caplog):
    """The IOB2 decision: repaired as seqeval reads it (I-X after O/another type starts an entity)."""
    from tfbert.config import load_config
    from tfbert.tasks import get_task
    from transformers import AutoTokenizer

    path = write(tmp_path, "ner.conll", "in\tO\nNew\tI-LOC\nYork\tI-LOC\nAda\tI-PER\n\nParis\tB-LOC\n")
    config = load_config(None, ["task.type=token_classification", f"data.train_file={path}"])
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    with caplog.at_level(logging.WARNING):
        data = get_task("token_classification").load_data(config, tokenizer, 0)
    sentences = data.extras["train"]["sentences"]
    assert sentences[0].tags == ["O", "B-LOC", "I-LOC", "B-PER"]
    assert sentences[1].tags == ["B-LOC"]
    assert data.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"{path}: read 2 'I-' tag(s)" in warnings[0] and "line 2 ('New')" in warnings[0]


def test_trailing_blank_lines_are_fine(tmp_path):
    from tfbert.config import DataConfig
    from tfbert.data.readers import read_table

    path = write(tmp_path, "data.tsv", "ham\thello\nspam\tWIN\n\n\n")
    dataset = read_table(path, DataConfig(has_header=False, column_names=["label", "text"],
                                          cache_dir=str(tmp_path / "cache")))
    assert dataset["label"] == ["ham", "spam"]


# --------------------------------------------------------------------------------------- a real terminal

SUBPROCESS_CASES = ["yaml_syntax", "ragged_extra_column", "conll_tag_outside_scheme"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_no_traceback_reaches_a_terminal(name, tiny_model_dir, tmp_path):
    extra, pattern = CASES[name](tmp_path)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), *base_args(tiny_model_dir, tmp_path), *extra],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    # TensorFlow's C++ start-up lines (e.g. cuInit) cannot be silenced; ours is the one error line, last.
    errors = [line for line in error_lines(result.stderr) if line.startswith("error:")]
    assert len(errors) == 1 and error_lines(result.stderr)[-1] == errors[0], result.stderr[-3000:]
    assert re.search(pattern, errors[0]), errors[0]
    assert not (tmp_path / "run").exists()
