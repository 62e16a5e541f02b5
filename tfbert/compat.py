"""Check, before any command runs, that the installed libraries are ones tfbert can run on.

tfbert pins only what it must (see setup.cfg), so a user's environment can move under it: ``pip
install -U transformers`` brings transformers 5, which removed TensorFlow, and tfbert then dies in
an ``ImportError`` from deep inside transformers (``cannot import name 'TFAutoModel'``); a newer
huggingface-hub makes transformers 4.57 refuse to import at all; a tensorflow-text built for
another TensorFlow fails with an undefined symbol. Each command calls `check_dependencies` first
and stops with one line naming what is installed, what is needed and the ``pip install`` that fixes
it (exit code 2, like every user error).

Cheap by design: package metadata only (``importlib.metadata``), nothing is imported, so the check
costs milliseconds and never loads TensorFlow or transformers. It only rejects combinations known
not to work; versions inside the ranges are not re-checked against the tested lock file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from tfbert.errors import TfbertError

#: released together and built for one TensorFlow minor (custom ops, the Keras 2 API): they must match.
TENSORFLOW_FAMILY = ("tensorflow", "tf-keras", "tensorflow-text")
#: the TensorFlow minor tfbert is tested on (setup.cfg); the fix for a mixed family goes back to it.
TENSORFLOW_RELEASE = (2, 21)


class DependencyError(TfbertError):
    """An installed library outside the versions tfbert runs on."""


@dataclass(frozen=True)
class Requirement:
    """A version range ``>=low,<high`` (``<=high`` when `high_inclusive`) of one package, and why tfbert needs it."""

    package: str
    low: tuple[int, ...]
    high: tuple[int, ...]
    why: str
    high_inclusive: bool = False

    @property
    def spec(self) -> str:
        below = "<=" if self.high_inclusive else "<"
        return f"{self.package}>={'.'.join(map(str, self.low))},{below}{'.'.join(map(str, self.high))}"

    def allows(self, release: tuple[int, ...]) -> bool:
        return self.low <= release and (release <= self.high if self.high_inclusive else release < self.high)


# Keep in step with setup.cfg's install_requires (tests check that they agree). huggingface-hub and
# tokenizers: transformers 4.57 checks both when imported and raises ImportError outside these.
REQUIREMENTS = (
    Requirement("transformers", (4, 57), (5,), "TensorFlow classes"),
    Requirement("huggingface-hub", (0, 34), (1,), "transformers 4.57 requires it"),
    Requirement("tokenizers", (0, 22), (0, 23, 0), "transformers 4.57 requires it", high_inclusive=True),
)


def installed_version(package: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def release(text: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"5.2.0rc1"`` -> (5, 2, 0); no digits -> ()."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def dependency_problem() -> str | None:
    """One line saying what is wrong with the installed libraries and how to fix it, or None."""
    clauses, fixes = [], []
    for requirement in REQUIREMENTS:
        found = installed_version(requirement.package)
        if found is None or not requirement.allows(release(found)):
            clauses.append(f"{requirement.spec} ({requirement.why}); found {found or 'none'}")
            fixes.append(f"'{requirement.spec}'")
    family = {name: installed_version(name) for name in TENSORFLOW_FAMILY}
    # Only where all three are installed under these names (a tf-nightly build is the user's choice).
    if all(family.values()) and len({release(v)[:2] for v in family.values()}) > 1:
        major, minor = TENSORFLOW_RELEASE
        found = ", ".join(f"{name} {v}" for name, v in family.items())
        clauses.append(f"tensorflow, tf-keras and tensorflow-text of one release (tf-keras and tensorflow-text "
                       f"are built for one TensorFlow); found {found}")
        fixes += [f"'{name}>={major}.{minor},<{major}.{minor + 1}'" for name in TENSORFLOW_FAMILY]
    if not clauses:
        return None
    return f"tfbert needs {' and '.join(clauses)}: pip install {' '.join(fixes)}"


def check_dependencies() -> None:
    """Raise `DependencyError` (one line, exit code 2 in the tools) when the environment cannot run tfbert."""
    problem = dependency_problem()
    if problem:
        raise DependencyError(problem)


__all__ = ["DependencyError", "REQUIREMENTS", "Requirement", "check_dependencies", "dependency_problem",
           "installed_version", "release"]
