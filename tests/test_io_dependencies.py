"""Every third-party module the code imports is declared in pyproject.toml, and environment.yml
mirrors pyproject's lower bounds (what a user installs is what the code needs)."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from core.io import repo_root

ROOT = repo_root()
#: conda-forge names that differ from the PyPI ones
CONDA_NAMES = {"torch": "pytorch"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(reqs: list[str]) -> dict[str, str]:
    return {_norm(re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0]): r for r in reqs}


def _imports(paths) -> set[str]:
    mods: set[str] = set()
    for f in paths:
        if f.suffix == ".ipynb":
            cells = json.loads(f.read_text())["cells"]
            src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            mods |= set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", src, flags=re.M))
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    local = {"core", "app", "pages", "tests", *(f.stem for f in (ROOT / "tests").glob("*.py"))}
    return {m for m in mods if m not in sys.stdlib_module_names and m not in local}


def _distributions(modules: set[str]) -> dict[str, str]:
    dists = packages_distributions()
    missing = sorted(m for m in modules if m not in dists)
    assert missing == [], f"imported but not installed: {missing}"
    return {m: _norm(dists[m][0]) for m in modules}


def test_imports_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    test = _requirement_names(project["optional-dependencies"]["test"])
    code = list((ROOT / "core").rglob("*.py")) + list((ROOT / "app").rglob("*.py"))
    used = _distributions(_imports(code))
    assert sorted(m for m, d in used.items() if d not in runtime) == []
    used_by_tests = _distributions(_imports(list((ROOT / "tests").glob("*.py"))
                                            + list((ROOT / "notebooks").glob("*.ipynb"))))
    assert sorted(m for m, d in used_by_tests.items() if d not in runtime and d not in test) == []


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = (ROOT / "environment.yml").read_text()
    listed = {_norm(m.group(1)): m.group(0).strip()[2:]
              for m in re.finditer(r"^\s+- ([A-Za-z0-9_.\-]+)([<>=!].*)?$", env, flags=re.M)}
    for req in project["dependencies"] + project["optional-dependencies"]["test"]:
        name = _norm(re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0])
        conda = CONDA_NAMES.get(name, name)
        assert conda in listed, f"{req} is not in environment.yml"
        bound = req[len(re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0]):]
        assert listed[conda].endswith(bound), (req, listed[conda])
