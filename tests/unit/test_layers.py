"""The structure holds: no import cycle between any two modules, and each SCF zip carries exactly the packages its
handler imports (the layers themselves are import-linter's contract in pyproject.toml, run by ``make lint``)."""

from __future__ import annotations

import grimp
import pytest

from scf_relay.function_zips import FUNCTIONS

PACKAGES = (
    "relay_core",
    "tencent_plumbing",
    "objectstore",
    "jobqueue",
    "vendors",
    "moderation",
    "consumer",
    "producer_shim",
    "webhook_entry",
    "scf_relay",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_two_modules_import_each_other_even_through_others(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    class Tiny:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(module: str) -> set[str]:
            return {"a": {"b"}, "b": {"c"}, "c": {"a"}}[module]

    assert _cycles(Tiny()) == [["a", "b", "c"]]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_zip_carries_exactly_the_packages_its_handler_imports(graph, name):
    spec = FUNCTIONS[name]
    imported = {spec.handler_module, *graph.find_upstream_modules(spec.handler_module)}
    packages = {module.split(".")[0] for module in imported}
    assert packages == set(spec.packages)
    assert "scf_relay" not in packages  # the application never ships inside a function
    assert not [m for m in imported if m.startswith("vendors.emulator")]
