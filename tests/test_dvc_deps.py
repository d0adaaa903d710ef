"""dvc.yaml lists exactly the code each stage runs, derived here from the imports.

A stage runs its `landslide` command, which reads params.yaml and hands it to its stage
module's `main` (stages/<stage>.py): the stage runs that module and every project module it
imports, directly or through other modules (package `__init__` files included: importing a
module runs them). cli.py only parses the command line and prints (a test below holds it to
that), so editing a help text reruns nothing. If a stage listed less, `dvc repro` would keep
stale outputs after a code change; if it listed more, it would retrain for nothing.

To print what each stage should list: `.venv/bin/python -m tests.test_dvc_deps`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from landslide_ssgan.models import learners

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "landslide_ssgan"
CLI = SRC / PACKAGE / "cli.py"
PIPELINES = (ROOT / "dvc.yaml", ROOT / "studies" / "dvc.yaml")


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(nodes: list[ast.stmt]) -> set[str]:
    """Project modules imported anywhere in these statements (not under TYPE_CHECKING)."""
    found: set[str] = set()
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            for alias in node.names:  # `from pkg import module` imports a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _file_of(candidate) else str(node.module))
        stack.extend(ast.iter_child_nodes(node))
    return found


def _file_of(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _closure(modules: set[str]) -> set[Path]:
    """Every file that importing these modules runs."""
    files: set[Path] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # the packages' __init__ files, then the module
            path = _file_of(".".join(parts[:depth]))
            if path is None or path in files:
                continue
            files.add(path)
            todo.extend(_imported(ast.parse(path.read_text()).body))
    return files


def _command_functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """cli.py's functions by the command name their @app.command gives them."""
    commands = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "app.command":
                name = decorator.args[0].value if decorator.args else node.name  # type: ignore[attr-defined]
                commands[str(name)] = node
    return commands


def stage_code(command: str) -> set[str]:
    """Repository paths of the code that `landslide <command>` runs: its stage module."""
    files = _closure({f"{PACKAGE}.stages.{command}"})
    return {str(path.relative_to(ROOT)) for path in files}


def listed_code(pipeline: Path) -> dict[str, set[str]]:
    """The source files each stage of a dvc.yaml lists (folders expanded to their .py files)."""
    stages = yaml.safe_load(pipeline.read_text())["stages"]
    listed = {}
    for name, stage in stages.items():
        wdir = (pipeline.parent / stage.get("wdir", ".")).resolve()
        paths: set[str] = set()
        for dep in stage.get("deps", []):
            path = (wdir / dep).resolve()
            if not str(path).startswith(str(SRC)):
                continue
            found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            paths |= {str(p.relative_to(ROOT)) for p in found}
        listed[name] = paths
    return listed


def _stages() -> list[tuple[Path, str]]:
    return [(pipeline, name) for pipeline in PIPELINES for name in listed_code(pipeline)]


@pytest.mark.parametrize(("pipeline", "stage"), _stages(),
                         ids=[f"{p.parent.name}:{s}" for p, s in _stages()])
def test_each_stage_lists_exactly_the_code_it_runs(pipeline: Path, stage: str) -> None:
    listed = listed_code(pipeline)[stage]
    needed = stage_code(stage)
    assert not needed - listed, f"{pipeline.name} stage {stage} misses {sorted(needed - listed)}"
    assert not listed - needed, f"{pipeline.name} stage {stage} lists code it does not run: " \
        f"{sorted(listed - needed)}"


def test_every_command_with_a_stage_module_is_a_stage() -> None:
    stage_modules = {p.stem for p in (SRC / PACKAGE / "stages").glob("*.py")} - {"__init__"}
    assert {stage for _, stage in _stages()} == stage_modules


def test_the_analysis_sees_transitive_imports() -> None:
    code = stage_code("map")
    assert "src/landslide_ssgan/stages/map.py" in code
    assert "src/landslide_ssgan/data/blocks.py" in code     # through mapping.py
    assert "src/landslide_ssgan/models/__init__.py" in code  # a package's __init__
    assert "src/landslide_ssgan/stages/train.py" not in code
    assert "src/landslide_ssgan/ops/tracking.py" not in stage_code("prepare")


# what cli.py itself may use of the project: reading params.yaml, the tracking store the
# stage logs into, and turning errors into one line; nothing a stage's outputs depend on
CLI_MODULES = {PACKAGE, f"{PACKAGE}.config", f"{PACKAGE}.ops.tracking", f"{PACKAGE}.errors",
               f"{PACKAGE}.quiet"}  # PACKAGE: its __version__


def test_cli_only_hands_params_to_the_stage_modules() -> None:
    """Each stage's command imports its stage module and nothing else of the project, and
    calls its `main`; cli.py's own imports only read params and the tracking store, so
    leaving cli.py out of the stages' deps loses nothing."""
    tree = ast.parse(CLI.read_text())
    commands = _command_functions(tree)
    for _, stage in _stages():
        body = commands[stage].body
        assert _imported(body) == {f"{PACKAGE}.stages.{stage}"}, stage
        assert "stage_module.main(" in ast.unparse(commands[stage]), stage
    functions = {command.name for command in commands.values()}
    shared = [n for n in tree.body if not (isinstance(n, ast.FunctionDef)
                                           and n.name in functions)]  # helpers, top level
    assert _imported(shared) <= CLI_MODULES


@pytest.mark.parametrize("stage", ["train", "fit", "segment"])
def test_training_stages_list_exactly_the_train_settings_their_kinds_read(stage: str) -> None:
    """A train setting reruns only the models that read it (`-S train.epochs=2` leaves the
    forest and the GLM up to date): each stage lists the union of its kinds' Learner.reads,
    never the whole section. Learner.settings hands each kind only those, so a kind that read
    another would fail in every test that trains it."""
    params = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["params"]
    listed = {p.removeprefix("train.") for p in params if str(p).startswith("train")}
    assert "train" not in listed
    assert listed == set(learners.stage_reads(stage))


@pytest.mark.parametrize("stage", ["train", "fit", "segment"])
def test_training_stages_run_no_mapping_plotting_serving_or_cli_code(stage: str) -> None:
    """Editing map, body, plot, serving or command-line code leaves every trained model up
    to date: none of it is among the training stages' deps."""
    code = stage_code(stage)
    for module in ("inference/mapping.py", "inference/bodies.py", "reporting/plots.py",
                   "ops/pyfunc.py", "ops/server.py", "evaluation/scoring.py",
                   "evaluation/map_metrics.py", "evaluation/realism.py", "cli.py"):
        assert f"src/landslide_ssgan/{module}" not in code, module


if __name__ == "__main__":
    for pipeline in PIPELINES:
        for name in listed_code(pipeline):
            print(f"{pipeline.relative_to(ROOT)} {name}:")
            for path in sorted(stage_code(name)):
                print(f"      - {path}")
