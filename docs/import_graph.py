"""The import graph of attrackt's modules, and its two layers.

    python docs/import_graph.py            # print each module's attrackt imports (module level)
    python docs/import_graph.py --check    # exit 1 when a learning module imports a tracking one
    python docs/import_graph.py --mermaid  # the graph between components (docs/architecture.md)

The **learning** layer (torch: data windows, models, objectives, training, prediction,
fine-tuning, embeddings) runs on a GPU machine that lacks the tracking layer's libraries; the
**tracking** layer (reading and writing movies and graphs, linking, ranking, scoring, plots,
reports, the viewer, the command line) uses both. Both build on the **core** (the data types,
errors, atomic files).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "attrackt"

CORE = (
    "attrackt.data", "attrackt.errors", "attrackt.io.atomic", "attrackt.io.jsonfile",
    "attrackt.voxels",
)  # fmt: skip
LEARNING = (
    "attrackt.budget", "attrackt.checkpoints", "attrackt.distributed", "attrackt.embed",
    "attrackt.features",
    "attrackt.finetune", "attrackt.interrupt", "attrackt.losses", "attrackt.model",
    "attrackt.optim", "attrackt.predict", "attrackt.resume", "attrackt.rng", "attrackt.sampling",
    "attrackt.schedule", "attrackt.store", "attrackt.train", "attrackt.training",
    "attrackt.trainlog", "attrackt.validation",
)  # fmt: skip


def layer(module: str) -> str:
    """``core``, ``learning`` or ``tracking``."""
    if any(module == m or module.startswith(m + ".") for m in CORE):
        return "core"
    if any(module == m or module.startswith(m + ".") for m in LEARNING):
        return "learning"
    return "tracking"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """The attrackt modules ``path`` imports outside any function (what loading it loads)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If):  # if TYPE_CHECKING: ... loads nothing
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("attrackt")}
        elif isinstance(node, ast.ImportFrom) and node.module == "attrackt":
            found |= {f"attrackt.{a.name}" for a in node.names}  # from attrackt import x
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attrackt"):
            found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): top_level_imports(p) for p in sorted(SRC.rglob("*.py"))}


#: libraries only the tracking layer may use (GPU machines lack them)
TRACKING_LIBRARIES = ("motile", "ilpy", "traccuracy", "geff", "highspy", "zarr", "imagecodecs")


def library_imports(path: Path) -> set[str]:
    """Every tracking library ``path`` imports, at any level (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in TRACKING_LIBRARIES}
    return found


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports that climb from the learning (or core) layer into the tracking layer, and any
    use of a tracking library below the tracking layer."""
    rank = {"core": 0, "learning": 1, "tracking": 2}
    found = [
        f"{m} ({layer(m)}) imports {i} ({layer(i)})"
        for m, targets in edges.items()
        for i in sorted(targets)
        if rank[layer(i)] > rank[layer(m)]
    ]
    for path in sorted(SRC.rglob("*.py")):
        name = module_name(path)
        if layer(name) != "tracking":
            found += [f"{name} ({layer(name)}) uses {lib}" for lib in library_imports(path)]
    return found


def component(module: str) -> str:
    """The package or top module a module belongs to (``attrackt.link.guard`` -> ``link``;
    the core's ``io`` modules by their own name)."""
    parts = module.split(".")
    if layer(module) == "core" and parts[1] == "io":
        return parts[-1]
    return parts[1] if len(parts) > 1 else "attrackt"


def mermaid(edges: dict[str, set[str]]) -> str:
    """The graph between components, one subgraph per layer, as a mermaid flowchart."""
    links = sorted(
        {(component(m), component(t)) for m, ts in edges.items() for t in ts}
        - {(c, c) for c in map(component, edges)}
    )
    members: dict[str, set[str]] = {}
    for m in edges:
        if component(m) not in ("attrackt", "__main__"):
            members.setdefault(layer(m), set()).add(component(m))
    lines = ["flowchart BT"]
    for name in ("tracking", "learning", "core"):
        lines.append(f"  subgraph {name}")
        lines += [f"    {c}" for c in sorted(members.get(name, ()))]
        lines.append("  end")
    core = members.get("core", set())
    lines += [  # every component may use the core: those arrows are left out
        f"  {a} --> {b}" for a, b in links if "attrackt" not in (a, b) and b not in core
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--mermaid", action="store_true", help="the graph between components")
    args = parser.parse_args()
    edges = graph()
    if args.mermaid:
        print(mermaid(edges))
        return
    bad = violations(edges)
    if args.check:
        print("\n".join(bad) or "the layers hold")
        sys.exit(1 if bad else 0)
    for m, targets in edges.items():
        print(f"{m} [{layer(m)}] -> {', '.join(sorted(targets)) or '-'}")


if __name__ == "__main__":
    main()
