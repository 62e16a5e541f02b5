"""The report's matplotlib figures; each takes the runs to overlay and returns a Figure.

A figure that has nothing to show raises `Skipped` with the reason, which the page prints in its
place. Only the Agg backend is used (no display needed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tfbert.reporting.runs import RunData  # noqa: E402

COLORS = plt.get_cmap("tab10").colors
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
DPI = 110


class Skipped(Exception):
    """A figure that cannot be drawn for these runs; the message says why."""


@dataclass
class FigureResult:
    """One figure of the report: its PNG, or why it was left out."""

    name: str
    title: str
    caption: str
    path: Optional[Path] = None
    note: Optional[str] = None


def _color(index: int):
    return COLORS[index % len(COLORS)]


def _figure(panels: int = 1, width: float = 9.0, height: float = 3.8, sharex: bool = False):
    fig, axes = plt.subplots(1, panels, figsize=(width, height), sharex=sharex, squeeze=False)
    return fig, list(axes[0])


def _finish(fig: Figure, axes: Sequence, legend: bool = True, grid: bool = True) -> Figure:
    for ax in axes:
        if grid:
            ax.grid(True, alpha=0.3)
        else:
            ax.grid(False)
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def smoothed(values: Sequence[float], weight: float = 0.6) -> np.ndarray:
    """TensorBoard's exponential moving average, debiased so the first points are not pulled to 0.

    Args:
        values: the raw series.
        weight: how much each point keeps of the previous average (0: no smoothing).
    """
    out, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        count += 1
        out.append(last / (1 - weight ** count))
    return np.asarray(out)


def _label(run: RunData, runs: Sequence[RunData], what: str = "") -> str:
    if len(runs) == 1:
        return what
    return f"{run.name}: {what}" if what else run.name


def loss_figure(runs: Sequence[RunData]) -> Figure:
    """Training loss per logged step (raw and smoothed), validation loss at each epoch's end."""
    if not any(run.steps or run.epochs for run in runs):
        raise Skipped("no step or epoch records (steps.jsonl, metrics.jsonl) yet")
    fig, (ax,) = _figure()
    by_epoch = False
    for i, run in enumerate(runs):
        color = _color(i)
        per_epoch = run.updates_per_epoch
        points = [(r["step"], r["loss"]) for r in run.steps if "loss" in r]
        if points:
            x, y = np.array(points).T
            ax.plot(x, y, color=color, alpha=0.3, linewidth=1, marker=".", markersize=3,
                    label=_label(run, runs, f"training loss (mean of {int(run.setting('training', 'logging_steps', 0) or 0)} steps)"))
            ax.plot(x, smoothed(list(y)), color=color, linewidth=2, label=_label(run, runs, "smoothed"))
        elif run.epochs:
            xs = [r["epoch"] * per_epoch if per_epoch else r["epoch"] for r in run.epochs if "loss" in r]
            by_epoch = by_epoch or not per_epoch
            ax.plot(xs, [r["loss"] for r in run.epochs if "loss" in r], color=color, marker="o",
                    label=_label(run, runs, "training loss (epoch mean)"))
        val = [(r["epoch"], r["val_loss"]) for r in run.epochs if "val_loss" in r]
        if val and (per_epoch or by_epoch):
            ax.plot([e * per_epoch if per_epoch else e for e, _ in val], [v for _, v in val], color=color,
                    linestyle="--", marker="s", markersize=6, label=_label(run, runs, "validation loss (epoch end)"))
    ax.set_xlabel("epoch" if by_epoch else "optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Training loss")
    if len(runs) == 1 and runs[0].updates_per_epoch and not by_epoch:
        per_epoch = runs[0].updates_per_epoch
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch")
    return _finish(fig, [ax])


def _metric_groups(runs: Sequence[RunData]) -> tuple[list[str], list[str]]:
    """Validation metrics other than the loss, split into fractions (0-1) and percentages (QA EM/F1)."""
    names = list(dict.fromkeys(k for run in runs for r in run.epochs for k in r
                               if k.startswith("val_") and k != "val_loss"))
    percent = [n for n in names if max(r.get(n, 0) for run in runs for r in run.epochs) > 1.5]
    return [n for n in names if n not in percent], percent


def validation_figure(runs: Sequence[RunData]) -> Figure:
    """Per-epoch validation metrics, the best epoch (by metric_for_best_model) marked."""
    if not any(run.has_validation for run in runs):
        raise Skipped("no validation split (data.validation_file / data.validation_split), so no per-epoch "
                      "validation metrics; the training loss per epoch is in metrics.csv")
    fractions, percents = _metric_groups(runs)
    groups = [("loss", ["val_loss"], "cross-entropy loss")]
    if fractions:
        groups.append(("metrics", fractions, "score (0-1)"))
    if percents:
        groups.append(("metrics (percent)", percents, "score (%)"))
    fig, axes = _figure(len(groups), width=4.6 * len(groups) + 0.5)
    for ax, (title, names, ylabel) in zip(axes, groups):
        for i, run in enumerate(runs):
            for j, name in enumerate(names):
                points = [(r["epoch"], r[name]) for r in run.epochs if name in r]
                if points:
                    ax.plot(*zip(*points), color=_color(i if len(runs) > 1 else j), linestyle=LINESTYLES[j % 4],
                            marker=MARKERS[j % len(MARKERS)], label=_label(run, runs, name))
            if title == "loss":
                train = [(r["epoch"], r["loss"]) for r in run.epochs if "loss" in r]
                if train:
                    ax.plot(*zip(*train), color=_color(i if len(runs) > 1 else 1), linestyle=":", marker=".",
                            label=_label(run, runs, "training loss (epoch mean)"))
            best = run.best_epoch()
            if best is not None:
                restored = run.setting("training", "load_best_model_at_end", True)
                ax.axvline(best[0], color=_color(i) if len(runs) > 1 else "0.35", linestyle="--", linewidth=1,
                           label=_label(run, runs, f"best epoch {best[0]} ({run.monitor} {best[1]:.4f})"
                                        + (", restored" if restored else ", not restored")) if title == "loss" else None)
                if run.monitor in names:
                    ax.plot([best[0]], [best[1]], marker="*", markersize=16, color="gold", markeredgecolor="black",
                            zorder=5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"Validation {title}")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _finish(fig, axes)


def _step_series(runs: Sequence[RunData], key: str) -> bool:
    return any(key in r for run in runs for r in run.steps)


def _no_steps_reason(runs: Sequence[RunData]) -> str:
    return ("no step records (steps.jsonl): the run made fewer optimizer updates than training.logging_steps, "
            "or was written by an older tfbert")


def optimizer_figure(runs: Sequence[RunData]) -> Figure:
    """The learning-rate schedule as run and the global gradient norm, per logged step."""
    if not _step_series(runs, "learning_rate"):
        raise Skipped(_no_steps_reason(runs))
    has_norm = _step_series(runs, "grad_norm")
    fig, axes = _figure(2 if has_norm else 1)
    for i, run in enumerate(runs):
        lr = [(r["step"], r["learning_rate"]) for r in run.steps if "learning_rate" in r]
        if lr:
            axes[0].plot(*zip(*lr), color=_color(i), marker=".", label=_label(run, runs, "") or None)
        if has_norm:
            norm = [(r["step"], r["grad_norm"]) for r in run.steps if "grad_norm" in r]
            if norm:
                axes[1].plot(*zip(*norm), color=_color(i), marker=".", alpha=0.8,
                             label=_label(run, runs, "global norm before clipping"))
            clip = run.setting("optimizer", "max_grad_norm")
            if clip:
                axes[1].axhline(clip, color=_color(i), linestyle="--", linewidth=1,
                                label=_label(run, runs, f"clipped to {clip} (optimizer.max_grad_norm)"))
    axes[0].set_title("Learning rate (schedule as run)")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("learning rate")
    axes[0].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if has_norm:
        axes[1].set_title("Gradient norm (last update per window)")
        axes[1].set_xlabel("optimizer step")
        axes[1].set_ylabel("global L2 norm")
    return _finish(fig, axes)


def throughput_figure(runs: Sequence[RunData]) -> Figure:
    """Real (non-padding) tokens per second and real tokens / token slots, per logging window."""
    if not _step_series(runs, "tokens_per_second"):
        raise Skipped(_no_steps_reason(runs))
    fig, axes = _figure(2)
    for i, run in enumerate(runs):
        points = [(r["step"], r["tokens_per_second"], r["padding_efficiency"]) for r in run.steps
                  if "tokens_per_second" in r]
        if not points:
            continue
        steps, speed, efficiency = zip(*points)
        # The median, not the total: the first window of a fit also holds tracing the train step.
        axes[0].plot(steps, speed, color=_color(i), marker=".",
                     label=_label(run, runs, f"median {np.median(speed):,.0f}/s"))
        axes[1].plot(steps, efficiency, color=_color(i), marker=".",
                     label=_label(run, runs, f"overall {run.padding_efficiency():.1%}"))
    axes[0].set_title("Throughput (real tokens/s in training steps)")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("real tokens per second")
    axes[0].set_ylim(bottom=0)
    axes[1].set_title("Padding efficiency (real tokens / token slots)")
    axes[1].set_xlabel("optimizer step")
    axes[1].set_ylabel("fraction of slots holding real tokens")
    axes[1].set_ylim(0, 1.05)
    return _finish(fig, axes)


def _evaluated(runs: Sequence[RunData], task: str, key: str) -> list[RunData]:
    return [run for run in runs if run.task == task and run.evaluation and key in run.evaluation]


def _split(run: RunData) -> str:
    evaluation = run.evaluation or {}
    return f"{evaluation.get('split', '?')} split, {evaluation.get('num_examples', '?')} examples"


def confusion_figure(runs: Sequence[RunData]) -> Figure:
    """Confusion matrix of the final evaluation: counts, coloured by the share of each true class."""
    runs = _evaluated(runs, "sequence_classification", "confusion_matrix")
    if not runs:
        raise Skipped("no confusion matrix in eval_results.json (no test or validation split evaluated)")
    size = max(len(run.evaluation["confusion_matrix"]["labels"]) for run in runs)
    side = min(3.0 + 0.45 * size, 9.0)
    fig, axes = _figure(len(runs), width=side * len(runs) + 0.8, height=side)
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
    return _finish(fig, axes, legend=False, grid=False)


def _per_class_figure(runs: Sequence[RunData], title: str, what: str) -> Figure:
    names = list(dict.fromkeys(n for run in runs for n in run.evaluation["per_class"]))
    fig, axes = _figure(3, width=max(9.0, 1.0 + 3 * (0.35 * len(names) * len(runs) + 1.2)), height=4.0)
    width = 0.8 / len(runs)
    x = np.arange(len(names))
    annotate = len(names) * len(runs) <= 8
    for ax, metric in zip(axes, ("precision", "recall", "f1")):
        for i, run in enumerate(runs):
            values = [run.evaluation["per_class"].get(n, {}).get(metric, 0.0) for n in names]
            bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, values, width, color=_color(i),
                          label=run.name if len(runs) > 1 else None)
            if annotate:
                ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
        supports = [runs[0].evaluation["per_class"].get(n, {}).get("support") for n in names]
        ax.set_xticks(x, [f"{n}\n(n={s})" if s is not None else n for n, s in zip(names, supports)],
                      rotation=45 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center", fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel(metric if metric != "f1" else "F1")
        ax.set_title(metric.capitalize() if metric != "f1" else "F1")
        ax.set_xlabel(what)
    fig.suptitle(f"{title} ({_split(runs[0])})" if len(runs) == 1 else title)
    return _finish(fig, axes)


def per_class_figure(runs: Sequence[RunData]) -> Figure:
    """Per-class precision, recall and F1 of the final evaluation (classification)."""
    runs = _evaluated(runs, "sequence_classification", "per_class")
    if not runs:
        raise Skipped("no per-class scores in eval_results.json")
    return _per_class_figure(runs, "Per-class precision, recall and F1", "class (support)")


def per_entity_figure(runs: Sequence[RunData]) -> Figure:
    """Per-entity-type precision, recall and F1 of the final evaluation (NER, seqeval)."""
    runs = _evaluated(runs, "token_classification", "per_class")
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
    runs = [run for run in runs if run.task == "question_answering" and run.evaluation]
    if not runs:
        raise Skipped("no question-answering evaluation in eval_results.json")
    runs = [run for run in runs if "references" in run.evaluation]
    if not runs:
        raise Skipped("eval_results.json has no reference answers (written by an older tfbert)")
    fig, axes = _figure(2)
    bins = np.arange(1, LENGTH_BINS + 1)
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        lengths, exact = answer_lengths(run.evaluation)
        clipped = np.clip(lengths, 1, LENGTH_BINS)
        total = np.array([(clipped == b).sum() for b in bins])
        errors = np.array([((clipped == b) & ~exact).sum() for b in bins])
        offset = (i - (len(runs) - 1) / 2) * width
        axes[0].bar(bins + offset, total, width, color=_color(i), alpha=0.3,
                    label=_label(run, runs, "all questions"))
        axes[0].bar(bins + offset, errors, width, color=_color(i),
                    label=_label(run, runs, f"errors ({(~exact).sum()} of {len(exact)})"))
        rate = np.where(total > 0, errors / np.maximum(total, 1), np.nan)
        axes[1].plot(bins, rate, color=_color(i), marker="o", label=_label(run, runs, "") or None)
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
    return _finish(fig, axes)


#: (file stem, title, caption, function); task figures skip themselves for other tasks.
FIGURES: list[tuple[str, str, str, Callable[[Sequence[RunData]], Figure]]] = [
    ("loss", "Training loss", "Mean training loss of each logging window (faint) and its exponential moving "
     "average; dashed squares: validation loss at each epoch's end.", loss_figure),
    ("validation", "Validation metrics per epoch", "Evaluated on the validation split after every epoch; the "
     "dashed line marks the best epoch by training.metric_for_best_model, restored at the end when "
     "training.load_best_model_at_end is true.", validation_figure),
    ("optimizer", "Learning rate and gradient norm", "The learning rate the optimizer used at each logged step "
     "and the global gradient norm before clipping.", optimizer_figure),
    ("throughput", "Throughput and padding efficiency", "Real (non-padding) tokens per second of training-step "
     "time (validation and backups excluded), and the share of batch slots that held real tokens.",
     throughput_figure),
    ("confusion_matrix", "Confusion matrix", "Final evaluation of the restored model.", confusion_figure),
    ("per_class", "Per-class precision, recall and F1", "Final evaluation of the restored model.", per_class_figure),
    ("per_entity", "Per-entity-type precision, recall and F1", "Entity-level scores (seqeval) of the final "
     "evaluation.", per_entity_figure),
    ("qa_answer_lengths", "Answer lengths of errors", "Questions whose prediction is not an exact match of any "
     "reference, by the length of the shortest reference answer.", qa_errors_figure),
]

#: Figures that belong to one task type: left out silently for the others.
TASK_FIGURES = {"confusion_matrix": "sequence_classification", "per_class": "sequence_classification",
                "per_entity": "token_classification", "qa_answer_lengths": "question_answering"}


def draw_figures(runs: Sequence[RunData], directory: str | Path) -> list[FigureResult]:
    """Draw every figure that applies to `runs` into ``directory/NAME.png``.

    A figure that cannot be drawn (nothing to show, or an error while drawing) gets a note instead;
    this never raises for one figure.

    Args:
        runs: the runs to overlay (one for a run's own report).
        directory: where the PNGs go (created).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tasks = {run.task for run in runs}
    results = []
    for name, title, caption, draw in FIGURES:
        if name in TASK_FIGURES and TASK_FIGURES[name] not in tasks:
            continue
        result = FigureResult(name, title, caption)
        try:
            fig = draw(runs)
        except Skipped as exc:
            result.note = str(exc)
        except Exception as exc:  # noqa: BLE001 - a figure that fails to draw must not stop the report
            result.note = f"could not be drawn ({type(exc).__name__}: {exc})"
        else:
            path = directory / f"{name}.png"
            tmp = directory / f".{name}.tmp.png"
            try:
                fig.savefig(tmp, dpi=DPI)
                tmp.replace(path)
                result.path = path
            except OSError as exc:
                result.note = f"could not be written ({exc.strerror or exc})"
            finally:
                plt.close(fig)
                tmp.unlink(missing_ok=True)
        results.append(result)
    return results
