"""The layout's rules, checked on the source: who may import whom, no import circles, small modules.

docs/architecture.md describes the rooms; this test keeps it true. Imports are read with ``ast``
from every module of the four packages, lazy imports inside functions included, so a rule
cannot be dodged by importing late.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "serve", "rag", "tuner", "graders")
MAY_IMPORT = {"gateway": {"gateway", "serve", "rag", "graders"}, "serve": {"serve"}, "rag": {"rag"},
              "tuner": {"tuner", "graders"}, "graders": {"graders"}}  # fmt: skip
"""Package -> the packages of ours it may import: tuner, serve and rag never import each other; graders, which
both the tuner (rewards) and the gateway (the graders API) need, imports none of ours."""
NEVER = {"gateway": {"tuner", "trl", "peft", "vllm"}, "rag": {"vllm", "trl", "peft"}, "tuner": {"vllm"},
         "graders": {"torch", "transformers", "sentence_transformers", "trl", "peft", "vllm", "fastapi"}}  # fmt: skip
"""Package -> libraries it must not import: the gateway starts training as a subprocess."""
VLLM_MODULES = {"serve.vllm_engine"}
"""The only modules that may import vllm (today none does: vLLM runs as its own server process)."""
ROOMS = {
    "shared": set(),  # gateway.settings, gateway.errors, gateway.model_names: every room may import them
    "knowledge": set(),
    "data": {"knowledge"},
    "compare": {"data"},
    "console": set(),
    "jobs": {"knowledge"},  # a retriever job tunes a knowledge base (gateway.jobs.retriever)
    "grading": {"compare"},  # a judge URL is allowed as a compare judge's is
    "api": {"knowledge", "compare", "console", "jobs", "responses", "grading"},  # responses: the app mounts its routes
    "responses": {"api", "knowledge"},  # built on the chat pipeline (api) and knowledge bases
    "cli": {"api", "knowledge", "compare", "data", "jobs"},
}
"""Gateway room -> the other rooms it may import (api and responses import each other; no module circles)."""
MAX_LINES = 310  # "about 300"


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (ours resolved to the module, a package's name to its submodule)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                names.add(child if child in MODULES else node.module)
    return names


IMPORTS = {module: imports(path) for module, path in MODULES.items()}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else "shared"


def test_packages_import_only_what_the_layout_allows():
    wrong = []
    for module, names in IMPORTS.items():
        package = module.split(".")[0]
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES and top not in MAY_IMPORT[package] or top in NEVER.get(package, ()):
                wrong.append(f"{module} imports {name}")
            if top == "vllm" and module not in VLLM_MODULES:
                wrong.append(f"{module} imports vllm")
    assert not wrong, "\n".join(wrong)


def test_gateway_rooms_import_one_way():
    wrong = []
    for module, names in IMPORTS.items():
        if not module.startswith("gateway."):
            continue
        here = room(module)
        for name in (n for n in names if n.startswith("gateway.") and n in MODULES):
            there = room(name)
            if there not in (here, "shared") and there not in ROOMS[here]:
                wrong.append(f"{module} ({here}) imports {name} ({there})")
            if here == "shared" and there != "shared":
                wrong.append(f"{module} is shared by every room but imports {name} ({there})")
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_circles():
    graph = {
        module: {name for name in names if name in MODULES and name != module} for module, names in IMPORTS.items()
    }
    circles = [scc for scc in strongly_connected(graph) if len(scc) > 1]
    assert not circles, "\n".join(" <-> ".join(sorted(scc)) for scc in circles)


def test_modules_are_small():
    large = {module: n for module, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not large, large


def test_every_module_says_what_it_does():
    silent = [
        module
        for module, path in MODULES.items()
        if path.stat().st_size and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not silent, silent


@pytest.mark.parametrize(
    "module",
    ["gateway.api.protocol", "gateway.api.objects", "gateway.api.knowledge_protocol", "gateway.compare.protocol"],
)
def test_wire_models_load_no_index(module):
    code = f"import sys, {module}; print(sorted(m for m in ('faiss', 'bm25s', 'torch') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]"


def test_graders_load_no_model_library():
    code = "import sys, graders; print(sorted(m for m in ('torch', 'transformers', 'fastapi') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "[]"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found
