"""The floors of docs/ARCHITECTURE.md, checked by parsing every module's imports.

Dependencies point one way: api, cli -> library -> services -> (search, indexer,
generation) -> encoders -> storage and the ground modules. The tools on the side (datasets,
training, evaluation) may use everything; runtime code never imports them, and the top
floors reach storage only through the Library."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "mmsearch"

FLOORS = {
    "config": 0,
    "imageio": 0,
    "camera_raw": 0,
    "capture_time": 0,
    "geo": 0,
    "perceptual_hash": 0,
    "pixels": 0,
    "storage": 0,
    "encoders": 1,
    "search": 2,
    "indexer": 2,
    "generation": 2,
    "services": 3,
    "library": 4,
    "api": 5,
    "cli": 5,
    "__main__": 6,
}
TOOLS = {"datasets", "training", "evaluation"}
# CLI verbs that front the tools: they may call them (the rest of the CLI may not).
TOOL_VERBS = {"mmsearch.cli.train", "mmsearch.cli.evaluate", "mmsearch.cli.synth", "mmsearch.cli.demo"}
# Packages on one floor that may use each other: the ground's modules (plain helpers, no floor
# above them in between).
GROUND = ("config", "imageio", "camera_raw", "capture_time", "geo", "perceptual_hash", "pixels", "storage")
ALLOWED_SIDEWAYS = {(a, b) for a in GROUND for b in GROUND}
# The CLI's reach into the API beside it: `serve` and `demo` run the app, and `search --json`
# prints a hit as the API shows it (one place builds the URLs). Nothing else of the API.
CLI_USES_OF_THE_API = {
    "mmsearch.api.app",
    "mmsearch.api.http_protocol",
    "mmsearch.api.observability",
    "mmsearch.api.urls",
}
FACADE_ONLY = {"api", "cli"}  # no SQL above the Library: they never import storage or sqlalchemy,
PLAIN_FILES = "mmsearch.storage.files"  # except the atomic-write and digest helpers, which hold no library data


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(name: str, source: str, is_package: bool) -> list[str]:
    """Absolute names of every module `source` imports, lazy imports inside functions included."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import base` imports a submodule: name it.
            found += [f"{target}.{a.name}" for a in node.names] if node.module is None else [target]
    return found


def top(module: str) -> str:
    """The floor-bearing part of an mmsearch module name: mmsearch.search.engine -> search."""
    return module.split(".")[1]


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """Broken floors among {module name: (source, is_package)}."""
    found = []
    for name, (source, is_package) in sorted(modules.items()):
        if name == "mmsearch":
            continue
        here = top(name)
        for target in imported_modules(name, source, is_package):
            if target.startswith("sqlalchemy") and here in FACADE_ONLY:
                found.append(f"{name} imports {target}: SQL stays below the Library")
            if not target.startswith("mmsearch.") or here in TOOLS:
                continue
            there = top(target)
            if there == here:
                continue
            if there in TOOLS:
                if name not in TOOL_VERBS:
                    found.append(f"{name} imports the tool {target}: runtime code never does")
                continue
            if here in FACADE_ONLY and there == "storage" and target != PLAIN_FILES:
                found.append(f"{name} imports {target}: the top floors reach storage through the Library")
            if there not in FLOORS or here not in FLOORS:
                found.append(f"{name} imports {target}: a package with no floor (add it to FLOORS)")
            elif FLOORS[there] > FLOORS[here]:
                found.append(f"{name} imports {target} from a higher floor")
            elif here == "cli" and there == "api":
                if target not in CLI_USES_OF_THE_API:
                    found.append(f"{name} imports {target}: the CLI uses only the API's app and URLs")
            elif FLOORS[there] == FLOORS[here] and (here, there) not in ALLOWED_SIDEWAYS:
                found.append(f"{name} imports {target} sideways (same floor)")
    return found


def package_modules() -> dict[str, tuple[str, bool]]:
    return {module_name(p, PACKAGE_DIR): (p.read_text(), p.name == "__init__.py") for p in PACKAGE_DIR.rglob("*.py")}


def test_every_import_points_down_a_floor():
    assert violations(package_modules()) == []


def test_every_package_has_a_floor_or_is_a_tool():
    tops = {top(name) for name in package_modules() if name != "mmsearch"}
    assert tops <= set(FLOORS) | TOOLS, tops - set(FLOORS) - TOOLS


def test_the_checker_catches_a_cycle_through_storage_and_a_tool_import():
    # The layout before the storage floor: the engine's package imported generation, which
    # imported the engine's package for its store; and the library read a tool's thresholds.
    modules = {
        "mmsearch.search.generate_on_miss": ("from ..generation.library_media import find_generated\n", False),
        "mmsearch.generation.library_media": ("from ..search.store import Media\n", False),
        "mmsearch.library": ("def f():\n    from .evaluation.miss_calibration import load_thresholds\n", False),
        "mmsearch.api.health": (
            "from sqlalchemy import select\nfrom ..storage.store import Media\n"
            "from ..storage.files import atomic_write\n",  # plain file helpers: allowed
            False,
        ),
        "mmsearch.storage.store": ("from ..encoders import load_encoder\n", False),
        "mmsearch.cli.search": ("from ..api.files import safe_path\nfrom ..api.urls import hit_json\n", False),
    }
    assert violations(modules) == [
        "mmsearch.api.health imports sqlalchemy: SQL stays below the Library",
        "mmsearch.api.health imports mmsearch.storage.store: the top floors reach storage through the Library",
        "mmsearch.cli.search imports mmsearch.api.files: the CLI uses only the API's app and URLs",
        "mmsearch.generation.library_media imports mmsearch.search.store sideways (same floor)",
        "mmsearch.library imports the tool mmsearch.evaluation.miss_calibration: runtime code never does",
        "mmsearch.search.generate_on_miss imports mmsearch.generation.library_media sideways (same floor)",
        "mmsearch.storage.store imports mmsearch.encoders from a higher floor",
    ]


def test_relative_imports_resolve_from_a_package_and_from_a_module():
    assert imported_modules("mmsearch.encoders", "from . import base\nfrom .openclip import X\n", True) == [
        "mmsearch.encoders.base",
        "mmsearch.encoders.openclip",
    ]
    assert imported_modules("mmsearch.search.engine", "from ..storage.store import Media\nimport numpy\n", False) == [
        "mmsearch.storage.store",
        "numpy",
    ]


def test_no_module_is_over_400_lines():
    long = {name: n for name, (source, _) in package_modules().items() if (n := len(source.splitlines())) > 400}
    assert long == {}
