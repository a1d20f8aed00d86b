"""The import contracts of .importlinter hold, and each one breaks on the import it forbids."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = "Layers: cli, api, dashboard > services > accounts, platform > evaluators"
PURE = "Evaluators are pure: no platform, entry points, database, cluster, files or terminal"
ACYCLIC = "No import cycles between the modules of a package"
SERVICES = "The command line, API and dashboard reach the database and the scheduler only through the services"
PROTECTED = "Only the services and the accounts import the platform"
DEFINITIONS = "Definitions are plain models: no runner, container contract, containers, processes or storage"
ERRORS_LEAF = "The errors are a leaf: they import nothing of medarena"
ALL = {LAYERS, PURE, ACYCLIC, SERVICES, PROTECTED, DEFINITIONS, ERRORS_LEAF}


def lint_imports(root: Path) -> tuple[int, dict[str, str]]:
    """Run lint-imports on the package under ``root``; its exit code and each contract's verdict."""
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1"}
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / ".importlinter")],
                          cwd=root, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    verdicts = dict(re.findall(r"^(.+?) (KEPT|BROKEN)$", text, flags=re.MULTILINE))
    assert verdicts, text
    return done.returncode, verdicts


def test_the_contracts_hold():
    code, verdicts = lint_imports(REPO)
    assert ALL <= set(verdicts)
    assert set(verdicts.values()) == {"KEPT"}, verdicts
    assert code == 0


@pytest.fixture(scope="module")
def copy_of_the_package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(REPO / "medarena", root / "medarena", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", root)
    return root


@pytest.mark.parametrize(("module", "line", "broken"), [
    # an evaluator reading the database: below the platform, and impure
    ("medarena/evaluators/_probe.py", "import medarena.platform.database\n", {LAYERS, PURE, PROTECTED}),
    ("medarena/evaluators/_probe.py", "import sqlalchemy\n", {PURE}),
    # the platform calling up into the command line
    ("medarena/platform/_probe.py", "from medarena import cli\n", {LAYERS}),
    # two platform modules importing each other
    ("medarena/platform/database.py", "from medarena.platform import scheduler\n", {ACYCLIC}),
    # an entry point past the services: to the database or the scheduler, or to any platform module
    ("medarena/cli_accounts.py", "import medarena.platform.database\n", {SERVICES, PROTECTED}),
    ("medarena/dashboard/_probe.py", "from medarena.platform import scheduler\n", {SERVICES, PROTECTED}),
    ("medarena/api/_probe.py", "from medarena.platform.scheduler import run\n", {SERVICES, PROTECTED}),
    ("medarena/cli.py", "from medarena.platform import casestore\n", {PROTECTED}),
    # definitions that start processes, or know the runner
    ("medarena/platform/definitions.py", "import subprocess\n", {DEFINITIONS}),
    ("medarena/platform/definitions.py", "from medarena.platform import runner\n", {DEFINITIONS, ACYCLIC}),
    # the errors leaning on anything of the project
    ("medarena/errors.py", "from medarena import display\n", {ERRORS_LEAF}),
])
def test_each_contract_breaks_on_what_it_forbids(copy_of_the_package, module, line, broken):
    path = copy_of_the_package / module
    original = path.read_text() if path.exists() else None
    path.write_text((original or "") + line)
    try:
        code, verdicts = lint_imports(copy_of_the_package)
    finally:
        path.unlink() if original is None else path.write_text(original)
    assert {name for name, verdict in verdicts.items() if verdict == "BROKEN"} == broken
    assert code != 0


def test_the_errors_leaf_names_every_part_of_the_package():
    """A new top-level module or package is covered by the errors' contract too."""
    config = (REPO / ".importlinter").read_text(encoding="ascii")
    section = config.split("[importlinter:contract:errors-leaf]")[1].split("[importlinter:")[0]
    forbidden = set(re.findall(r"^\s+(medarena\.\w+)$", section.split("forbidden_modules =")[1], re.MULTILINE))
    parts = {f"medarena.{p.stem}" for p in (REPO / "medarena").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert forbidden == parts - {"medarena.errors"}
