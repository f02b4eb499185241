"""The code's shape, held: short functions with few parameters, imports at the top of modules,
MNIST known only to the data layer, tools that run as modules without editing sys.path."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "vaelab"
MAX_LINES = 60
MAX_PARAMETERS = 8


def _functions(root: Path):
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT), node


def _parameters(node: ast.FunctionDef) -> int:
    a = node.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    n = len(names) + bool(a.vararg) + bool(a.kwarg)
    return n - bool(names and names[0].arg in ("self", "cls"))


def test_no_function_in_the_package_is_over_60_lines():
    long = [
        f"{path}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in _functions(SRC)
        if node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert not long, "\n".join(long)


def test_no_function_takes_more_than_8_parameters():
    wide = [
        f"{path}:{node.name} ({_parameters(node)})"
        for path, node in _functions(SRC)
        if _parameters(node) > MAX_PARAMETERS
    ]
    assert not wide, "\n".join(wide)


def test_imports_stand_at_the_top_of_modules_except_in_the_command_line():
    # cli.py imports torch-backed modules per command, so that `vaelab --help` stays quick
    inside = [
        f"{path}:{node.name}"
        for path, node in _functions(SRC)
        if path.name != "cli.py"
        and any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(node))
    ]
    assert not inside, "\n".join(inside)


def test_only_the_data_layer_names_mnist_in_a_branch():
    branch = re.compile(r"""(==|!=)\s*["']mnist["']|["']mnist["']\s*(==|!=)|in \(["']mnist""")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SRC.rglob("*.py")
        if "data" not in path.relative_to(SRC).parts[:1]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if branch.search(line)
    ]
    assert not found, "\n".join(found)


def test_no_tool_edits_sys_path():
    edits = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("src", "scripts", "bench", "tools", "examples")
        if (ROOT / folder).is_dir()
        for path in (ROOT / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"sys\.path\.(insert|append)", line)
    ]
    assert not edits, "\n".join(edits)
