"""Private Celery and Kombu members are touched only inside the broker seam.

Outside ``wowevent_kombu/brokers/``, no module may read or write a private member that Celery,
Kombu, billiard or py-amqp define (``obj._name``, ``getattr(obj, "_name")``), nor override one
in a subclass of their classes (``def _name`` or ``self._name`` in such a class), unless the
bus defines that name itself for its own objects. A Celery or Kombu release that changes such
a member then breaks only the seam, where a contract test names it.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import wowevent_kombu

PACKAGE = Path(wowevent_kombu.__file__).parent
SEAM = PACKAGE / "brokers"
UPSTREAM = ("celery", "kombu", "billiard", "amqp")


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def defined_names(root: Path) -> set[str]:
    """Private names a source tree defines: functions, classes, attributes, assignments."""
    found: set[str] = set()
    for path in root.rglob("*.py"):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                found.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(node.id)
    return {name for name in found if private(name)}


def upstream_private_names() -> set[str]:
    names: set[str] = set()
    for package in UPSTREAM:
        module = importlib.import_module(package)  # Kombu replaces its module: no __spec__
        names |= defined_names(Path(str(module.__file__)).parent)
    return names


def upstream_aliases(tree: ast.Module) -> set[str]:
    """Local names bound to Celery/Kombu modules or objects by this module's imports."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UPSTREAM:
            aliases |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UPSTREAM:
                    aliases.add((alias.asname or alias.name).split(".")[0])
    return aliases


def derives_from_upstream(cls: ast.ClassDef, aliases: set[str]) -> bool:
    for base in cls.bases:
        root = base
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in aliases:
            return True
    return False


def own_names(tree: ast.Module, aliases: set[str]) -> set[str]:
    """Private names the module defines for itself (not as overrides in a Celery subclass)."""
    overriding = {
        id(item)
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef) and derives_from_upstream(cls, aliases)
        for item in ast.walk(cls)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in overriding:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):  # an attribute of its own objects; a store on anything else may be Celery's
            found.add(node.attr)
    return {name for name in found if private(name)}


def uses(tree: ast.Module, aliases: set[str]) -> Iterator[tuple[int, str]]:
    """(line, name) of every private member this module touches or overrides."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            yield node.lineno, node.attr
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    yield from [(node.lineno, name.value)] if private(name.value) else []
        elif isinstance(node, ast.ClassDef) and derives_from_upstream(node, aliases):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and private(item.name):
                    yield item.lineno, item.name


def test_no_private_celery_or_kombu_member_outside_the_seam() -> None:
    theirs = upstream_private_names()
    modules = {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
        if SEAM not in path.parents
    }
    ours: set[str] = set()
    for tree in modules.values():
        ours |= own_names(tree, upstream_aliases(tree))
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
        for path, tree in modules.items()
        for line, name in uses(tree, upstream_aliases(tree))
        if name in theirs and name not in ours
    ]
    assert not found, (
        "private Celery/Kombu members used outside wowevent_kombu/brokers/ (move the access "
        "into the seam, under a contract test):\n" + "\n".join(found)
    )


def test_the_check_sees_a_private_member_outside_the_seam(tmp_path: Path) -> None:
    """The detector itself: a Celery subclass overriding a private method is found."""
    source = (
        "from celery.worker.request import Request\n"
        "class R(Request):\n"
        "    def _on_reject(self):\n"
        "        return self._context\n"
    )
    tree = ast.parse(source)
    aliases = upstream_aliases(tree)
    theirs = upstream_private_names()
    found = {name for _, name in uses(tree, aliases) if name in theirs}
    assert found == {"_on_reject", "_context"}
    assert own_names(tree, aliases) == set()
