"""Every task type learns: the tiny seeded BERT overfits a small fixed set to a stated floor.

A test that only checks metric keys and a finite loss passes for a head that learns nothing, a
label alignment that is one token off, or a span decoder that swaps start and end. Here each
registered task type (found through the registry, so a task added later cannot skip this) trains
the tiny BERT of ``conftest.py`` (2 layers, 32 wide, seeded weights, dropout off) for a fixed
number of updates on 24–32 examples, in every padding mode it supports (``packed`` and the
default ``bucket``), and is evaluated on those same examples through the task's own evaluation
(`Task.evaluate`: the decoding, alignment and thresholds users get). The floors were set from
measured runs (each `LEARNING` entry's comment gives the numbers) with a margin for other CPUs'
float rounding, and checked against one plausible bug per head, each made once (outside the tree:
a pytest plugin patching the function, or the source edited in a copy) to see this test fail:

- QA start and end logits swapped when answers are decoded: EM 43.75 (one-token answers survive)
  in both padding modes, under the floor of 80;
- NER labels one token off (each word's tag on the token after its first piece): entity F1 0.0
  in both modes (the model learns the shifted labels perfectly, loss 0.002, and every entity is
  read from the wrong word);
- multi-label threshold tuning keeping the worst candidate instead of the best: micro F1 0.80,
  under the floor of 0.9; every label's threshold fixed at 0.99 instead: micro F1 0.67;
- regression scores negated when evaluated: Spearman -0.99 in both modes, under the floor of 0.9.

Everything is seeded (``training.seed``, the model's weights, `conftest._deterministic`), so a run
gives the same number every time on one machine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import save_tiny_bert

TOPICS = {
    "sports": ["the striker scored twice in the final minutes", "our team won the league after a long season",
               "she ran the marathon in under three hours", "the coach praised the young goalkeeper",
               "tennis fans filled the stadium for the match", "he broke the world record in the pool",
               "the referee showed a red card to the defender", "the cyclists climbed the mountain stage",
               "basketball practice starts at six tonight", "the boxer won the title by knockout"],
    "weather": ["heavy rain is expected all weekend", "a cold front brings snow to the hills",
                "the afternoon will be sunny and warm", "strong winds knocked down several trees",
                "fog covered the valley this morning", "temperatures will drop below freezing tonight",
                "a thunderstorm rolled in after lunch", "the forecast says clear skies tomorrow",
                "humid air makes the heat feel worse", "light drizzle turned into a steady downpour"],
    "food": ["this soup needs a pinch more salt", "we baked fresh bread with rosemary",
             "the curry was spicy and full of flavour", "add the butter and stir until it melts",
             "grilled fish with lemon is my favourite dinner", "the chocolate cake was rich and moist",
             "slice the onions and fry them gently", "pasta with garlic and olive oil is quick to make",
             "the salad had tomatoes basil and mozzarella", "breakfast was pancakes with maple syrup"],
}


def topic_rows() -> list[tuple[str, str]]:
    """30 sentences, 10 per topic, interleaved: (text, label)."""
    return [(TOPICS[topic][i], topic) for i in range(10) for topic in TOPICS]


def pair_rows() -> list[tuple[str, str, str]]:
    """32 sentence pairs: ``same`` when both are on one topic, ``different`` otherwise (half each).

    Neither sentence alone says the label, so the model must read both segments together.
    """
    names = list(TOPICS)
    rows = []
    for i in range(16):
        a, b = names[i % 3], names[(i + 1 + i // 3 % 2) % 3]
        rows.append((TOPICS[a][i % 10], TOPICS[a][(i + 3) % 10], "same"))
        rows.append((TOPICS[a][(i + 5) % 10], TOPICS[b][(i + 7) % 10], "different"))
    return rows


PEOPLE = ["Maria Lopez", "John", "Akira Tanaka", "Ángela Merkel", "Tom Brady", "Priya", "Lars Olsen", "Chen Wei"]
PLACES = ["Paris", "New York", "Tokyo", "Berlin", "Lagos", "São Paulo", "Oslo", "Cape Town"]
NER_TEMPLATES = [
    "{per} lives in {loc} with two cats", "yesterday {per} flew to {loc}", "in {loc} , {per} opened a bakery",
    "{per} said the trip to {loc} was long",
]


def ner_rows() -> list[dict]:
    """32 sentences (4 templates x 8), each with one person and one place, IOB2 tags per word."""
    rows = []
    for t, template in enumerate(NER_TEMPLATES):
        for i in range(8):
            per, loc = PEOPLE[(i + t) % 8], PLACES[(i + 3 * t) % 8]
            tokens, tags = [], []
            for piece in template.split():
                if piece in ("{per}", "{loc}"):
                    words = (per if piece == "{per}" else loc).split()
                    kind = "PER" if piece == "{per}" else "LOC"
                    tokens += words
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
                else:
                    tokens.append(piece)
                    tags.append("O")
            rows.append({"tokens": tokens, "tags": tags})
    return rows


QA_CONTEXTS = [
    ("The Amazon river flows through Brazil and Peru. It carries more water than any other river. "
     "Explorers first mapped its mouth in 1500.",
     [("Which countries does the Amazon flow through?", "Brazil and Peru"),
      ("What carries more water than any other river?", "The Amazon river"),
      ("When was its mouth first mapped?", "1500"), ("Who first mapped its mouth?", "Explorers")]),
    ("Marie Curie was born in Warsaw. She won the Nobel Prize in physics in 1903 and in chemistry in 1911.",
     [("Where was Marie Curie born?", "Warsaw"), ("When did she win the prize in physics?", "1903"),
      ("When did she win the prize in chemistry?", "1911"), ("What prize did she win?", "the Nobel Prize")]),
    ("The bakery on Elm Street opens at seven. It sells sourdough bread, cinnamon rolls and strong coffee.",
     [("Where is the bakery?", "on Elm Street"), ("When does the bakery open?", "at seven"),
      ("What bread does it sell?", "sourdough bread"), ("What drink does it sell?", "strong coffee")]),
    ("Mount Kilimanjaro is in Tanzania. Its summit, Uhuru Peak, is 5895 metres high and covered in ice.",
     [("Which country is Kilimanjaro in?", "Tanzania"), ("What is the summit called?", "Uhuru Peak"),
      ("How high is the summit?", "5895 metres"), ("What covers the summit?", "ice")]),
    ("The violinist Anna Berg gave a concert in Vienna on Friday. She played two sonatas by Brahms.",
     [("Who gave the concert?", "Anna Berg"), ("Where was the concert?", "Vienna"),
      ("When was the concert?", "on Friday"), ("Whose sonatas did she play?", "Brahms")]),
    ("Our train leaves platform four at noon and reaches Glasgow after five hours.",
     [("Which platform does the train leave?", "platform four"), ("When does the train leave?", "at noon"),
      ("Where does the train go?", "Glasgow"), ("How long is the trip?", "five hours")]),
    ("The library lends books, maps and old newspapers. Members pay twenty dollars a year.",
     [("What does the library lend?", "books, maps and old newspapers"), ("Who pays?", "Members"),
      ("How much do members pay?", "twenty dollars a year"), ("What old things can you borrow?", "newspapers")]),
    ("Jupiter is the largest planet. It has a great red spot, a storm bigger than Earth.",
     [("Which planet is the largest?", "Jupiter"), ("What is the great red spot?", "a storm bigger than Earth"),
      ("What colour is the spot?", "red"), ("What is the storm bigger than?", "Earth")]),
]


def squad_json(path: Path) -> Path:
    """32 questions over 8 short contexts, SQuAD v1.1 layout (one article per context)."""
    data = []
    for k, (context, questions) in enumerate(QA_CONTEXTS):
        qas = [{"id": f"c{k}q{i}", "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
               for i, (q, a) in enumerate(questions)]
        data.append({"title": f"article {k}", "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path


MULTI_LABEL_ROWS = [
    ("what a wonderful happy day", ["joy"]), ("i love you so much my dear", ["love"]),
    ("i am furious about the broken promise", ["anger"]), ("the meeting is at ten tomorrow", []),
    ("happy birthday my love", ["joy", "love"]), ("i hate this stupid traffic", ["anger"]),
    ("we laughed all evening at the party", ["joy"]), ("she adores her little brother", ["love"]),
    ("so annoyed that the bus is late again", ["anger"]), ("please send the report by friday", []),
    ("our wedding day was pure joy and love", ["joy", "love"]), ("angry and hurt that you lied to me", ["anger"]),
    ("the sunshine makes me cheerful", ["joy"]), ("hugs and kisses to my sweetheart", ["love"]),
    ("this rude waiter makes me mad", ["anger"]), ("the train departs from platform two", []),
    ("thrilled and grateful for my friends", ["joy", "love"]), ("i am livid about the parking fine", ["anger"]),
    ("dancing in the rain feels great", ["joy"]), ("i cherish every moment with you", ["love"]),
    ("stop shouting at me it makes me angry", ["anger"]), ("the printer is on the second floor", []),
    ("so glad you came home my darling", ["joy", "love"]), ("furious that my package was lost", ["anger"]),
    ("we won the lottery how exciting", ["joy"]), ("my heart belongs to you forever", ["love"]),
    ("annoying neighbours played loud music all night", ["anger"]), ("the store closes at nine", []),
    ("delighted to hold my newborn daughter", ["joy", "love"]), ("outraged by the unfair decision", ["anger"]),
    ("i love puppies they make me happy", ["joy", "love"]), ("the form needs your signature", []),
]


@dataclass(frozen=True)
class Learning:
    """How one task type shows it learns: its data, its config, the metric and the floor it must reach."""

    #: writes the training file(s) into a directory and returns the config overrides that read them
    data: Callable[[Path], list[str]]
    #: the key of the evaluation report that is checked
    metric: str
    #: the floor that metric must reach after `steps` updates
    floor: float
    steps: int
    learning_rate: float
    max_seq_length: int


def _sequence(directory: Path) -> list[str]:
    path = directory / "topics.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in topic_rows()), encoding="utf-8")
    return [f"data.train_file={path}", f"data.validation_file={path}"]


def _pairs(directory: Path) -> list[str]:
    path = directory / "pairs.tsv"
    path.write_text("text\tpair\tlabel\n" + "".join(f"{a}\t{b}\t{l}\n" for a, b, l in pair_rows()), encoding="utf-8")
    return [f"data.train_file={path}", f"data.validation_file={path}", "data.text_pair_column=pair"]


def _ner(directory: Path) -> list[str]:
    path = directory / "ner.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ner_rows()), encoding="utf-8")
    return ["task.type=token_classification", f"data.train_file={path}", f"data.validation_file={path}"]


def _qa(directory: Path) -> list[str]:
    path = squad_json(directory / "squad.json")
    return ["task.type=question_answering", f"data.train_file={path}", f"data.validation_file={path}",
            "data.doc_stride=32", "data.max_query_length=16", "task.max_answer_length=12"]


def _multi_label(directory: Path) -> list[str]:
    path = directory / "emotions.tsv"
    path.write_text("text\tlabels\n" + "".join(f"{t}\t{','.join(l)}\n" for t, l in MULTI_LABEL_ROWS),
                    encoding="utf-8")
    return ["task.type=multi_label_classification", f"data.train_file={path}", f"data.validation_file={path}",
            "data.label_column=labels"]


def regression_rows() -> list[tuple[str, str, float]]:
    """The 32 topic pairs scored 0-5: one topic 3.0-4.75, two topics 0.0-1.75, a step of 0.25 by position.

    Telling the two groups apart reads both segments (Spearman about 0.75 with the order inside each
    group left to chance); the order inside a group is each pair's own, so a floor above that needs
    the scores themselves learned.
    """
    return [(a, b, (3.0 if label == "same" else 0.0) + 0.25 * (i % 8)) for i, (a, b, label) in enumerate(pair_rows())]


def _regression(directory: Path) -> list[str]:
    path = directory / "scores.tsv"
    path.write_text("text\tpair\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in regression_rows()),
                    encoding="utf-8")
    return ["task.type=text_regression", f"data.train_file={path}", f"data.validation_file={path}",
            "data.text_pair_column=pair", "data.label_column=score"]


#: One entry per registered task type (and the pair variant of sequence classification). Measured on
#: an AMD EPYC (2 cores), tiny BERT as here, ``training.seed`` 7 (the test's) and 1, 2, 3 as a proxy
#: for other machines' rounding, each padding mode: the learning rate 1e-2 first tried was on the
#: edge (one seed of seven collapsed to one class, QA EM fell to 56), so 3e-3 with more updates
#: (updates are cheap here: tracing the train step is most of each case's ~10 s).
LEARNING: dict[str, Learning] = {
    # accuracy 1.0 in all 8 runs; floor 0.9 = at most 3 of the 30 sentences wrong (chance: 0.33)
    "sequence_classification": Learning(_sequence, "accuracy", floor=0.9, steps=400, learning_rate=3e-3,
                                        max_seq_length=24),
    # accuracy 1.0 in all 8 runs; floor 0.9 (a model reading one segment only scores 0.5)
    "sequence_classification/pairs": Learning(_pairs, "accuracy", floor=0.9, steps=400, learning_rate=3e-3,
                                              max_seq_length=32),
    # entity F1 1.0 in all 8 runs; floor 0.9
    "token_classification": Learning(_ner, "f1", floor=0.9, steps=400, learning_rate=3e-3, max_seq_length=24),
    # EM 93.75-100 (bucket 93.75, 96.9, 93.75, 96.9; packed 100, 100, 96.9, 96.9); floor 80 = 26 of
    # 32 questions exactly right
    "question_answering": Learning(_qa, "exact_match", floor=80.0, steps=500, learning_rate=3e-3,
                                   max_seq_length=64),
    # micro F1 1.0 for seeds 7, 1-5 at 600 updates (400 gave 0.93 on one seed); floor 0.9. Packing
    # has no multi-label head, so this one runs unpacked only.
    "multi_label_classification": Learning(_multi_label, "micro_f1", floor=0.9, steps=600, learning_rate=3e-3,
                                           max_seq_length=16),
    # Spearman 0.9926 in all 8 runs (the most the gold scores' ties allow); floor 0.9, above the ~0.75
    # that telling the two groups apart gives without the order inside each
    "text_regression": Learning(_regression, "spearman", floor=0.9, steps=400, learning_rate=3e-3, max_seq_length=32),
}


def task_type_of(name: str) -> str:
    return name.split("/")[0]


def cases() -> list:
    """(entry, padding) for every entry and every padding mode its task trains with."""
    from tfbert.tasks import get_task

    out = []
    for name in LEARNING:
        for padding in ("bucket", "packed"):
            if padding == "packed" and not get_task(task_type_of(name)).supports_packing:
                continue
            out.append(pytest.param(name, padding, id=f"{name}-{padding}"))
    return out


def test_every_registered_task_type_has_a_learning_check():
    """A task added to the registry must come with its entry here, or this fails."""
    from tfbert.tasks.registry import task_types

    assert {task_type_of(name) for name in LEARNING} == set(task_types())


@pytest.fixture(scope="module")
def nodrop_dir(tmp_path_factory, bundled_dir) -> Path:
    """The tiny seeded BERT without dropout and with a position table of 64 (the longest setting here)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-learning"), bundled_dir, dropout=False,
                          max_position_embeddings=64)


def learn(name: str, padding: str, model_dir: Path, directory: Path, seed: int = 7) -> dict:
    """Train `LEARNING[name]` for its steps and return the task's report on the training examples."""
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment
    import tf_keras

    case = LEARNING[name]
    config = load_config(None, [
        f"model.name_or_path={model_dir}", *case.data(directory), f"data.padding={padding}",
        f"data.max_seq_length={case.max_seq_length}", "data.max_examples_per_pack=8",
        "training.per_device_train_batch_size=8", "training.per_device_eval_batch_size=32",
        f"training.max_steps={case.steps}", f"training.seed={seed}", "training.verbose=0", "training.tensorboard=false",
        "training.metric_for_best_model=loss", f"training.output_dir={directory / 'run'}",
        f"optimizer.learning_rate={case.learning_rate}", "optimizer.warmup_ratio=0.1",
        "model.classifier_dropout=0.0",
    ])
    experiment = build_experiment(config)
    # The run's data pipeline, schedule and packing; no per-epoch validation, backups or logs.
    experiment.fit(callbacks=[tf_keras.callbacks.TerminateOnNaN()])
    return experiment.evaluate_split("validation")


@pytest.mark.parametrize("name, padding", cases())
def test_task_overfits_a_small_set(name, padding, nodrop_dir, tmp_path):
    case = LEARNING[name]
    report = learn(name, padding, nodrop_dir, tmp_path)
    assert report[case.metric] >= case.floor, (name, padding, {k: report[k] for k in report["metrics"]})
