"""The package as a whole: its modules import one another in one direction only (no import cycles)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ptdit"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__) for every module of ptdit."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the ptdit modules it imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: `from .x import y`, `from .. import y`
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from pkg import submodule` imports the submodule
                    deps.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_is_read_from_every_kind_of_import():
    graph = import_graph()
    assert "ptdit.model" in graph["ptdit"]  # `from .model import PTDiT` in __init__
    assert "ptdit.bench.measure" in graph["ptdit.bench.cli"]  # `from .measure import ...`
    assert "ptdit.config" in graph["ptdit.complexity.cli"]  # `from ..config import ...`
    assert "ptdit.autoencoders" in graph["ptdit.pipeline"]  # inside a function


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_ptdit_modules():
    """Dependencies point one way: a module never imports, even inside a function, one that imports it back."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# --------------------------------------------------------------------------------------------- list options
NOT_SPLIT = {"--set"}  # FIELD=VALUE items whose values may hold commas (window=1,8,8): a plain nargs="+" list


def test_list_options_of_every_command_take_one_form():
    """Every list option of a ptdit command goes through ptdit.options.add_list_option (`--models A B`, a comma
    inside a value separating too): no command-specific nargs lists, comma strings or repeated flags."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"):
                continue
            flags = [
                a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")
            ]
            kw = {k.arg: k.value for k in node.keywords}
            nargs = getattr(kw.get("nargs"), "value", None)
            listy = (
                nargs in ("+", "*")
                or isinstance(nargs, int)
                or getattr(kw.get("action"), "value", None) == "append"
            )
            if flags and listy and not set(flags) & NOT_SPLIT:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {flags[0]}")
            help_text = getattr(kw.get("help"), "value", "") or ""
            if flags and "comma-separated" in str(help_text):
                offenders.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {flags[0]} (comma-separated)"
                )
    assert not offenders, "list options outside add_list_option: " + ", ".join(offenders)


def test_add_list_option_reads_spaces_and_commas_alike():
    import argparse

    import pytest

    from ptdit.options import add_list_option

    p = argparse.ArgumentParser()
    add_list_option(p, "--models")
    add_list_option(p, "--window", type=int, length=3)
    add_list_option(p, "--world", choices=["a", "b"])
    assert p.parse_args(["--models", "A", "B", "C"]).models == ["A", "B", "C"]
    assert p.parse_args(["--models", "A,B", "C"]).models == ["A", "B", "C"]
    assert p.parse_args(["--window", "1", "8", "8"]).window == [1, 8, 8]
    assert p.parse_args(["--window", "1,8,8"]).window == [1, 8, 8]
    assert p.parse_args(["--world", "b,a"]).world == ["b", "a"]
    for bad in (["--window", "1", "8"], ["--window", "1", "x", "8"], ["--models", ","], ["--world", "a,c"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


# --------------------------------------------------------------------------------------------- written files
def test_flops_says_where_it_wrote_its_plot(tmp_path, capsys):
    from ptdit.cli import main

    plot = tmp_path / "flops.png"
    assert main(["flops", "--models", "PT-DiT-S", "--sizes", "256", "--json", "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    assert plot.is_file() and f"wrote {plot}" in captured.err
    assert captured.out.lstrip().startswith("[")  # stdout stays JSON
