"""Architecture figures of the thermohw package (issue "a house a newcomer reads in 15 minutes").

    python tools/arch_metrics.py [--list]

Counts, from the source with `ast` (nothing is imported):
- modules and their lines; modules over 800 lines;
- functions (and methods) over 80 lines;
- imports of the package's own modules made inside functions;
- import cycles among the package's modules, in-function imports included (strongly connected
  components of the import graph), and the depth of the layering (longest import chain once
  cycles are collapsed).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PKG = "thermohw"
ROOT = Path(__file__).resolve().parents[1] / PKG


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(mod: str, is_pkg: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names of the package modules an import statement refers to."""
    out = []
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PKG]
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix.split(".")[0] != PKG:
        return []
    for a in node.names:
        out.append(f"{prefix}.{a.name}")  # may be a submodule or a name in prefix
    # 'from pkg import submodule' depends on the submodule, not on what pkg/__init__ defines
    if not all(f"{prefix}.{a.name}" in MODULES for a in node.names):
        out.append(prefix)
    return out


MODULES: set[str] = set()


def scan():
    mods = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    MODULES.update(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    infunc, long_funcs, lines = [], [], {}
    for m, p in mods.items():
        src = p.read_text()
        lines[m] = src.count("\n") + 1
        tree = ast.parse(src)
        is_pkg = p.name == "__init__.py"
        parents = {}
        for node in ast.walk(tree):
            for ch in ast.iter_child_nodes(node):
                parents[ch] = node
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long_funcs.append((m, node.name, n))
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = [t for t in resolve(m, is_pkg, node)]
                hits = set()
                for t in targets:  # keep the longest name that is a module
                    while t and t not in mods:
                        t = t.rpartition(".")[0]
                    if t and t != m:
                        hits.add(t)
                if not hits:
                    continue
                if TYPE_CHECKING_block(node, parents):
                    continue
                edges[m] |= hits
                up = parents.get(node)
                while up is not None and not isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    up = parents.get(up)
                if up is not None:
                    infunc.append((m, up.name, node.lineno, sorted(hits)))
    return mods, edges, infunc, long_funcs, lines


def TYPE_CHECKING_block(node, parents) -> bool:
    up = parents.get(node)
    while up is not None:
        if isinstance(up, ast.If) and "TYPE_CHECKING" in ast.unparse(up.test):
            return True
        up = parents.get(up)
    return False


def sccs(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = i[0]
        i[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def depth(edges, comps) -> int:
    comp_of = {m: k for k, c in enumerate(comps) for m in c}
    cedges = {k: set() for k in range(len(comps))}
    for a, bs in edges.items():
        for b in bs:
            if comp_of[a] != comp_of[b]:
                cedges[comp_of[a]].add(comp_of[b])
    memo = {}

    def d(k):
        if k not in memo:
            memo[k] = 1 + max((d(j) for j in cedges[k]), default=0)
        return memo[k]

    return max(d(k) for k in cedges)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list every finding")
    args = ap.parse_args()
    mods, edges, infunc, long_funcs, lines = scan()
    # the package __init__ re-exports; imports of it are imports of what it re-exports
    comps = sccs(edges)
    cycles = [c for c in comps if len(c) > 1]
    big = sorted((n, m) for m, n in lines.items() if n > 800)
    print(f"modules: {len(mods)}, lines: {sum(lines.values())}")
    print(f"modules over 800 lines: {len(big)} {[f'{m} ({n})' for n, m in big]}")
    print(f"functions over 80 lines: {len(long_funcs)}")
    print(f"in-function imports of package modules: {len(infunc)}")
    print(f"import cycles (in-function imports counted): {len(cycles)}")
    for c in cycles:
        print("  cycle: " + " <-> ".join(c))
    print(f"layering depth (longest import chain, cycles collapsed): {depth(edges, comps)}")
    if args.list:
        for m, f, n in sorted(long_funcs, key=lambda r: -r[2]):
            print(f"  long: {m}.{f} {n} lines")
        for m, f, ln, hits in infunc:
            print(f"  in-function import: {m}:{ln} in {f}() -> {', '.join(hits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
