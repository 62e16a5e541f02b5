"""The report's figures: training curves here, evaluation figures in `evaluation_figures`.

Each figure takes the runs to overlay and returns a Figure; one that has nothing to show raises
`Skipped` with the reason, which the page prints in its place. `FIGURES` lists them in page order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from tfbert.reporting.evaluation_figures import (confusion_figure, per_class_figure, per_entity_figure,
                                                qa_errors_figure, task_drawn_figures)
from tfbert.reporting.plotting import (DPI, LINESTYLES, MARKERS, Skipped, finish, new_figure, run_color, series_label,
                                       smoothed, task_figures)
from tfbert.reporting.runs import RunData


@dataclass
class FigureResult:
    """One figure of the report: its PNG, or why it was left out."""

    name: str
    title: str
    caption: str
    path: Optional[Path] = None
    note: Optional[str] = None


def loss_figure(runs: Sequence[RunData]) -> Figure:
    """Training loss per logged step (raw and smoothed), validation loss at each epoch's end."""
    if not any(run.steps or run.epochs for run in runs):
        raise Skipped("no step or epoch records (steps.jsonl, metrics.jsonl) yet")
    fig, (ax,) = new_figure()
    by_epoch = False
    for i, run in enumerate(runs):
        color = run_color(i)
        per_epoch = run.updates_per_epoch
        points = [(r["step"], r["loss"]) for r in run.steps if "loss" in r]
        if points:
            x, y = np.array(points).T
            ax.plot(x, y, color=color, alpha=0.3, linewidth=1, marker=".", markersize=3,
                    label=series_label(run, runs, f"training loss (mean of {int(run.setting('training', 'logging_steps', 0) or 0)} steps)"))
            ax.plot(x, smoothed(list(y)), color=color, linewidth=2, label=series_label(run, runs, "smoothed"))
        elif run.epochs:
            xs = [r["epoch"] * per_epoch if per_epoch else r["epoch"] for r in run.epochs if "loss" in r]
            by_epoch = by_epoch or not per_epoch
            ax.plot(xs, [r["loss"] for r in run.epochs if "loss" in r], color=color, marker="o",
                    label=series_label(run, runs, "training loss (epoch mean)"))
        val = [(r["epoch"], r["val_loss"]) for r in run.epochs if "val_loss" in r]
        if val and (per_epoch or by_epoch):
            ax.plot([e * per_epoch if per_epoch else e for e, _ in val], [v for _, v in val], color=color,
                    linestyle="--", marker="s", markersize=6, label=series_label(run, runs, "validation loss (epoch end)"))
    ax.set_xlabel("epoch" if by_epoch else "optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Training loss")
    if len(runs) == 1 and runs[0].updates_per_epoch and not by_epoch:
        per_epoch = runs[0].updates_per_epoch
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
        top.set_xlabel("epoch")
    return finish(fig, [ax])


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
    fig, axes = new_figure(len(groups), width=4.6 * len(groups) + 0.5)
    for ax, (title, names, ylabel) in zip(axes, groups):
        for i, run in enumerate(runs):
            for j, name in enumerate(names):
                points = [(r["epoch"], r[name]) for r in run.epochs if name in r]
                if points:
                    ax.plot(*zip(*points), color=run_color(i if len(runs) > 1 else j), linestyle=LINESTYLES[j % 4],
                            marker=MARKERS[j % len(MARKERS)], label=series_label(run, runs, name))
            if title == "loss":
                train = [(r["epoch"], r["loss"]) for r in run.epochs if "loss" in r]
                if train:
                    ax.plot(*zip(*train), color=run_color(i if len(runs) > 1 else 1), linestyle=":", marker=".",
                            label=series_label(run, runs, "training loss (epoch mean)"))
            best = run.best_epoch()
            if best is not None:
                restored = run.setting("training", "load_best_model_at_end", True)
                ax.axvline(best[0], color=run_color(i) if len(runs) > 1 else "0.35", linestyle="--", linewidth=1,
                           label=series_label(run, runs, f"best epoch {best[0]} ({run.monitor} {best[1]:.4f})"
                                        + (", restored" if restored else ", not restored")) if title == "loss" else None)
                if run.monitor in names:
                    ax.plot([best[0]], [best[1]], marker="*", markersize=16, color="gold", markeredgecolor="black",
                            zorder=5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"Validation {title}")
        ax.xaxis.get_major_locator().set_params(integer=True)
    return finish(fig, axes)


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
    fig, axes = new_figure(2 if has_norm else 1)
    for i, run in enumerate(runs):
        lr = [(r["step"], r["learning_rate"]) for r in run.steps if "learning_rate" in r]
        if lr:
            axes[0].plot(*zip(*lr), color=run_color(i), marker=".", label=series_label(run, runs, "") or None)
        if has_norm:
            norm = [(r["step"], r["grad_norm"]) for r in run.steps if "grad_norm" in r]
            if norm:
                axes[1].plot(*zip(*norm), color=run_color(i), marker=".", alpha=0.8,
                             label=series_label(run, runs, "global norm before clipping"))
            clip = run.setting("optimizer", "max_grad_norm")
            if clip:
                axes[1].axhline(clip, color=run_color(i), linestyle="--", linewidth=1,
                                label=series_label(run, runs, f"clipped to {clip} (optimizer.max_grad_norm)"))
    axes[0].set_title("Learning rate (schedule as run)")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("learning rate")
    axes[0].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if has_norm:
        axes[1].set_title("Gradient norm (last update per window)")
        axes[1].set_xlabel("optimizer step")
        axes[1].set_ylabel("global L2 norm")
    return finish(fig, axes)


def throughput_figure(runs: Sequence[RunData]) -> Figure:
    """Real (non-padding) tokens per second and real tokens / token slots, per logging window."""
    if not _step_series(runs, "tokens_per_second"):
        raise Skipped(_no_steps_reason(runs))
    fig, axes = new_figure(2)
    for i, run in enumerate(runs):
        points = [(r["step"], r["tokens_per_second"], r["padding_efficiency"]) for r in run.steps
                  if "tokens_per_second" in r]
        if not points:
            continue
        steps, speed, efficiency = zip(*points)
        # The median, not the total: the first window of a fit also holds tracing the train step.
        axes[0].plot(steps, speed, color=run_color(i), marker=".",
                     label=series_label(run, runs, f"median {np.median(speed):,.0f}/s"))
        axes[1].plot(steps, efficiency, color=run_color(i), marker=".",
                     label=series_label(run, runs, f"overall {run.padding_efficiency():.1%}"))
    axes[0].set_title("Throughput (real tokens/s in training steps)")
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("real tokens per second")
    axes[0].set_ylim(bottom=0)
    axes[1].set_title("Padding efficiency (real tokens / token slots)")
    axes[1].set_xlabel("optimizer step")
    axes[1].set_ylabel("fraction of slots holding real tokens")
    axes[1].set_ylim(0, 1.05)
    return finish(fig, axes)


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
    owners = task_figures()
    results = []
    # The shared figures, then those tasks draw themselves (`Task.report_figure_drawers`).
    for name, title, caption, draw in [*FIGURES, *task_drawn_figures()]:
        if name in owners and not owners[name] & tasks:
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
