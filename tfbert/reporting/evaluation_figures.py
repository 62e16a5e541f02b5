"""The report's evaluation figures: confusion matrix, per-class and per-entity scores, QA errors, and
the panels of figures a task draws itself (`task_drawn_figures`).

Each takes the runs to overlay and returns a Figure, or raises `Skipped` with the reason.
"""
from __future__ import annotations

import functools
import importlib
from typing import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from tfbert.reporting.plotting import Skipped, finish, new_figure, run_color, series_label, task_figures
from tfbert.reporting.runs import RunData


def _evaluated(runs: Sequence[RunData], figure: str, key: str) -> list[RunData]:
    """The runs whose task draws `figure` (`Task.report_figures`) and whose evaluation has `key`."""
    tasks = task_figures().get(figure, set())
    return [run for run in runs if run.task in tasks and run.evaluation and key in run.evaluation]


def _split(run: RunData) -> str:
    evaluation = run.evaluation or {}
    return f"{evaluation.get('split', '?')} split, {evaluation.get('num_examples', '?')} examples"


def confusion_figure(runs: Sequence[RunData]) -> Figure:
    """Confusion matrix of the final evaluation: counts, coloured by the share of each true class."""
    runs = _evaluated(runs, "confusion_matrix", "confusion_matrix")
    if not runs:
        raise Skipped("no confusion matrix in eval_results.json (no test or validation split evaluated)")
    size = max(len(run.evaluation["confusion_matrix"]["labels"]) for run in runs)
    side = min(3.0 + 0.45 * size, 9.0)
    fig, axes = new_figure(len(runs), width=side * len(runs) + 0.8, height=side)
    for ax, run in zip(axes, runs):
        matrix = np.array(run.evaluation["confusion_matrix"]["matrix"], dtype=float)
        labels = run.evaluation["confusion_matrix"]["labels"]
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        if len(labels) <= 15:
            for (r, c), count in np.ndenumerate(matrix):
                ax.text(c, r, f"{int(count)}\n{share[r, c]:.1%}", ha="center", va="center", fontsize=8,
                        color="white" if share[r, c] > 0.6 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(f"{run.name}\n({_split(run)})", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.suptitle("Confusion matrix")
    return finish(fig, axes, legend=False, grid=False)


#: The three per-class panels: metric key -> its name on the axis and in the panel title.
_CLASS_METRICS = {"precision": "precision", "recall": "recall", "f1": "F1"}


def _class_labels(runs: Sequence[RunData], names: list[str], separator: str) -> list[str]:
    """Each class name with its support in the first run (``name<separator>(n=…)``)."""
    supports = [runs[0].evaluation["per_class"].get(n, {}).get("support") for n in names]
    return [f"{n}{separator}(n={s})" if s is not None else n for n, s in zip(names, supports)]


def _label_panel(ax, metric: str) -> None:
    ax.set_title(_CLASS_METRICS[metric].capitalize() if metric != "f1" else "F1")


#: Above this many bars per panel the per-class figure lists classes down the page (horizontal bars):
#: rotated names under vertical bars overlap, and the figure grew wider than any page.
MAX_VERTICAL_BARS = 16


def _per_class_figure(runs: Sequence[RunData], title: str, what: str) -> Figure:
    names = list(dict.fromkeys(n for run in runs for n in run.evaluation["per_class"]))
    if len(names) * len(runs) > MAX_VERTICAL_BARS:
        return _per_class_rows(runs, names, title, what)
    fig, axes = new_figure(3, width=max(9.0, 1.0 + 3 * (0.35 * len(names) * len(runs) + 1.2)), height=4.0)
    width = 0.8 / len(runs)
    x = np.arange(len(names))
    annotate = len(names) * len(runs) <= 8
    for ax, metric in zip(axes, _CLASS_METRICS):
        for i, run in enumerate(runs):
            values = [run.evaluation["per_class"].get(n, {}).get(metric, 0.0) for n in names]
            bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, values, width, color=run_color(i),
                          label=run.name if len(runs) > 1 else None)
            if annotate:
                ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
        ax.set_xticks(x, _class_labels(runs, names, "\n"),
                      rotation=45 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center", fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel(_CLASS_METRICS[metric])
        _label_panel(ax, metric)
        ax.set_xlabel(what)
    fig.suptitle(f"{title} ({_split(runs[0])})" if len(runs) == 1 else title)
    return finish(fig, axes)


def _per_class_rows(runs: Sequence[RunData], names: list[str], title: str, what: str) -> Figure:
    """`_per_class_figure` for many classes: one row per class, in the evaluation's order from the top."""
    fig, axes = new_figure(3, width=12.0, height=1.5 + 0.26 * len(names) * len(runs), sharey=True)
    height = 0.8 / len(runs)
    y = np.arange(len(names))
    for ax, metric in zip(axes, _CLASS_METRICS):
        for i, run in enumerate(runs):
            values = [run.evaluation["per_class"].get(n, {}).get(metric, 0.0) for n in names]
            ax.barh(y + (i - (len(runs) - 1) / 2) * height, values, height, color=run_color(i),
                    label=run.name if len(runs) > 1 else None)
        ax.set_xlim(0, 1.05)
        ax.set_xlabel(_CLASS_METRICS[metric])
        _label_panel(ax, metric)
    axes[0].set_yticks(y, _class_labels(runs, names, " "), fontsize=8)
    axes[0].set_ylim(len(names) - 0.5, -0.5)  # the first class at the top (shared by the three panels)
    axes[0].set_ylabel(what)
    fig.suptitle(f"{title} ({_split(runs[0])})" if len(runs) == 1 else title)
    return finish(fig, axes)


def per_class_figure(runs: Sequence[RunData]) -> Figure:
    """Per-class precision, recall and F1 of the final evaluation (classification)."""
    runs = _evaluated(runs, "per_class", "per_class")
    if not runs:
        raise Skipped("no per-class scores in eval_results.json")
    return _per_class_figure(runs, "Per-class precision, recall and F1", "class (support)")


def per_entity_figure(runs: Sequence[RunData]) -> Figure:
    """Per-entity-type precision, recall and F1 of the final evaluation (NER, seqeval)."""
    runs = _evaluated(runs, "per_entity", "per_class")
    if not runs:
        raise Skipped("no per-entity-type scores in eval_results.json")
    return _per_class_figure(runs, "Per-entity-type precision, recall and F1", "entity type (support)")


LENGTH_BINS = 10  # answers of 10 words or more share the last bin


def answer_lengths(evaluation: dict) -> tuple[np.ndarray, np.ndarray]:
    """Gold answer length in words (the shortest reference) and exact-match flag, per question."""
    from tfbert.evaluation.squad_metrics import exact_match_score, normalize_answer

    lengths, exact = [], []
    predictions = evaluation.get("predictions", {})
    for qid, references in evaluation["references"].items():
        predicted = predictions.get(qid, {}).get("text", "")
        lengths.append(min(len(normalize_answer(r).split()) for r in references) if references else 0)
        exact.append(any(exact_match_score(predicted, r) for r in references))
    return np.array(lengths), np.array(exact, dtype=bool)


def qa_errors_figure(runs: Sequence[RunData]) -> Figure:
    """QA: how many answers of each gold length were missed (not an exact match), and the miss rate."""
    tasks = task_figures().get("qa_answer_lengths", set())
    runs = [run for run in runs if run.task in tasks and run.evaluation]
    if not runs:
        raise Skipped("no question-answering evaluation in eval_results.json")
    runs = [run for run in runs if "references" in run.evaluation]
    if not runs:
        raise Skipped("eval_results.json has no reference answers (written by an older tfbert)")
    fig, axes = new_figure(2)
    bins = np.arange(1, LENGTH_BINS + 1)
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        lengths, exact = answer_lengths(run.evaluation)
        clipped = np.clip(lengths, 1, LENGTH_BINS)
        total = np.array([(clipped == b).sum() for b in bins])
        errors = np.array([((clipped == b) & ~exact).sum() for b in bins])
        offset = (i - (len(runs) - 1) / 2) * width
        axes[0].bar(bins + offset, total, width, color=run_color(i), alpha=0.3,
                    label=series_label(run, runs, "all questions"))
        axes[0].bar(bins + offset, errors, width, color=run_color(i),
                    label=series_label(run, runs, f"errors ({(~exact).sum()} of {len(exact)})"))
        rate = np.where(total > 0, errors / np.maximum(total, 1), np.nan)
        axes[1].plot(bins, rate, color=run_color(i), marker="o", label=series_label(run, runs, "") or None)
    ticks = [str(b) for b in bins[:-1]] + [f"{LENGTH_BINS}+"]
    for ax in axes:
        ax.set_xticks(bins, ticks)
        ax.set_xlabel("gold answer length (words, shortest reference)")
    axes[0].set_ylabel("questions")
    axes[0].set_title("Errors (not an exact match) by answer length")
    axes[1].set_ylabel("share not exactly matched")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title("Error rate by answer length")
    fig.suptitle(f"Answer lengths of errors ({_split(runs[0])})" if len(runs) == 1 else "Answer lengths of errors")
    return finish(fig, axes)


def task_drawn_figures() -> list[tuple[str, str, str, Callable[[Sequence[RunData]], Figure]]]:
    """The figures tasks draw themselves (`Task.report_figure_drawers`), as `FIGURES` entries.

    Each becomes one panel per run whose task lists the figure and which has an evaluation; the
    task's function draws the panel from that evaluation, so a task adds a figure without a shared
    module knowing it.
    """
    from tfbert.tasks.registry import task_classes

    entries: dict[str, tuple[str, str, str]] = {}
    for cls in task_classes():
        for name, spec in cls.report_figure_drawers.items():
            entries.setdefault(name, spec)
    return [(name, title, caption, functools.partial(_task_panels, name, where))
            for name, (title, caption, where) in entries.items()]


def _task_panels(name: str, where: str, runs: Sequence[RunData]) -> Figure:
    """One panel per evaluated run, drawn by the task's ``module:function`` (``function(ax, evaluation)``)."""
    runs = _evaluated(runs, name, "metrics")
    if not runs:
        raise Skipped("no evaluation in eval_results.json (no test or validation split evaluated)")
    module, _, function = where.partition(":")
    draw = getattr(importlib.import_module(module), function)
    fig, axes = new_figure(len(runs), width=4.8 * len(runs) + 0.6, height=4.6)
    for ax, run in zip(axes, runs):
        draw(ax, run.evaluation)
        ax.set_title(f"{run.name}\n({_split(run)})", fontsize=10)
    return finish(fig, axes, legend=False)


#: (file stem, title, caption, function); task figures skip themselves for other tasks.
