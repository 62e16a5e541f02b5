"""What every command does: quiet start-up, clear one-line errors with exit code 2.

Quiet start-up. On a machine without a GPU driver TensorFlow prints, while loading, INFO lines
(oneDNN, "Could not find cuda drivers") that come before absl logging is initialised and so ignore
``TF_CPP_MIN_LOG_LEVEL``, and at its first op ``E0000 … failed call to cuInit`` (level 2 does not
hide it, 3 does). Unless ``--verbose`` (or ``TFBERT_VERBOSE=1``) is given, `quiet_tensorflow`
imports TensorFlow with level 3 and stderr pointed at a buffer that is replayed if the import
fails. No device is hidden (``CUDA_VISIBLE_DEVICES`` is left alone, so a real GPU is always used),
and real failures still surface as Python exceptions or as the one ``error:`` line below.

Importing this module imports no TensorFlow: ``--help``, argument errors and config errors
(`tfbert.config` is TF-free) answer at once, without TensorFlow's seconds of start-up. A command
calls `quiet_tensorflow` (or `quiet_libraries`, which calls it) after reading its arguments and
config and before anything imports TensorFlow; ``tfbert/__init__.py`` imports it lazily for that.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable


def verbose_requested(argv: list[str] | None = None) -> bool:
    """``--verbose`` on the command line, or ``TFBERT_VERBOSE`` set to something other than 0."""
    args = sys.argv[1:] if argv is None else argv
    return "--verbose" in args or os.environ.get("TFBERT_VERBOSE", "0") not in ("", "0")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow (and set up transformers) without their start-up lines, unless `verbose`
    (a command's ``--verbose``) or `verbose_requested` asks for them."""
    if verbose or verbose_requested():
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # Read by transformers at import: hides its "TensorFlow classes are deprecated" banner.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            buffer.seek(0)
            sys.stderr.write(buffer.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Python-side warnings such as unused-gradient notices


def add_verbose_arg(parser) -> None:
    """``--verbose``: show TensorFlow's and the libraries' own log lines (read before TF loads)."""
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's and transformers' own log lines (hidden by default)")


def quiet_libraries(verbose: bool | None = None) -> None:
    """`quiet_tensorflow`, then silence transformers' and datasets' chatter (warnings that matter are errors here)."""
    if verbose_requested() if verbose is None else verbose:
        return
    quiet_tensorflow()
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command; a `TfbertError` becomes one line on stderr and exit code 2."""
    from tfbert.compat import check_dependencies
    from tfbert.errors import TfbertError

    # tfbert names tf_keras and never uses `tf.keras`; with this, `import tensorflow` does not load
    # Keras 3 to stand behind `tf.keras` (over a second of every command's start). Set it to 0 to
    # keep TensorFlow's default.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        check_dependencies()  # e.g. transformers 5 installed later: one line here, not an ImportError deep inside
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
    add_verbose_arg(parser)
