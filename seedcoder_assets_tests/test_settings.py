"""Every environment variable is read in settings.py and documented in the README's settings table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from seedcoder_assets import settings

PACKAGE = Path(settings.__file__).parent
README = PACKAGE.parent / "README.md"


def _reads_environment(tree: ast.AST) -> list[int]:
    """Lines that read a variable: os.environ.get / os.environ[...] / os.getenv (copying the whole
    environment for a child process is not a read)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "getenv":
            lines.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr == "get" and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "environ":
            lines.append(node.lineno)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            lines.append(node.lineno)
    return lines


def test_only_the_settings_module_reads_the_environment() -> None:
    offenders = {str(p.relative_to(PACKAGE)): lines for p in PACKAGE.rglob("*.py")
                 if p.name != "settings.py" and (lines := _reads_environment(ast.parse(p.read_text())))}
    assert offenders == {}


def test_every_variable_is_in_the_readme_table() -> None:
    names = set(re.findall(r'"((?:SEEDCODER|AWS|DAGSTER)_[A-Z0-9_]+)"', (PACKAGE / "settings.py").read_text()))
    table = "\n".join(line for line in README.read_text().splitlines() if line.startswith("| `"))
    documented = set(re.findall(r"`((?:SEEDCODER|AWS|DAGSTER)_[A-Z0-9_]+)`", table))
    documented |= {f"SEEDCODER_ORACLE{s}" for s in re.findall(r"`(_[A-Z_]+)`", table)}  # `_TIMEOUT_S` shorthand
    assert names - documented == set()


def test_defaults_and_overrides() -> None:
    s = settings.current({"SEEDCODER_HOME": "/h", "SEEDCODER_EXECUTOR": "k8s", "SEEDCODER_AUTOMATION": "on"})
    assert (s.lake_root, s.catalog, s.max_concurrent, s.automation) == ("/h/lake", "/h/catalog.duckdb", 8, True)
    s = settings.current({"SEEDCODER_HOME": "/h", "SEEDCODER_LAKE_ROOT": "s3://b/lake"})
    assert (s.lake_root, s.landing_root, s.max_concurrent, s.automation) == ("s3://b/lake", "/h/landing", 2, False)
