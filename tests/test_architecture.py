"""The package's shape, read from its source with ``ast`` (nothing is imported or run):

(a) no import cycle between modules of keylime_prod;
(b) a stage package imports another stage only through that stage's ``artefact`` module (the contract between
    stages, docs/style.md items 17 and 18);
(c) every ``docs/*.md`` a module names exists in the repository.

Import edges for (a) are the module-level ones: those at the top of a module, including under ``if``/``try`` and
``if TYPE_CHECKING:`` (a cycle that only type checking sees still ties two modules into one). Imports inside a
function run when it is called, after every module has loaded, so they cannot deadlock an import and are left out
of (a); they do count for (b), since a stage that calls into another stage at run time depends on it all the same.
Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__`` first, so it is an edge to those packages too
(unless the importing module is inside them, when they are already loading).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "keylime_prod"
STAGES = ("speakers", "audio", "transcript", "edit", "chapters", "notes", "tags", "report", "publish")


@dataclass(frozen=True)
class Import:
    target: str  # dotted module name (a module file, or the package whose attribute is imported)
    line: int
    module_level: bool


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").is_file()


def _resolve(importer: str, level: int, module: str | None) -> str:
    """The absolute name ``from <dots><module>`` means inside ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *(module.split(".") if module else [])])


def _walk(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it runs at module level (not inside a function or class body)."""

    def visit(node: ast.AST, top: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                yield from visit(child, False)
            else:
                yield from visit(child, top)

    yield from visit(tree, True)


def _imports(name: str, path: Path) -> list[Import]:
    out = []
    for node, top in _walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = _resolve(name, node.level, node.module)
            # ``from pkg import sub`` imports the module ``pkg.sub`` when there is one, else an attribute of pkg.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        out += [Import(t, node.lineno, top) for t in targets if t == "keylime_prod" or t.startswith("keylime_prod.")]
    return out


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _edges(importer: str, target: str) -> set[str]:
    """The modules importing ``target`` from ``importer`` runs: the target and its packages not already loading."""
    parts = target.split(".")
    loading = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 2)}
    out = {".".join(parts[:i]) for i in range(1, len(parts) + 1)} - loading
    return {m for m in out if m in MODULES and m != importer}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


def test_the_walker_sees_every_module_and_resolves_relative_imports() -> None:
    """Guards the checks below against passing vacuously: the parse finds the modules and the known edges."""
    assert {"keylime_prod.ffmpeg", "keylime_prod.audio.master", "keylime_prod.cli"} <= set(MODULES)
    assert _resolve("keylime_prod.audio.plan", 2, "config") == "keylime_prod.config"
    assert _resolve("keylime_prod.ffmpeg", 1, "runner") == "keylime_prod.ffmpeg.runner"
    targets = {i.target for i in IMPORTS["keylime_prod.audio.render"] if i.module_level}
    assert {"keylime_prod.ffmpeg", "keylime_prod.audio.plan", "keylime_prod.errors"} <= targets
    assert _edges("keylime_prod.chapters", "keylime_prod.audio.artefact") == {
        "keylime_prod.audio",
        "keylime_prod.audio.artefact",
    }
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules() -> None:
    graph = {
        name: {e for i in imports if i.module_level for e in _edges(name, i.target)}
        for name, imports in IMPORTS.items()
    }
    cycles = _cycles(graph)
    assert not cycles, "import cycles (module-level imports):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_stages_import_other_stages_only_through_their_artefact() -> None:
    bad = []
    for name, imports in IMPORTS.items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in STAGES:
            continue
        for i in imports:
            t = i.target.split(".")
            if len(t) >= 2 and t[1] in STAGES and t[1] != parts[1] and t[2:3] != ["artefact"]:
                bad.append(f"{MODULES[name].relative_to(ROOT)}:{i.line} imports {i.target}")
    assert not bad, "a stage imports another stage beyond its artefact module:\n" + "\n".join(bad)


#: A ``docs/...md`` path at the start of a word: not the tail of a URL or of another repository's path.
_DOC_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]*\w\.md")


def test_every_doc_the_code_names_exists() -> None:
    named = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".html", ".j2", ".jinja", ".md", ".css", ".txt"):
            for m in _DOC_PATH.finditer(path.read_text("utf-8")):
                named.setdefault(m.group(0), f"{path.relative_to(ROOT)}")
    assert "docs/platform.md" in named  # the scan finds the references it is meant to check
    missing = sorted(f"{doc} (named in {where})" for doc, where in named.items() if not (ROOT / doc).is_file())
    assert not missing, "docs named in keylime_prod that the repository lacks:\n" + "\n".join(missing)
