"""A run's report: matplotlib figures (PNG) and one self-contained HTML page (`write_report`)."""
from tfbert.reporting.html import write_report
from tfbert.reporting.runs import RunData, load_run

__all__ = ["RunData", "load_run", "write_report"]
