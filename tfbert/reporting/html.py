"""The report page: one self-contained HTML file (figures inlined as PNG data URIs)."""
from __future__ import annotations

import base64
import html
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

from tfbert import rundir
from tfbert.config import flatten_keys
from tfbert.reporting.runs import RunData, load_run
from tfbert.utils.files import write_text

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.muted { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr.differs td { background: #fff6d6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
.note { background: #f6f6f6; border-left: 4px solid #bbb; padding: 0.5em 0.8em; margin: 1em 0; }
.warning { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5em 0.8em; margin: 1em 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "" if value is None else str(value)


def _headlines(task_type: str) -> tuple[tuple[str, str], ...]:
    """The task's headline numbers: (key in eval_results.json, label); none for an unknown task."""
    from tfbert.errors import ConfigError
    from tfbert.tasks.registry import get_task_class

    try:
        return get_task_class(task_type).report_headlines
    except ConfigError:
        return ()


def _summary_table(runs: Sequence[RunData]) -> str:
    rows = [("task", lambda r: r.task)]
    keys = list(dict.fromkeys(k for run in runs for k in _headlines(run.task)))
    rows.append(("evaluated on", lambda r: _split_text(r)))
    for key, label in keys:
        rows.append((label, lambda r, key=key: (r.evaluation or {}).get(key)))

    def best(run: RunData):
        found = run.best_epoch()
        return f"{found[0]} ({run.monitor} {found[1]:.4f})" if found else None

    def speed(run: RunData):
        # The median window: the first window of a fit also holds tracing the train step.
        rates = [r["tokens_per_second"] for r in run.steps if "tokens_per_second" in r]
        return f"{statistics.median(rates):,.0f}" if rates else None

    def efficiency(run: RunData):
        value = run.padding_efficiency()
        return f"{value:.1%}" if value is not None else None

    rows += [("epochs run", lambda r: len(r.epochs) or None), ("best epoch", best),
             ("training time (s)", lambda r: (r.summary or {}).get("train_seconds")
              or (round(sum(e.get("seconds", 0) for e in r.epochs), 1) if r.epochs else None)),
             ("real tokens/s (median logging window)", speed), ("padding efficiency", efficiency)]
    return _table(runs, [(label, [get(run) for run in runs]) for label, get in rows], highlight=False)


def _split_text(run: RunData) -> Optional[str]:
    if not run.evaluation:
        return None
    return f"{run.evaluation.get('split', '?')} split ({run.evaluation.get('num_examples', '?')} examples)"


def _table(runs: Sequence[RunData], rows: list[tuple[str, list]], highlight: bool) -> str:
    head = "".join(f"<th>{_e(run.name)}</th>" for run in runs)
    body = []
    for label, values in rows:
        differs = highlight and len(runs) > 1 and len({_fmt(v) for v in values}) > 1
        cells = "".join(f"<td class=\"num\">{_e(_fmt(v))}</td>" if isinstance(v, (int, float))
                        else f"<td>{_e(_fmt(v))}</td>" for v in values)
        attr = ' class="differs"' if differs else ""
        body.append(f"<tr{attr}><th>{_e(label)}</th>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"


def _warnings(runs: Sequence[RunData]) -> str:
    """The evaluation's warning (a model no better than a constant guess), above everything else."""
    parts = []
    for run in runs:
        warning = (run.evaluation or {}).get("warning")
        if warning:
            prefix = f"{_e(run.name)}: " if len(runs) > 1 else ""
            parts.append(f"<p class=\"warning\"><b>Warning</b>: {prefix}{_e(warning)}</p>")
    return "".join(parts)


def _plan_section(runs: Sequence[RunData]) -> str:
    parts = []
    for run in runs:
        plan = (run.summary or {}).get("plan") or {}
        describe = plan.get("describe") or "not recorded (run_summary.json missing: an unfinished run or an older tfbert)"
        strategy = plan.get("strategy") or run.setting("distribution", "strategy", "default")
        precision = run.setting("precision", "policy", "float32")
        prefix = f"<b>{_e(run.name)}</b>: " if len(runs) > 1 else ""
        parts.append(f"<p>{prefix}<code>plan: {_e(describe)}</code><br>strategy <b>{_e(strategy)}</b>, "
                     f"precision <b>{_e(precision)}</b>, padding <b>{_e(run.setting('data', 'padding', ''))}</b>, "
                     f"max_seq_length <b>{_e(run.setting('data', 'max_seq_length', ''))}</b></p>")
    return "".join(parts)


def _figure_html(result, inline: bool = True) -> str:
    if result.path is None:
        return (f"<div class=\"note\"><b>{_e(result.title)}</b>: left out — {_e(result.note)}</div>")
    data = base64.b64encode(result.path.read_bytes()).decode("ascii")
    return (f"<figure id=\"fig-{_e(result.name)}\"><img alt=\"{_e(result.title)}\" "
            f"src=\"data:image/png;base64,{data}\"><figcaption><b>{_e(result.title)}.</b> {_e(result.caption)} "
            f"(<code>{_e(result.path.name)}</code>)</figcaption></figure>")


def render_html(runs: Sequence[RunData], figures: list) -> str:
    """The page for `runs` with `figures` (`tfbert.reporting.figures.FigureResult`) inlined."""
    title = (f"tfbert run report: {runs[0].name}" if len(runs) == 1
             else "tfbert run comparison: " + " vs ".join(run.name for run in runs))
    configs = [flatten_keys(run.config) for run in runs]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    hyper = _table(runs, [(k, [c.get(k) for c in configs]) for k in keys], highlight=True)
    dirs = " ".join(str(run.directory) for run in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="muted">Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {_e(dirs)}; regenerate with
<code>tools/report.py {_e(dirs)}</code>.</p>
{_warnings(runs)}
<h2>Summary</h2>
{_summary_table(runs)}
<h2>Plan</h2>
{_plan_section(runs)}
<h2>Figures</h2>
{''.join(_figure_html(f) for f in figures)}
<h2>Hyperparameters</h2>
<p class="muted">The resolved config (<code>config.yaml</code>){'; rows that differ between runs are highlighted' if len(runs) > 1 else ''}.</p>
{hyper}
</body></html>
"""


def write_report(run_dirs: Sequence[str | Path], output: Optional[str | Path] = None,
                 summary: Optional[dict] = None) -> Path:
    """Draw the figures (PNG, in ``figures/`` beside the page) and write the self-contained page.

    Args:
        run_dirs: one run directory, or several to overlay for comparison.
        output: the HTML file (default: ``RUN/report.html`` for one run; for several,
            ``compare-A-B/report.html`` beside the first run).
        summary: the run summary of a single run that is finishing (before run_summary.json exists).
    """
    from tfbert.reporting.figures import draw_figures

    runs = [load_run(d) for d in run_dirs]
    if summary is not None and len(runs) == 1:
        runs[0].summary = summary
    if output is None:
        first = Path(run_dirs[0])
        output = (first / rundir.REPORT if len(runs) == 1
                  else first.parent / ("compare-" + "-".join(run.name for run in runs)) / rundir.REPORT)
    output = Path(output)
    figures = draw_figures(runs, output.parent / rundir.FIGURES)
    write_text(output, render_html(runs, figures))
    return output
