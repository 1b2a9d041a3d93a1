"""Source policies: "implement this yourself" checked on the notebook's source, never by running it.

A policy is data: the names of the notebook functions/classes whose implementation is checked
(``functions``, e.g. ``["kmeans"]``) and dotted module prefixes they must not use (``forbid``,
e.g. ``["sklearn.cluster", "scipy.cluster"]``). :func:`policy_findings` parses every code cell with
:mod:`ast` (IPython magics stripped as in :mod:`autograder.extract`; a cell that does not parse is
skipped, exactly as the extraction skips it) and returns human-readable findings in Japanese and
English, as the feedback shows them; an empty list means the policy holds.

What is checked
---------------
The *checked code* is every notebook-level definition of each name in ``functions`` and,
transitively, of every notebook-level function, class or variable that checked code references by
name (its helpers). A definition is a top-level ``def``/``class`` (decorators, default arguments,
annotations and class bodies included), a top-level statement that binds or modifies the name
(``kmeans = ...``, ``kmeans.__code__ = ...``, ``setattr(kmeans, ...)``, ``for``/``with`` targets), and
any top-level definition that declares the name ``global``. Every definition of a name is checked,
since which one runs depends on execution order. Top-level statements that assign to function or
object internals (``f.__code__ = ...``, ``f.__globals__[...] = ...``; see :data:`PATCH_ATTRIBUTES`)
are checked along with every checked function, since an alias can patch it.

A finding is reported when checked code

* contains an import statement of a forbidden module (``import sklearn.cluster``,
  ``from sklearn import cluster``, ``from sklearn.cluster import KMeans``, ...), or any relative
  import (it cannot run in a notebook and its target cannot be verified);
* references a name that an import anywhere in the notebook binds to a forbidden module or to an
  object imported from one (``from sklearn.cluster import KMeans as K`` then ``K(...)``), including
  through an attribute chain or ``getattr`` with a literal name (``sklearn.cluster.KMeans`` when
  ``sklearn`` is bound to the module ``sklearn``; ``cluster.KMeans`` when ``cluster`` is
  ``sklearn.cluster``);
* uses a bare module that *contains* a forbidden module (``m = sklearn``; ``helper(scipy)``), since
  code that holds the package can reach the forbidden part by computed attribute names;
* references a name that is defined nowhere in the notebook while a ``from <module> import *`` of a
  forbidden module (or of a package containing one) is present;
* uses dynamic code that could hide an import: the builtins ``__import__``, ``exec``, ``eval``,
  ``compile``, ``globals``, ``vars``, ``getattr`` with a computed name (except on ``self``/``cls``) or
  ``getattr`` passed as a value; the modules in :data:`DYNAMIC_MODULES` (``importlib``,
  ``sys.modules``, ``builtins``, ``pickle``, ``inspect``, ``gc``, ...); attributes in
  :data:`DYNAMIC_ATTRIBUTES` (``__dict__``, ``__globals__``, ``__subclasses__``, ``.sys``, frame
  attributes, ...) on anything.

A name in ``functions`` that is not defined at all is not a finding (other checks report it). A
forbidden import that is present in the notebook but unused by the checked code is not a finding,
nor is any use of allowed modules (``torch.cdist``, ``from sklearn.metrics import ...``).

Also reported: a name in ``functions`` bound by an import of a forbidden module
(``from scipy.cluster.vq import kmeans``), checked code too deeply nested to analyse, and a notebook
whose code cells hold more than :data:`MAX_NODES` syntax-tree nodes (too large to check).

Cost
----
Linear in the notebook's code, and bounded: the cells that :mod:`autograder.extract` does not read
(over its size caps) are skipped here too, at most :data:`MAX_NODES` nodes are analysed, and the
check stops at :data:`MAX_FINDINGS` findings. Before, 30,000 ``import torch`` lines with a ``kmeans``
that used ``torch`` on each line took 6 minutes (every use was checked against every binding of
the name); now a name's bindings are reduced once to the distinct targets that can matter.

Limits
------
This is a static check: it stops the usual ways of wrapping a library and makes the unusual ones
conspicuous, but it is not a sandbox. It cannot see code outside the notebook (a module shipped
beside it, or written by a ``%%writefile`` cell, that wraps the library; a third-party package that
re-exports it), re-exports of the library through other modules' attributes, or every reflective
trick Python offers. The worker's run-time watch (:mod:`autograder.sandboxed.watch`) is the
complement that closes those: it records any code of the forbidden packages that the student's
function runs, however it was reached. The calls that could unhook that watch or run code out of its
sight (``sys.setprofile``, ``sys.settrace``, ``os.fork``, process pools, ``sys.path``) are dynamic code here.
"""
from __future__ import annotations

import ast
import builtins
from collections import Counter, deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Iterator

from autograder.extract import _without_magics, size_problem
from autograder.i18n import Message, t, verbatim

FORBIDDEN_REASON = t("この課題では PyTorch で自分で実装することが求められています",
                     "the lab asks for your own PyTorch implementation")
DYNAMIC_REASON = t("動的なコードはインポートを隠せるため、この関数では使えません",
                   "dynamic code could hide an import, so it is not allowed in this function")

#: Modules (dotted prefixes) that load modules, code or objects by computed names.
DYNAMIC_MODULES: tuple[str, ...] = (
    "importlib", "imp", "runpy", "pkgutil", "zipimport", "builtins", "__builtin__", "code", "codeop",
    "ctypes", "pickle", "_pickle", "cPickle", "marshal", "dill", "cloudpickle", "shelve", "inspect", "gc",
    "subprocess", "multiprocessing", "os.system", "os.popen", "os.posix_spawn", "os.posix_spawnp",
    *(f"os.{name}" for name in ("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
                                 "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
                                 "spawnvpe")),
    "sys.modules", "sys._getframe", "sys.meta_path", "sys.path", "sys.path_hooks", "sys.path_importer_cache",
    # the profile and trace hooks are how the worker watches which code kmeans runs (sandboxed/probes.py)
    "sys.setprofile", "sys.getprofile", "sys.settrace", "sys.gettrace", "threading.setprofile",
    "threading.settrace", "threading.setprofile_all_threads", "threading.settrace_all_threads", "site",
    # a child process runs code that the worker does not watch
    "os.fork", "os.forkpty", "os.register_at_fork", "concurrent.futures.process",
    "concurrent.futures.ProcessPoolExecutor",
    "operator.attrgetter", "operator.methodcaller", "types.FunctionType", "types.CodeType",
    "types.ModuleType", "types.LambdaType",
)
#: Builtins that run code or look objects up by computed names.
DYNAMIC_BUILTINS: frozenset[str] = frozenset(
    {"__import__", "exec", "eval", "compile", "globals", "vars", "__builtins__", "breakpoint"}
)
#: Attributes that reach modules, namespaces, frames or code objects, on whatever object.
DYNAMIC_ATTRIBUTES: frozenset[str] = frozenset({
    "__import__", "__builtins__", "__globals__", "__dict__", "__subclasses__", "__loader__", "__spec__",
    "__code__", "__closure__", "__getattribute__", "__getattr__", "__reduce__", "__reduce_ex__",
    "sys", "builtins", "importlib", "import_module",
    "f_globals", "f_locals", "f_builtins", "f_back", "gi_frame", "cr_frame", "ag_frame", "tb_frame",
})
#: Attributes whose assignment rewrites a function or object behind its name (``f = kmeans``
#: then ``f.__code__ = g.__code__``): such statements are checked with every checked function.
PATCH_ATTRIBUTES: frozenset[str] = DYNAMIC_ATTRIBUTES | {"__defaults__", "__kwdefaults__", "__class__", "__wrapped__",
                                                         "__call__", "__bases__"}
_SELF_NAMES = frozenset({"self", "cls"})
_BUILTIN_NAMES = frozenset(dir(builtins))
MAX_NODES = 100_000  # syntax-tree nodes analysed: the reference notebook's code cells have 4,200
MAX_FINDINGS = 50  # the check stops there: the feedback quotes the first three
MAX_CHAIN_SHOWN = 6  # helpers named in "kmeans (through ...)"; a longer chain shows its ends
TOO_LARGE = t("ノートブックのコードが大きすぎて確認できません（構文木のノードが {limit} 個を超えています）",
              "the notebook's code is too large to check (over {limit} syntax-tree nodes)", limit=MAX_NODES)


class _TooLarge(Exception):
    """The notebook's code cells hold more than :data:`MAX_NODES` nodes."""


@dataclass(frozen=True)
class Policy:
    """One question's source policy: ``functions`` must not use any module under ``forbid``."""

    question: str
    functions: tuple[str, ...]
    forbid: tuple[str, ...]

    def check(self, notebook: dict) -> list[Message]:
        """The findings of :func:`policy_findings` for this policy (empty when it holds)."""
        return policy_findings(notebook, list(self.functions), list(self.forbid))


def policies() -> list[Policy]:
    """The lab's policies, from the ``[<question>.policy]`` tables of questions.toml."""
    from autograder import config

    return [Policy(qid, tuple(spec["policy"]["functions"]), tuple(spec["policy"]["forbid"]))
            for qid, spec in config.questions().items() if "policy" in spec]


# --------------------------------------------------------------------------------------------------
# The notebook-level picture


@dataclass
class _Unit:
    """A top-level piece of code that defines (binds or modifies) some notebook-level names."""

    names: set[str]
    nodes: list[ast.AST]
    cell: str
    kind: str  # "def", "class" or "statement"


@dataclass
class _Binding:
    """A name bound by an import statement: ``target`` is the dotted path it refers to."""

    target: str
    cell: str
    line: int


@dataclass
class _Notebook:
    units: dict[str, list[_Unit]] = field(default_factory=dict)
    imports: dict[str, list[_Binding]] = field(default_factory=dict)
    stars: list[_Binding] = field(default_factory=list)  # ``from M import *``: target = M
    patches: list[_Unit] = field(default_factory=list)  # statements that rewrite some object's internals


def _cell_label(cell: dict, index: int) -> str:
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    if isinstance(grade_id, str) and grade_id:
        return f"`{grade_id}`"
    return f"#{index + 1}"


def _parsed_cells(notebook: object) -> Iterator[tuple[str, ast.Module]]:
    """(cell label, module) for every code cell that parses; the others are skipped, and so are the cells that
    the extraction does not read (:func:`autograder.extract.size_problem`)."""
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return
    before = 0
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            if not all(isinstance(line, str) for line in source):
                continue
            source = "".join(source)
        if not isinstance(source, str):
            continue
        too_large, before = size_problem(len(source), before), before + len(source)
        if too_large:
            continue
        try:
            tree = ast.parse(_without_magics(source))
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            continue
        yield _cell_label(cell, index), tree


def _import_bindings(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str | None, str]]:
    """(bound name or None for ``*``, dotted target) for each alias of an import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                first = alias.name.split(".")[0]
                yield first, first
        return
    module = "." * node.level + (node.module or "")
    for alias in node.names:
        if alias.name == "*":
            yield None, module
        else:
            sep = "" if module.endswith(".") or not module else "."
            yield alias.asname or alias.name, f"{module}{sep}{alias.name}"


def _target_roots(target: ast.AST) -> Iterator[str]:
    """Names that an assignment target binds or modifies (``a``, ``a.b``, ``a[0]``, ``(a, b)``)."""
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_roots(element)
    elif isinstance(target, ast.Starred):
        yield from _target_roots(target.value)
    else:
        while isinstance(target, (ast.Attribute, ast.Subscript)):
            target = target.value
        if isinstance(target, ast.Name):
            yield target.id


def _statement_names(stmt: ast.stmt) -> set[str]:
    """Names a top-level simple statement binds or modifies."""
    names: set[str] = set()
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    elif isinstance(stmt, ast.Delete):
        targets = list(stmt.targets)
    for target in targets:
        names.update(_target_roots(target))
    for node in ast.walk(stmt):
        if isinstance(node, ast.NamedExpr):
            names.update(_target_roots(node.target))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args):
            names.update(_target_roots(node.args[0]))
        elif isinstance(node, ast.Attribute) and node.attr in DYNAMIC_ATTRIBUTES:
            names.update(_target_roots(node.value))
    return names


def _is_patch(stmt: ast.stmt) -> bool:
    """Whether a top-level statement assigns to (or into) one of :data:`PATCH_ATTRIBUTES`."""
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    return any(isinstance(node, ast.Attribute) and node.attr in PATCH_ATTRIBUTES
               for target in targets for node in ast.walk(target))


def _units(body: list[ast.stmt], cell: str) -> Iterator[_Unit]:
    """The top-level units of a cell, looking through ``if``/``try``/``for``/``with``/``match`` blocks."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            declared = {name for node in ast.walk(stmt) if isinstance(node, ast.Global) for name in node.names}
            kind = "class" if isinstance(stmt, ast.ClassDef) else "def"
            yield _Unit({stmt.name} | declared, [stmt], cell, kind)
        elif isinstance(stmt, (ast.If, ast.While)):
            yield from _units(stmt.body + stmt.orelse, cell)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            yield _Unit(set(_target_roots(stmt.target)), [stmt.target, stmt.iter], cell, "statement")
            yield from _units(stmt.body + stmt.orelse, cell)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            names = {n for item in stmt.items if item.optional_vars for n in _target_roots(item.optional_vars)}
            yield _Unit(names, list(stmt.items), cell, "statement")
            yield from _units(stmt.body, cell)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            handlers = [s for handler in stmt.handlers for s in handler.body]
            yield from _units(stmt.body + handlers + stmt.orelse + stmt.finalbody, cell)
        elif isinstance(stmt, ast.Match):
            yield from _units([s for case in stmt.cases for s in case.body], cell)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        else:
            names = _statement_names(stmt)
            if names:
                yield _Unit(names, [stmt], cell, "statement")


def _notebook_picture(notebook: object) -> _Notebook:
    """The notebook's units, imports, star imports and patches; raises :class:`_TooLarge` past :data:`MAX_NODES`."""
    picture = _Notebook()
    nodes = 0
    for cell, tree in _parsed_cells(notebook):
        for node in ast.walk(tree):
            nodes += 1
            if nodes > MAX_NODES:
                raise _TooLarge
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, target in _import_bindings(node):
                    binding = _Binding(target, cell, node.lineno)
                    if name is None:
                        picture.stars.append(binding)
                    else:
                        picture.imports.setdefault(name, []).append(binding)
        for unit in _units(tree.body, cell):
            for name in unit.names:
                picture.units.setdefault(name, []).append(unit)
            if unit.kind == "statement" and any(_is_patch(node) for node in unit.nodes if isinstance(node, ast.stmt)):
                picture.patches.append(unit)
    return picture


# --------------------------------------------------------------------------------------------------
# Scopes: which name loads in a piece of code refer to notebook-level (global) names


class _Scope:
    """One Python scope. Names bound by imports are deliberately *not* treated as local: they are
    resolved through the notebook's import bindings wherever they are imported."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "module", "function", "class" or "comprehension"
        self.bound: set[str] = set()
        self.declared: set[str] = set()  # global / nonlocal: not local to this scope
        self.loads: list[ast.Name] = []
        self.children: list[_Scope] = []

    def bind_arguments(self, args: ast.arguments) -> None:
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None:
                self.bound.add(arg.arg)

    def visit_arguments_outside(self, args: ast.arguments) -> None:
        """Defaults and annotations are evaluated in the enclosing scope."""
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    def child(self, kind: str) -> _Scope:
        scope = _Scope(kind)
        self.children.append(scope)
        return scope

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.bound.add(node.name)
            for decorator in node.decorator_list:
                self.visit(decorator)
            self.visit_arguments_outside(node.args)
            if node.returns is not None:
                self.visit(node.returns)
            inner = self.child("function")
            inner.bind_arguments(node.args)
            for stmt in node.body:
                inner.visit(stmt)
        elif isinstance(node, ast.Lambda):
            self.visit_arguments_outside(node.args)
            inner = self.child("function")
            inner.bind_arguments(node.args)
            inner.visit(node.body)
        elif isinstance(node, ast.ClassDef):
            self.bound.add(node.name)
            for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
                self.visit(expr)
            inner = self.child("class")
            for stmt in node.body:
                inner.visit(stmt)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self.visit(node.generators[0].iter)
            inner = self.child("comprehension")
            for position, generator in enumerate(node.generators):
                inner.visit(generator.target)
                if position:
                    inner.visit(generator.iter)
                for condition in generator.ifs:
                    inner.visit(condition)
            for part in ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]):
                inner.visit(part)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.loads.append(node)
            else:
                self.bound.add(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.declared.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            return
        else:
            if isinstance(node, ast.ExceptHandler) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self.bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self.bound.add(node.rest)
            for child in ast.iter_child_nodes(node):
                self.visit(child)

    def local(self) -> set[str]:
        """The names local to this scope (none at module level)."""
        return set() if self.kind == "module" else self.bound - self.declared

    def free(self) -> list[ast.Name]:
        """The loads in this scope and its children that are not bound by this scope or a scope between.

        One walk over the scopes with a count of the names that enclosing function and comprehension scopes bind
        (a class's names are local to its own body only): linear, where filtering each child's list again at
        every level cost the depth times the loads."""
        out: list[ast.Name] = []
        shadowed: Counter[str] = Counter()
        stack: list[tuple[_Scope, bool]] = [(self, True)]
        while stack:
            scope, entering = stack.pop()
            local = scope.local()
            if not entering:  # leaving: its names no longer hide anything
                shadowed.subtract(local)
                continue
            out.extend(name for name in scope.loads if not shadowed[name.id] and name.id not in local)
            if scope.kind != "class":
                shadowed.update(local)
                stack.append((scope, False))
            stack.extend((child, True) for child in reversed(scope.children))
        return out


def _global_references(nodes: Iterable[ast.AST]) -> list[ast.Name]:
    """The ``Name`` loads in top-level code that refer to notebook-level names (or builtins)."""
    module = _Scope("module")
    for node in nodes:
        module.visit(node)
    return module.free()


# --------------------------------------------------------------------------------------------------
# Checking one unit


@dataclass(frozen=True)
class _Hit:
    thing: Message  # a verb phrase: "uses sklearn.cluster.KMeans", "imports sklearn.cluster", ...
    line: int
    reason: Message
    attribute: bool = False  # "uses the attribute .x": reported only on a line without another finding


def _uses(name: str) -> Message:
    return t("{name} を使っています", "uses {name}", name=name)


def _uses_attribute(attribute: str) -> Message:
    return t("属性 .{attribute} を使っています", "uses the attribute .{attribute}", attribute=attribute)

def _literal_string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dotted_prefixes(dotted: str) -> Iterator[str]:
    """``a``, ``a.b``, ``a.b.c`` for ``a.b.c``: the names that ``dotted`` is, or is inside."""
    for index, character in enumerate(dotted):
        if character == ".":
            yield dotted[:index]
    yield dotted


class _Checker:
    def __init__(self, picture: _Notebook, forbid: list[str]) -> None:
        self.picture = picture
        self.forbid = [f.strip(".") for f in forbid if isinstance(f, str) and f.strip(".")]
        self.forbidden, self.dynamic = set(self.forbid), set(DYNAMIC_MODULES)
        self.packages = {prefix for module in (*self.forbid, *DYNAMIC_MODULES)
                         for prefix in _dotted_prefixes(module) if prefix != module}
        self._targets: dict[str, list[str]] = {}

    def is_defined(self, name: str) -> bool:
        return name in self.picture.units or name in self.picture.imports

    def is_builtin(self, name: str) -> bool:
        return not self.is_defined(name) and name in _BUILTIN_NAMES

    def classify(self, dotted: str) -> str | None:
        """"forbidden", "dynamic", "contains" (a package holding a forbidden/dynamic module) or None.

        Set look-ups of ``dotted``'s prefixes: the cost of its length, not of the lists' lengths."""
        prefixes = list(_dotted_prefixes(dotted))
        if not self.forbidden.isdisjoint(prefixes):
            return "forbidden"
        if not self.dynamic.isdisjoint(prefixes):
            return "dynamic"
        return "contains" if dotted in self.packages else None

    def targets(self, name: str) -> list[str]:
        """The distinct targets of ``name``'s import bindings that an attribute of it could make a finding of.

        A target that :meth:`classify` finds nothing in stays so with any attribute after it (a forbidden or
        dynamic module would have made it "contains"), so only the others are kept; computed once per name, so
        that each use of a name bound by 30,000 identical imports costs one look-up, not 30,000."""
        if name not in self._targets:
            targets = dict.fromkeys(b.target for b in self.picture.imports[name] if not b.target.startswith("."))
            self._targets[name] = [target for target in targets if self.classify(target) is not None]
        return self._targets[name]

    def import_hits(self, node: ast.Import | ast.ImportFrom) -> Iterator[_Hit]:
        if isinstance(node, ast.ImportFrom) and node.level:
            yield _Hit(t("相対インポート（{statement}）を使っています", "uses a relative import ({statement})",
                         statement=f"from {'.' * node.level}{node.module or ''} import ..."), node.lineno,
                       t("ノートブックでは相対インポートはできず、その参照先も確認できません",
                         "a notebook cannot import relatively, and its target cannot be checked"))
            return
        star = False
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            modules = [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
            star = any(alias.name == "*" for alias in node.names)
        for module in modules:
            kind = self.classify(module)
            if kind in ("forbidden", "dynamic"):
                yield _Hit(t("{module} をインポートしています", "imports {module}", module=module), node.lineno,
                           FORBIDDEN_REASON if kind == "forbidden" else DYNAMIC_REASON)
                return
        if star and self.classify(modules[0]) == "contains":
            forbidden = any(prefix.startswith(modules[0] + ".") for prefix in self.forbid)
            yield _Hit(t("{module}.* をインポートしています", "imports {module}.*", module=modules[0]), node.lineno,
                       FORBIDDEN_REASON if forbidden else DYNAMIC_REASON)

    def chain(self, name: ast.Name, parents: dict[ast.AST, ast.AST]) -> tuple[list[str], ast.AST]:
        """Attribute names applied to ``name`` (``x.a.b``, ``getattr(x, "a")``) and the outermost node."""
        attrs: list[str] = []
        current: ast.AST = name
        while True:
            parent = parents.get(current)
            if isinstance(parent, ast.Attribute) and parent.value is current:
                attrs.append(parent.attr)
            elif (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "getattr"
                  and self.is_builtin("getattr") and len(parent.args) >= 2 and parent.args[0] is current
                  and _literal_string(parent.args[1]) is not None):
                attrs.append(_literal_string(parent.args[1]))
            else:
                return attrs, current
            current = parent

    def unit_hits(self, unit: _Unit) -> tuple[list[_Hit], set[str]]:
        """The findings in one unit, and the notebook-level names it references (its helpers)."""
        hits: list[_Hit] = []
        helpers: set[str] = set()
        parents: dict[ast.AST, ast.AST] = {}
        for root in unit.nodes:
            for node in ast.walk(root):
                for child in ast.iter_child_nodes(node):
                    parents[child] = node
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    hits.extend(self.import_hits(node))
                elif isinstance(node, ast.Attribute) and node.attr in DYNAMIC_ATTRIBUTES:
                    hits.append(_Hit(_uses_attribute(node.attr), node.lineno, DYNAMIC_REASON, attribute=True))
        attribute_hits, hits = hits, [h for h in hits if not h.attribute]
        for name in _global_references(unit.nodes):
            if name.id in self.picture.units:
                helpers.add(name.id)
            if len(hits) >= MAX_FINDINGS:
                continue
            if name.id in self.picture.imports:
                hits.extend(islice(self.reference_hits(name, parents), MAX_FINDINGS))
            elif name.id not in self.picture.units:
                hits.extend(self.builtin_hits(name, parents))
        # an attribute finding adds nothing on a line that already has a finding
        lines = {hit.line for hit in hits}
        hits.extend(h for h in attribute_hits if h.attribute and h.line not in lines)
        hits.sort(key=lambda hit: hit.line)
        return hits, helpers

    def reference_hits(self, name: ast.Name, parents: dict[ast.AST, ast.AST]) -> Iterator[_Hit]:
        targets = self.targets(name.id)  # a relative import cannot run in a notebook: not among them
        if not targets:
            return
        attrs, _ = self.chain(name, parents)
        for target in targets:
            dotted = ".".join([target, *attrs])
            kind = self.classify(dotted)
            if kind == "forbidden":
                yield _Hit(_uses(dotted), name.lineno, FORBIDDEN_REASON)
            elif kind == "dynamic":
                yield _Hit(_uses(dotted), name.lineno, DYNAMIC_REASON)
            elif kind == "contains":
                yield _Hit(t("モジュール {module} そのものを使っています", "uses the module {module} itself",
                             module=dotted), name.lineno,
                           t("モジュール全体を保持するコードは、計算した名前でその中の禁止された部分や動的な部分に到達"
                             "できます。許可されたモジュールの属性を名前で指定して使ってください",
                             "code that holds the whole module can reach its forbidden or dynamic parts by "
                             "computed names; use only named attributes of allowed modules"))

    def builtin_hits(self, name: ast.Name, parents: dict[ast.AST, ast.AST]) -> Iterator[_Hit]:
        if name.id in DYNAMIC_BUILTINS:
            yield _Hit(_uses(name.id), name.lineno, DYNAMIC_REASON)
        elif name.id == "getattr":
            call = parents.get(name)
            if not (isinstance(call, ast.Call) and call.func is name):
                yield _Hit(t("getattr を値として使っています", "uses getattr as a value"), name.lineno, DYNAMIC_REASON)
            elif len(call.args) < 2 or call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
                yield _Hit(t("getattr を計算された引数で使っています", "uses getattr with computed arguments"), name.lineno,
                           DYNAMIC_REASON)
            elif _literal_string(call.args[1]) in DYNAMIC_ATTRIBUTES:
                yield _Hit(_uses_attribute(_literal_string(call.args[1])), name.lineno, DYNAMIC_REASON)
            elif _literal_string(call.args[1]) is None and not (
                    isinstance(call.args[0], ast.Name) and call.args[0].id in _SELF_NAMES):
                target = ast.unparse(call.args[0])
                target = target if len(target) <= 40 else target[:37] + "..."
                yield _Hit(t("getattr({target}, <計算された名前>) を使っています", "uses getattr({target}, <computed name>)",
                             target=target), name.lineno, DYNAMIC_REASON)
        elif name.id not in _BUILTIN_NAMES:
            for star in self.picture.stars:
                kind = self.classify(star.target)
                if kind is not None:
                    reason = FORBIDDEN_REASON if kind != "dynamic" else DYNAMIC_REASON
                    yield _Hit(_uses(name.id), name.lineno, t(
                        "ノートブックのどこにも定義されていないため、`from {module} import *`（セル {cell}）から来ている"
                        "可能性があります。{reason}",
                        "it is defined nowhere in the notebook, so it may come from `from {module} import *` "
                        "(cell {cell}); {reason}", module=star.target, cell=star.cell, reason=reason))
                    break


def _who(path: list[str]) -> Message:
    """``kmeans``, or ``kmeans (through `a` → `b`)``; a chain of over :data:`MAX_CHAIN_SHOWN` helpers shows its ends."""
    if len(path) == 1:
        return verbatim(path[0])
    helpers = [f"`{name}`" for name in path[1:]]
    if len(helpers) > MAX_CHAIN_SHOWN:
        helpers = [*helpers[:MAX_CHAIN_SHOWN // 2], "…", *helpers[-(MAX_CHAIN_SHOWN // 2):]]
    return t("{root}（{chain} 経由）", "{root} (through {chain})", root=path[0], chain=" → ".join(helpers))


def _path(via: dict[str, str | None], name: str) -> list[str]:
    """The checked function, then each helper on the way to ``name`` (``via`` maps a helper to its user)."""
    path = [name]
    while via[path[-1]] is not None:
        path.append(via[path[-1]])
    return path[::-1]


def _import_findings(picture: _Notebook, checker: _Checker, root: str) -> Iterator[Message]:
    """``root`` itself bound by an import of a forbidden or dynamic module."""
    for binding in picture.imports.get(root, []):
        kind = checker.classify(binding.target) if not binding.target.startswith(".") else None
        if kind in ("forbidden", "dynamic"):
            reason = FORBIDDEN_REASON if kind == "forbidden" else DYNAMIC_REASON
            yield t("{root} が {target} からインポートされています（セル {cell} の {line} 行目）：{reason}",
                    "{root} is imported from {target} (line {line} of cell {cell}): {reason}",
                    root=root, target=binding.target, line=binding.line, cell=binding.cell, reason=reason)


def _root_findings(picture: _Notebook, checker: _Checker, root: str) -> Iterator[Message]:
    """The findings for ``root`` and, breadth first, the helpers it references; produced as they are found, so
    that the caller can stop at :data:`MAX_FINDINGS`."""
    yield from _import_findings(picture, checker, root)
    seen_units: set[int] = set()
    via: dict[str, str | None] = {root: None}
    queue = deque([root])
    while queue:
        name = queue.popleft()
        units = picture.units.get(name, [])
        if name == root and units:  # a defined function is checked with every patch statement
            units = units + picture.patches
        for unit in units:
            if id(unit) in seen_units:
                continue
            seen_units.add(id(unit))
            try:
                hits, helpers = checker.unit_hits(unit)
            except RecursionError:
                yield t("{who} は入れ子が深すぎて確認できません（セル {cell}）", "{who} is too deeply nested to check "
                        "(cell {cell})", who=_who(_path(via, name)), cell=unit.cell)
                continue
            who = _who(_path(via, name)) if hits else None
            for hit in hits:
                yield t("{who} が {thing}（セル {cell} の {line} 行目）：{reason}",
                        "{who} {thing} (line {line} of cell {cell}): {reason}", who=who,
                        thing=hit.thing, line=hit.line, cell=unit.cell, reason=hit.reason)
            for helper in sorted(helper for helper in helpers if helper not in via):
                via[helper] = name
                queue.append(helper)


def policy_findings(notebook: dict, functions: list[str], forbid: list[str]) -> list[Message]:
    """Check that the notebook's ``functions`` (and the helpers they use) avoid the ``forbid`` modules.

    ``notebook`` is the notebook JSON (nbformat 4) already parsed into a dict; it is never executed.
    Returns human-readable findings in both languages, one per distinct problem, in notebook order per
    function, at most :data:`MAX_FINDINGS`; an empty list means the policy holds; a notebook with over
    :data:`MAX_NODES` nodes of code gets the one finding :data:`TOO_LARGE`. Never raises on a malformed notebook.
    """
    try:
        picture = _notebook_picture(notebook)
    except _TooLarge:
        return [TOO_LARGE]
    checker = _Checker(picture, list(forbid or []))
    findings: dict[Message, None] = {}  # distinct, in order
    for root in functions:
        if not isinstance(root, str):
            continue
        for finding in _root_findings(picture, checker, root):
            findings[finding] = None
            if len(findings) >= MAX_FINDINGS:
                return list(findings)
    return list(findings)
