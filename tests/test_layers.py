"""Imports point down the layers of DESIGN.md only; asyncio appears only in server/."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "logbroker"

# DESIGN.md's list, top to bottom is bottom to top here: a module may import its own layer's
# package and anything ranked lower.
RANK = {
    "errors": 0, "clock": 0, "config": 0,
    "records": 1,
    "storage": 2, "groups": 2,
    "broker": 3,
    "client": 4,
    "protocol": 5,
    "server": 6,
    "inspect": 7,
    "cli": 8,
}
LEAVES = {"errors", "clock", "config"}
# protocol/ is sans-I/O and independent of storage: it may import the leaves only.
ONLY = {"protocol": LEAVES}


def parse(path: pathlib.Path) -> ast.AST:
    """ast.parse, retried: CPython 3.11 keeps the AST converter's recursion counter per interpreter, so
    another thread formatting a traceback (which parses source lines with ast) at the same moment makes
    a parse fail with "AST constructor recursion depth mismatch" (python/cpython#106905)."""
    for attempt in range(5):
        try:
            return ast.parse(path.read_text(), str(path))
        except SystemError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "logbroker" or len(parts) < 2:
        return None
    return parts[1]


def logbroker_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    module = "logbroker." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # "from . import x": each name is a module
                    found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
                    continue
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts == ("__init__.py",) or rel.parts == ("__main__.py",):
            continue  # the package root re-exports the public API from every layer
        yield path, rel.parts[0].removesuffix(".py")


def test_every_module_belongs_to_a_known_layer():
    unknown = {layer for _, layer in modules()} - set(RANK)
    assert not unknown, f"add these to RANK (and to DESIGN.md's layers): {unknown}"


def test_imports_point_down_the_layers():
    violations = []
    for path, layer in modules():
        for lineno, target in logbroker_imports(path):
            target_layer = layer_of(target)
            if target_layer is None or target_layer == layer:
                continue
            allowed = ONLY.get(layer)
            ok = target_layer in allowed if allowed is not None else RANK[target_layer] < RANK[layer]
            if target_layer in LEAVES and layer in LEAVES:
                ok = True
            if not ok:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {layer} imports {target}")
    assert not violations, "\n".join(violations)


def test_asyncio_and_sockets_only_in_server():
    offenders = []
    for path, layer in modules():
        if layer in ("server", "cli"):
            continue
        tree = parse(path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in ("asyncio", "socket")]
    assert not offenders, offenders


def test_the_checker_sees_a_violation():
    # guard against a checker that passes vacuously: records must not reach up to storage
    assert RANK["storage"] > RANK["records"]
    assert layer_of("logbroker.storage.log") == "storage"
    imports = logbroker_imports(PACKAGE / "storage" / "log.py")
    assert any(layer_of(t) == "records" for _, t in imports)
