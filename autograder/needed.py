"""The definitions a worker loads: only those that the graded names need.

A notebook's definitions (:mod:`autograder.extract`) include imports and helpers that no graded function uses
(``torchvision``, ``scipy.optimize`` and ``sklearn.metrics`` for the given evaluation code: about half of a
worker's start-up). :func:`needed_cells` keeps the top-level statements that define a *root* (a graded name:
:func:`autograder.config.graded_names`) and, transitively, every statement that defines a name a kept
statement mentions anywhere (its body, decorators, defaults and annotations included), in their original order.
``from __future__`` and ``from M import *`` statements are always kept.

It over-approximates (a local variable that shares a global's name keeps that global) and is linear in the size
of the definitions. What it cannot see is a name reached only through a string (``globals()["helper"]``): the
README's student contract says that graded code refers to its helpers by name.
"""
from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Iterable


def _defines(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {sub.id for target in targets if target is not None for sub in ast.walk(target)
            if isinstance(sub, ast.Name)}


def _always(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and (node.module == "__future__" or
                                                 any(alias.name == "*" for alias in node.names))


def _mentions(node: ast.stmt) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def needed_cells(cells: list[tuple[str, str]], roots: Iterable[str]) -> list[tuple[str, str]]:
    """``cells`` ((label, definitions) pairs) cut down to the statements that ``roots`` need; a cell left with
    none is dropped, and one that does not parse is kept whole (loading it reports its error)."""
    statements: list[tuple[int, ast.stmt, list[str]]] = []  # (cell position, statement, the cell's lines)
    whole: set[int] = set()
    for position, (_, source) in enumerate(cells):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            whole.add(position)
            continue
        lines = source.splitlines()
        statements += [(position, node, lines) for node in tree.body]
    definers: dict[str, list[int]] = defaultdict(list)
    for index, (_, node, _) in enumerate(statements):
        for name in _defines(node):
            definers[name].append(index)
    kept = {index for index, (_, node, _) in enumerate(statements) if _always(node)}
    waiting = deque(roots)
    seen: set[str] = set()
    while waiting:
        name = waiting.popleft()
        if name in seen:
            continue
        seen.add(name)
        for index in definers.get(name, ()):
            if index not in kept:
                kept.add(index)
                waiting.extend(_mentions(statements[index][1]) - seen)
    pieces: dict[int, list[str]] = defaultdict(list)
    for index in sorted(kept):
        position, node, lines = statements[index]
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        pieces[position].append("\n".join(lines[first - 1 : node.end_lineno]))
    return [(label, source if position in whole else "\n".join(pieces[position]))
            for position, (label, source) in enumerate(cells) if position in whole or pieces[position]]
