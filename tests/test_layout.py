"""The package's shape: no import cycle (direct or inside functions), every module imports alone, no
module imports a layer above its own, the config layer imports no model code, and task types are
named only inside ``tfbert/tasks/``.

The layers, bottom up (`LAYERS`; a module may import its own layer and those below, never above):

0. base: ``tfbert.errors``, ``tfbert.utils``, ``tfbert.compat``, ``tfbert.rundir`` (the run
   directory's file names and readers);
1. registry: ``tfbert.tasks`` (the package: lazy) and ``tfbert.tasks.registry`` (the task specs);
2. config: ``tfbert.config`` (schema, values, checks, loading);
3. task configs: each ``tfbert/tasks/<type>/config.py``;
4. data: ``tfbert.data``, ``tfbert.pretrained`` (tokenizers, checkpoints), ``tfbert.model_card``;
5. models: ``tfbert.modeling`` (build and load, never compile), ``tfbert.evaluation``,
   ``tfbert.serving``, ``tfbert.distribute``;
6. tasks: the rest of ``tfbert/tasks/`` (`Task`, each task's head, data, serving, report parts);
7. training: ``tfbert.training`` (optimizer, compile, callbacks, backups), ``tfbert.reporting``;
8. run: ``tfbert.run`` (experiment, trainer: the only place that compiles and fits);
9. applications: ``tfbert.search``, ``tfbert.deploy``, ``tfbert.cli`` and ``tfbert`` itself.

Layers 0-3 are the TF-free core: they import only each other, so `load_config` never loads
TensorFlow; everything else may import them. Inside a layer, packages import each other in one
direction only (no package cycle).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tfbert"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the tfbert modules it imports, at module level or inside functions.

    ``from a.b import c`` points at ``a.b.c`` when that is a module, else at ``a.b``. Importing a
    submodule also runs its packages' ``__init__``; those implicit edges are left out, as
    import-linter does, since a package's ``__init__`` importing its own submodules is not a cycle.
    Imports under ``if TYPE_CHECKING:`` never run, so they are left out too.
    """
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                     for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                resolved = resolve(target) if target.startswith("tfbert") else None
                if resolved and resolved != module:
                    graph[module].add(resolved)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as a path ``[a, b, ..., a]``, or [] when the graph is acyclic."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_graph_sees_function_level_imports():
    graph = import_graph()
    # tfbert.cli.train imports the trainer only inside main().
    assert "tfbert.run.trainer" in graph["tfbert.cli.train"]


def test_no_import_cycle_in_tfbert():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_every_module_imports_in_a_fresh_process():
    names = sorted(_modules())
    code = ("import importlib, sys\nfailed = []\nfor name in sys.argv[1:]:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(failed))\nsys.exit(1 if failed else 0)\n")
    result = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def _tf_free(module: str) -> bool:
    """The modules of the TF-free core (the module docstring's bottom layers)."""
    return (module in ("tfbert.errors", "tfbert.tasks", "tfbert.tasks.registry")
            or module == "tfbert.config" or module.startswith("tfbert.config.")
            or (module.startswith("tfbert.tasks.") and module.endswith(".config")))


def test_the_config_layer_imports_only_tf_free_modules():
    graph = import_graph()
    core = [m for m in graph if _tf_free(m)]
    assert "tfbert.config.loading" in core and "tfbert.tasks.question_answering.config" in core
    leaks = {m: sorted(t for t in graph[m] if not _tf_free(t)) for m in core}
    assert not {m: t for m, t in leaks.items() if t}, leaks


def test_resolving_a_task_imports_only_its_own_module():
    code = ("import sys\n"
            "from tfbert.tasks import get_task_class, task_types\n"
            "types = task_types()\n"
            "assert 'tensorflow' not in sys.modules, 'discovering the task configs imported TensorFlow'\n"
            "get_task_class('token_classification')\n"
            "print(sorted(m for m in sys.modules if m.startswith('tfbert.tasks.') and m.endswith('.task')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['tfbert.tasks.token_classification.task']"


def _task_types() -> list[str]:
    from tfbert.tasks.registry import task_types

    return task_types()


def _string_literals(tree: ast.AST):
    """(line, text) of every string literal that is not a docstring."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_task_types_are_named_only_in_the_tasks_package():
    """A quoted task type (``"question_answering"``) outside ``tfbert/tasks/`` is task knowledge in the
    wrong place: the task (its spec, its Task class or its serving module) should say it instead."""
    types = _task_types()
    assert {"sequence_classification", "question_answering"} <= set(types)
    tasks = PACKAGE / "tasks"
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if tasks in path.parents:
            continue
        for line, text in _string_literals(ast.parse(path.read_text(encoding="utf-8"))):
            if text.strip() in types:
                found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "task types named outside tfbert/tasks/:\n" + "\n".join(found)


def test_the_task_type_check_sees_a_quoted_type():
    tree = ast.parse('"""Docs may say "question_answering"."""\nx = get_task("question_answering")\n')
    assert [line for line, text in _string_literals(tree) if text in _task_types()] == [2]


#: The module docstring's layers, bottom up: (name, module prefixes). A module belongs to the layer of
#: its longest matching prefix; ``tfbert.tasks.*.config`` is matched by `layer_of` before the prefixes.
LAYERS = [
    ("base", ("tfbert.errors", "tfbert.utils", "tfbert.compat", "tfbert.rundir")),
    ("registry", ("tfbert.tasks.registry",)),
    ("config", ("tfbert.config",)),
    ("task configs", ()),
    ("data", ("tfbert.data", "tfbert.pretrained", "tfbert.model_card")),
    ("models", ("tfbert.modeling", "tfbert.evaluation", "tfbert.serving", "tfbert.distribute")),
    ("tasks", ("tfbert.tasks.",)),
    ("training", ("tfbert.training", "tfbert.reporting")),
    ("run", ("tfbert.run",)),
    ("applications", ("tfbert.search", "tfbert.deploy", "tfbert.cli", "tfbert")),
]


def _matches(module: str, prefix: str) -> bool:
    if prefix == "tfbert":
        return module == prefix  # the package's lazy facade, not everything under it
    return module.startswith(prefix) if prefix.endswith(".") else module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int:
    """The index in `LAYERS` of `module`'s layer."""
    if module == "tfbert.tasks":
        return 1  # the package only re-exports the registry; Task and TaskData load lazily
    if module.startswith("tfbert.tasks.") and module.endswith(".config"):
        return 3
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if _matches(module, prefix)), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and the module docstring"
    return best[1]


def _package(module: str) -> str:
    """The unit whose cycles are checked inside a layer: ``tfbert.<top>``, with the task core apart."""
    layer = layer_of(module)
    top = ".".join(module.split(".")[:2])
    return f"{top} ({LAYERS[layer][0]})" if top == "tfbert.tasks" else top


def test_every_module_is_in_a_layer():
    layers = {m: LAYERS[layer_of(m)][0] for m in import_graph()}
    assert layers["tfbert.tasks.question_answering.config"] == "task configs"
    assert layers["tfbert.tasks.question_answering.task"] == "tasks"
    assert layers["tfbert.run.trainer"] == "run" and layers["tfbert.rundir"] == "base"
    assert layers["tfbert"] == "applications" and layers["tfbert.training.callbacks"] == "training"


def test_no_module_imports_a_higher_layer():
    graph = import_graph()
    upward = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"
                    for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_no_package_cycle_inside_a_layer():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        source = _package(module)
        packages.setdefault(source, set())
        for target in targets:
            if _package(target) != source and layer_of(target) == layer_of(module):
                packages[source].add(_package(target))
                packages.setdefault(_package(target), set())
    cycle = find_cycle(packages)
    assert not cycle, "package cycle: " + " -> ".join(cycle)


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("tfbert.modeling.saving") < layer_of("tfbert.training.compile") < layer_of("tfbert.run.experiment")
    assert layer_of("tfbert.data.encoding") < layer_of("tfbert.modeling.backbone")


def test_run_directory_readers_import_no_tensorflow():
    """The report's and the search's readers of a run (`RunDir`) work without TensorFlow."""
    code = ("import sys\nimport tfbert.rundir, tfbert.search.trials, tfbert.utils.files\n"
            "print(sorted(m for m in ('tensorflow', 'tf_keras') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
