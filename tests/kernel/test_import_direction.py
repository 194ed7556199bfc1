"""Apps import one way (docs/architecture.md): kernel ← orgs ← stations ← billing ←
faults/reports, adapters on top. What happened travels up as an event, never as a call;
so no cycle of any length, and the kernel knows no business app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each package and the first-party packages it may import (its own aside).
ALLOWED = {
    "integrations": set(),
    # Vendor clients are importable by all; the kernel uses them only to run their local
    # fakes in development (`make run`: chargenet/devrun.py).
    "chargenet": {"integrations"},
    "orgs": {"chargenet", "integrations"},
    "stations": {"chargenet", "integrations", "orgs"},
    "billing": {"chargenet", "integrations", "orgs", "stations"},
    "faults": {"chargenet", "integrations", "orgs", "stations", "billing"},
    "reports": {"chargenet", "integrations", "orgs", "stations", "billing", "faults"},
    # Adapters sit on top: they may use any app, and nothing imports them.
    "protocol": {"chargenet", "integrations", "orgs", "stations", "billing", "faults", "reports"},
    # The driver API (REST + H5 pages), an adapter beside protocol.
    "driverapi": {
        "chargenet",
        "integrations",
        "orgs",
        "stations",
        "billing",
        "faults",
        "reports",
        "protocol",
    },
    # The T/CEC 102 partner adapter: on top too, beside protocol (it asks piles through
    # protocol.intents, as every channel does).
    "interconnect": {
        "chargenet",
        "integrations",
        "orgs",
        "stations",
        "billing",
        "faults",
        "reports",
        "protocol",
    },
}


def _imports(path: Path) -> set[str]:
    """First-party top-level packages a module imports, at any depth (function-level
    imports count: they are a dependency just the same)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & ALLOWED.keys()


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_below_it(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imports(path) - ALLOWED[package] - {package})
        for path in _modules(package)
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_allowed_graph_has_no_cycle():
    """The rule itself is a one-way order (so the code that follows it has no cycle)."""
    seen: dict[str, str] = {}

    def visit(package: str, trail: tuple[str, ...]) -> None:
        assert package not in trail, " → ".join((*trail, package))
        if seen.get(package) == "done":
            return
        for below in ALLOWED[package]:
            visit(below, (*trail, package))
        seen[package] = "done"

    for package in ALLOWED:
        visit(package, ())
