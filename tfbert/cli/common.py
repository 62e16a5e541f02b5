"""What every command does: quiet logs, clear one-line errors with exit code 2."""
from __future__ import annotations

import os
import sys
from typing import Callable

# Before TensorFlow is imported: its C++ INFO lines drown the output users need.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_libraries() -> None:
    """Silence transformers' and datasets' chatter (warnings that matter are errors here)."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command; a `TfbertError` becomes one line on stderr and exit code 2."""
    from tfbert.errors import TfbertError

    try:
        return main(argv) or 0
    except TfbertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished checkpoints and exports are kept; partial ones were removed",
              file=sys.stderr)
        return 130


def add_config_args(parser) -> None:
    parser.add_argument("--config", help="experiment YAML (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optimizer.learning_rate=3e-5 (repeatable)")
