#!/usr/bin/env python
"""Thin front end: see `tfbert.cli.search`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfbert.cli.search import entry  # noqa: E402

if __name__ == "__main__":
    entry()
