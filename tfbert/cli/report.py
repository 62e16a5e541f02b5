"""`tools/report.py RUN [RUN2 ...] [--output FILE]`: a run's HTML report with figures, or several runs overlaid."""
from __future__ import annotations

import argparse
import sys

from tfbert.cli import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tfbert-report",
        description="Write RUN/report.html (self-contained) and its figures as PNGs; with several runs, one "
                    "page that overlays them.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directory (training.output_dir)")
    parser.add_argument("--output", help="the HTML file (default: RUN/report.html; for several runs "
                                         "compare-A-B/report.html beside the first)")
    common.add_verbose_arg(parser)
    args = parser.parse_args(argv)
    common.quiet_tensorflow(args.verbose)
    from tfbert.reporting import write_report

    path = write_report(args.runs, args.output)
    print(f"report: {path}")
    return 0


def entry() -> None:
    sys.exit(common.run(main))


if __name__ == "__main__":
    entry()
