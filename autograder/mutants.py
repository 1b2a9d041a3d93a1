"""Mutation report: how many small, systematic mistakes in the reference solution do the graders catch?

``python -m autograder mutants`` (this module's :func:`main`) takes the reference solution's six student
pieces (the ``BEGIN/END SOLUTION`` regions of the cells ``reparameterize``, ``vae_loss``, ``kmeans``,
``plot_latent_clusters``, ``ConvAutoEncoder`` and ``ConvVAE``), makes *mutants* of them with a small
:mod:`ast` mutator (one change each: an operator swap, a constant change, a dropped term, a deleted loop
statement, a ``.detach()``, …; see :data:`OPERATORS`), writes one student notebook per mutant (the
``reference`` example with that one cell replaced), and grades them with the real CLI
(``python -m autograder grade … -k EXPR``), only the checks of the affected question(s).

A mutant is **killed** when it loses points on its own question(s), else it **survives**. Survivors are
run once more beside the reference in a sandboxed worker (the graders' own probes, on a few fixed inputs,
plus a short training run for models): the same outputs mean the mutant is probably *equivalent*;
different outputs mean a property that no check looks at. For each killed mutant, the feedback of its
failed checks is classified (:func:`classify`) as **named** (it names the mistake), **explained** (a crash
whose message also names the error's likely cause, :mod:`autograder.explain`; it counts as named), **crash** (the
student's code raised, hung or died, and the message quotes the error and the line), **generic** (a
fallback such as "differs from the reference solution"; the list is :data:`GENERIC_MESSAGES`) or
**internal** (a grader bug).

Grading is staged: a group's later stages (the training checks) run only on the mutants that survived
its earlier stages (``--exhaustive`` runs every stage on every mutant). The unmutated reference is graded
in every stage as a control and must get full marks, else the run stops.

Output: ``reports/mutants.md`` (summary per question, survivors with their diffs, killed mutants with
their first failed check's message) and ``reports/mutants.json`` (everything).
"""
from __future__ import annotations

import argparse
import ast
import builtins
import copy
import dataclasses
import datetime
import difflib
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTION_NOTEBOOK = REPO_ROOT / "solutions" / "autoencoders.ipynb"
REFERENCE_EXAMPLE = REPO_ROOT / "examples" / "submitted" / "reference" / "autoencoders" / "autoencoders.ipynb"
DEFAULT_OUT = REPO_ROOT / "reports"
ASSIGNMENT = "autoencoders"
CONTROL_ID = "control"  # the unmutated reference, graded beside the mutants in every stage


# --- what is mutated and how it is graded ---------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One ``grade -k EXPR`` run: the checks of ``questions`` that the pytest expression ``select`` selects."""

    questions: tuple[str, ...]
    select: str
    label: str


@dataclass(frozen=True)
class Group:
    """The mutants of one solution cell, graded on its question(s) in ``stages``, at most ``cap`` of them."""

    question: str  # the question id (``--only``)
    cell: str  # the cell's nbgrader grade_id; mutant ids are ``<cell>-NNN``
    stages: tuple[Stage, ...]
    cap: int

    @property
    def questions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(q for stage in self.stages for q in stage.questions))


# The grader modules and their parametrized ids (autograder/graders/); `pytest --collect-only -k EXPR` shows
# what each expression selects. Training checks come in a later stage: they run only on the survivors.
GROUPS: tuple[Group, ...] = (
    Group("reparameterize", "reparameterize", (
        Stage(("reparameterize",), "test_reparameterize", "reparameterize checks"),
        Stage(("vae_training",), "test_vae_training", "VAE trained with the mutant's reparameterize"),
    ), cap=30),
    Group("vae_loss", "vae_loss", (Stage(("vae_loss",), "test_vae_loss", "vae_loss checks"),), cap=30),
    Group("kmeans", "kmeans", (
        Stage(("kmeans",), "test_kmeans or (test_source_policies and kmeans)", "kmeans checks and source policy"),
    ), cap=40),
    Group("cluster_plots", "plot_latent_clusters", (Stage(("cluster_plots",), "test_cluster_plots", "plot checks"),),
          cap=25),
    Group("conv_autoencoder", "ConvAutoEncoder", (
        Stage(("conv_autoencoder",), "test_conv_models and conv_autoencoder and not test_trains",
              "structure, shapes, range, bottleneck"),
        Stage(("conv_autoencoder",), "test_conv_models and conv_autoencoder and test_trains", "training"),
    ), cap=12),
    Group("conv_vae", "ConvVAE", (
        Stage(("conv_vae",), "test_conv_models and conv_vae and not test_trains",
              "structure, shapes, range, bottleneck"),
        Stage(("conv_vae",), "test_conv_models and conv_vae and test_trains", "training"),
    ), cap=12),
)


# --- feedback classification ------------------------------------------------------------------------

# The graders' fallback messages, one place: they say *that* something is wrong (often with what was measured),
# not which mistake it is. A message is generic when it is one of these as a whole (re.fullmatch); a fallback that
# goes on to name a cause (e.g. "...differ from scikit-learn's (...): only 2 of the 4 clusters have points: ...")
# counts as named.
GENERIC_MESSAGES: tuple[tuple[str, str], ...] = (
    ("compare(): differs from the reference solution", r".* differs from the reference solution \([^()]*\)"),
    ("vae_loss: a part as a multiple of its expected value",
     r"the (KL|BCE) term is \S+× the expected value \([^()]*\)"),
    ("reparameterize: std(z) measured", r"std\(z\) is \([^()]*\), expected exp\(0\.5·logvar\) = \([^()]*\)"),
    ("reparameterize: mean(z) measured", r"mean\(z\) is \([^()]*\), expected mu = \([^()]*\): the noise must have "
                                        r"mean 0 \(z = mu \+ std \* eps\)"),
    ("reparameterize: KS test without a hint", r"the noise is not normally distributed \(KS distance [^()]*\)\.?"),
    ("kmeans: blobs differ, no cause found",
     r"on \d+ well-separated blobs the clusters differ from scikit-learn's \(adjusted Rand index [^()]*\)"),
    ("kmeans: inertia too high, no cause found",
     r"the inertia \(sum of squared distances to the cluster means\) is \S+, \S+ above scikit-learn's \S+: (the result "
     r"is a consistent k-means partition, so the run stopped in a poor local optimum: )?do the assignment and update "
     r"steps iterate.*"),
    ("training: over the calibrated limit",
     r"after the grader's training budget .* the limit is \S+ \(the reference solution reaches [^()]*; predicting the "
     r"mean image gives [^()]*\)"),
)
# The student's code raised, hung or died: the message quotes the error (and the line) rather than naming a mistake.
CRASH_MESSAGES: tuple[str, ...] = (
    r"^\S+ raised [A-Za-z_][\w.]*",
    r"\bno answer within\b",
    r"\bthe worker process died\b",
    r"\bloading the notebook's definitions\b",
    r"\bthe worker sent an invalid answer\b",
)
# A crash message that goes on to say what the error means for the student's code (autograder.explain).
EXPLAINED_CRASH = r"\. Likely cause: "
INTERNAL_MESSAGES: tuple[str, ...] = (r"internal grader error", r"the grader itself failed")
# How good a diagnosis is, best first: a mutant's diagnosis is the best class among its failed checks.
# "named" and "explained" (a crash whose message names its likely cause) both name the mistake.
CLASS_ORDER = ("named", "explained", "crash", "generic", "internal")
NAMING_CLASSES = ("named", "explained")


def classify(message: str) -> str:
    """``"named"``, ``"explained"``, ``"crash"``, ``"generic"`` or ``"internal"`` for one failed check's feedback."""
    text = message.strip()
    if any(re.search(pattern, text) for pattern in INTERNAL_MESSAGES):
        return "internal"
    if any(re.search(pattern, text) for pattern in CRASH_MESSAGES):
        return "explained" if re.search(EXPLAINED_CRASH, text) else "crash"
    if not text or any(re.fullmatch(pattern, text, re.DOTALL) for _, pattern in GENERIC_MESSAGES):
        return "generic"
    return "named"


def best_class(messages: Iterable[str]) -> str | None:
    """The best diagnosis among ``messages`` (see :data:`CLASS_ORDER`); None without messages."""
    classes = {classify(m) for m in messages}
    return next((c for c in CLASS_ORDER if c in classes), None)


# --- the mutator --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One mutation of a cell's source, before selection (no id yet)."""

    operator: str
    description: str
    line: int  # first line of the edit, 1-based in the cell's source
    source: str  # the whole mutated cell source
    diff: str  # unified diff of the solution region(s)


@dataclass(frozen=True)
class Mutant:
    id: str
    cell: str
    operator: str
    description: str
    line: int
    source: str
    diff: str


def solution_regions(source: str) -> tuple[str, list[tuple[int, int]]]:
    """``source`` without its BEGIN/END SOLUTION marker lines, and the regions between them as 1-based
    inclusive line ranges of the stripped source (as in the submitted notebooks, which have no markers)."""
    kept: list[str] = []
    regions: list[tuple[int, int]] = []
    start = None
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line:
            start = len(kept) + 1
        elif "END SOLUTION" in line:
            if start is not None and len(kept) >= start:
                regions.append((start, len(kept)))
            start = None
        else:
            kept.append(line)
    return "\n".join(kept), regions


def _const_value(node: ast.AST) -> float | int | None:
    """The number a (possibly negated) numeric literal stands for; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool)):
        return -node.operand.value
    return None


def _number(value: float | int) -> ast.expr:
    if value < 0:
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-value))
    return ast.Constant(value)


def _new_values(value: float | int) -> list[float | int]:
    """The constant changes: 0.5 → 1 and −0.5 (sign kept/flipped), 0 → 1, small positive ints n → n − 1,
    negative ints → their absolute value, tiny epsilons (< 1e-3) → 0 and 1e-3. Other numbers (layer sizes,
    figure sizes) are left alone: changing them gives many near-identical mutants."""
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    if isinstance(value, float):
        if magnitude == 0.5:
            return [sign * 1.0, -value]
        if 0 < magnitude < 1e-3:
            return [0.0, sign * 1e-3]
        return []
    if value == 0:
        return [1]
    if value < 0:
        return [-value]
    return [value - 1] if value <= 4 else []


def _name_of(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _renamed_call(node: ast.Call, new: str) -> ast.Call:
    call = copy.deepcopy(node)
    if isinstance(call.func, ast.Attribute):
        call.func.attr = new
    else:
        call.func.id = new
    return call


def _text(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


Replacement = tuple[ast.AST, str]  # (the node that replaces the visited one, a description)
ExprOperator = Callable[[ast.AST, dict], list[Replacement]]


_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
                ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_BINOP_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
                  ast.Pow: "**"}


def op_binop(node: ast.AST, parents: dict) -> list[Replacement]:
    """Arithmetic operator swaps: + ↔ −, * ↔ /, // → /, % → //, ** → *."""
    if not isinstance(node, ast.BinOp) or type(node.op) not in _BINOP_SWAPS:
        return []
    new_op = _BINOP_SWAPS[type(node.op)]
    mutated = copy.deepcopy(node)
    mutated.op = new_op()
    return [(mutated, f"`{_BINOP_SYMBOLS[type(node.op)]}` → `{_BINOP_SYMBOLS[new_op]}` in `{_text(node)}`")]


def op_const(node: ast.AST, parents: dict) -> list[Replacement]:
    """Constant changes: 0.5 → 1 and −0.5, 1 → 0, 2 → 1, 0 → 1, −1 → 1, 1e-12 → 0 and 1e-3."""
    value = _const_value(node)
    if value is None:
        return []
    parent = parents.get(node)
    if isinstance(node, ast.Constant) and isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub):
        return []  # handled as the negative number it is part of
    return [(_number(new), f"constant `{ast.unparse(node)}` → `{ast.unparse(_number(new))}`") for new in
            _new_values(value)]


def op_unary(node: ast.AST, parents: dict) -> list[Replacement]:
    """Removing a unary operator: −x → x, not x → x (numeric literals are the constant operator's)."""
    if isinstance(node, ast.UnaryOp) and _const_value(node) is None:
        return [(copy.deepcopy(node.operand), f"`{_text(node)}` → `{_text(node.operand)}`")]
    return []


_REDUCTIONS = {"sum": "mean", "mean": "sum"}


def op_reduce(node: ast.AST, parents: dict) -> list[Replacement]:
    """``sum`` ↔ ``mean`` (``torch.sum``, ``.sum()``) and ``reduction='sum'`` ↔ ``'mean'``."""
    if isinstance(node, ast.Call) and _name_of(node.func) in _REDUCTIONS:
        new = _REDUCTIONS[_name_of(node.func)]
        return [(_renamed_call(node, new), f"`{_name_of(node.func)}` → `{new}` in `{_text(node)}`")]
    parent = parents.get(node)
    if isinstance(node, ast.Constant) and node.value in _REDUCTIONS and isinstance(parent, ast.keyword) \
            and parent.arg == "reduction":
        new = _REDUCTIONS[node.value]
        return [(ast.Constant(new), f"reduction={node.value!r} → {new!r}")]
    return []


_MINMAX = {"argmin": "argmax", "argmax": "argmin", "min": "max", "max": "min", "amin": "amax", "amax": "amin"}


def op_minmax(node: ast.AST, parents: dict) -> list[Replacement]:
    """``argmin`` ↔ ``argmax``, ``min`` ↔ ``max``."""
    if isinstance(node, ast.Call) and _name_of(node.func) in _MINMAX:
        old = _name_of(node.func)
        return [(_renamed_call(node, _MINMAX[old]), f"`{old}` → `{_MINMAX[old]}` in `{_text(node)}`")]
    return []


_NOISE = {"randn_like": ("rand_like", "zeros_like"), "randn": ("rand", "zeros"), "rand_like": ("randn_like",)}


def op_noise(node: ast.AST, parents: dict) -> list[Replacement]:
    """``torch.randn_like`` → ``torch.rand_like`` / ``torch.zeros_like`` (and ``randn`` → ``rand`` / ``zeros``)."""
    if isinstance(node, ast.Call) and _name_of(node.func) in _NOISE:
        old = _name_of(node.func)
        return [(_renamed_call(node, new), f"`{old}` → `{new}`") for new in _NOISE[old]]
    return []


def op_exp(node: ast.AST, parents: dict) -> list[Replacement]:
    """``torch.exp(x)`` → ``x``, ``x.exp()`` → ``x``, ``torch.exp(c * x)`` → ``torch.exp(x)``."""
    if not isinstance(node, ast.Call) or _name_of(node.func) != "exp" or node.keywords:
        return []
    if isinstance(node.func, ast.Attribute) and not node.args:  # x.exp()
        inner = node.func.value
        if isinstance(inner, ast.Name) and inner.id in ("torch", "math", "np", "numpy"):
            return []
        return [(copy.deepcopy(inner), f"`{_text(node)}` → `{_text(inner)}` (no exp)")]
    if len(node.args) != 1:
        return []
    argument = node.args[0]
    found = [(copy.deepcopy(argument), f"`{_text(node)}` → `{_text(argument)}` (no exp)")]
    if isinstance(argument, ast.BinOp) and isinstance(argument.op, ast.Mult):
        for factor, rest in ((argument.left, argument.right), (argument.right, argument.left)):
            if _const_value(factor) is not None:
                call = copy.deepcopy(node)
                call.args = [copy.deepcopy(rest)]
                found.append((call, f"`{_text(node)}` → `{_text(call)}` (coefficient dropped)"))
    return found


def op_drop_term(node: ast.AST, parents: dict) -> list[Replacement]:
    """Removing a term of a sum: a + b → a and → b; a − b → a."""
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Add, ast.Sub)):
        return []
    kept = [node.left] if isinstance(node.op, ast.Sub) else [node.left, node.right]
    return [(copy.deepcopy(part), f"`{_text(node)}` → `{_text(part)}`") for part in kept]


def op_drop_factor(node: ast.AST, parents: dict) -> list[Replacement]:
    """Removing a factor: a * b → a and → b; a / b → a."""
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Mult, ast.Div)):
        return []
    kept = [node.left] if isinstance(node.op, ast.Div) else [node.left, node.right]
    return [(copy.deepcopy(part), f"`{_text(node)}` → `{_text(part)}`") for part in kept]


def op_swap_args(node: ast.AST, parents: dict) -> list[Replacement]:
    """Swapped call arguments: f(a, b) → f(b, a), for each pair of neighbouring positional arguments."""
    if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args):
        return []
    found = []
    for i in range(len(node.args) - 1):
        if ast.dump(node.args[i]) == ast.dump(node.args[i + 1]):
            continue
        call = copy.deepcopy(node)
        call.args[i], call.args[i + 1] = call.args[i + 1], call.args[i]
        found.append((call, f"arguments {i + 1} and {i + 2} of `{_name_of(node.func) or _text(node.func)}` swapped: "
                            f"`{_text(call)}`"))
    return found


def op_seq_last(node: ast.AST, parents: dict) -> list[Replacement]:
    """Removing the last layer of an ``nn.Sequential`` (e.g. the final Sigmoid)."""
    if isinstance(node, ast.Call) and _name_of(node.func) == "Sequential" and len(node.args) >= 2 \
            and not any(isinstance(a, ast.Starred) for a in node.args):
        call = copy.deepcopy(node)
        last = call.args.pop()
        return [(call, f"last layer `{_text(last)}` of an nn.Sequential removed")]
    return []


_COMPARE_SWAPS = {ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt,), ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt,),
                  ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
                  ast.In: (ast.NotIn,), ast.NotIn: (ast.In,)}


def op_compare(node: ast.AST, parents: dict) -> list[Replacement]:
    """Comparison operator changes: > → ≥ and <, ≥ → >, == ↔ !=, …"""
    if not isinstance(node, ast.Compare):
        return []
    found = []
    for i, op in enumerate(node.ops):
        for new in _COMPARE_SWAPS.get(type(op), ()):
            mutated = copy.deepcopy(node)
            mutated.ops[i] = new()
            found.append((mutated, f"`{_text(node)}` → `{_text(mutated)}`"))
    return found


def op_drop_kwarg(node: ast.AST, parents: dict) -> list[Replacement]:
    """Dropping one keyword argument of a call (``generator=``, ``dim=``, ``reduction=``, ``padding=``, …)."""
    if not isinstance(node, ast.Call):
        return []
    found = []
    for i, keyword in enumerate(node.keywords):
        if keyword.arg is None:
            continue
        call = copy.deepcopy(node)
        del call.keywords[i]
        found.append((call, f"keyword `{keyword.arg}=` dropped from `{_name_of(node.func) or 'a call'}(...)`"))
    return found


EXPRESSION_OPERATORS: dict[str, ExprOperator] = {
    "seq_last": op_seq_last, "noise": op_noise, "exp": op_exp, "reduce": op_reduce, "minmax": op_minmax,
    "drop_term": op_drop_term, "drop_factor": op_drop_factor, "swap_args": op_swap_args, "binop": op_binop,
    "compare": op_compare, "drop_kwarg": op_drop_kwarg, "const": op_const, "unary": op_unary,
}
STATEMENT_OPERATORS = ("detach", "del_loop_stmt", "swap_tuple")
# Round-robin order when a group has more candidates than its cap: earlier operators come first in each round.
OPERATORS: tuple[str, ...] = ("seq_last", "noise", "exp", "reduce", "minmax", "detach", "del_loop_stmt", "drop_term",
                              "drop_factor", "swap_args", "swap_tuple", "binop", "compare", "drop_kwarg", "const",
                              "unary")
OPERATOR_HELP = {
    **{name: (function.__doc__ or "").strip().splitlines()[0] for name, function in EXPRESSION_OPERATORS.items()},
    "detach": "Inserting `.detach()` on a returned or assigned tensor (each element of a tuple separately).",
    "del_loop_stmt": "Deleting one statement of a loop body (e.g. the k-means update step).",
    "swap_tuple": "Swapping two neighbouring elements of a returned or assigned tuple.",
}

# For the detach operator: a static guess of which expressions are tensors (no type inference).
_TENSOR_METHODS = {"exp", "pow", "sum", "mean", "reshape", "view", "view_as", "argmin", "argmax", "min", "max",
                   "clamp", "cpu", "cuda", "to", "unsqueeze", "squeeze", "index_add_", "index_add", "float", "double",
                   "detach", "clone", "sqrt", "log", "abs", "flatten", "permute", "expand", "matmul", "mul", "add",
                   "sub", "div", "std", "var", "softmax", "sigmoid", "relu", "contiguous", "type_as"}
_NOT_TENSOR_METHODS = {"numpy", "tolist", "item", "manual_seed", "subplots", "scatter", "legend", "set"}
_BUILTINS = set(dir(builtins))


def _tensor_like(node: ast.AST, tensors: set[str]) -> bool:
    if isinstance(node, ast.BinOp):
        return _tensor_like(node.left, tensors) or _tensor_like(node.right, tensors)
    if isinstance(node, ast.UnaryOp):
        return _tensor_like(node.operand, tensors)
    if isinstance(node, ast.Name):
        return node.id in tensors
    if isinstance(node, ast.Subscript):
        return _tensor_like(node.value, tensors)
    if isinstance(node, ast.Attribute):
        return node.attr in ("values", "data", "grad", "T", "mT") and _tensor_like(node.value, tensors)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in _NOT_TENSOR_METHODS:
                return False
            if isinstance(func.value, ast.Name) and func.value.id == "torch":
                return func.attr[:1].islower() and func.attr not in ("no_grad", "device", "manual_seed")
            if isinstance(func.value, ast.Name) and func.value.id == "F":
                return True
            if isinstance(func.value, ast.Name) and func.value.id == "self":
                return True  # a submodule's forward
            return func.attr in _TENSOR_METHODS and (_tensor_like(func.value, tensors) or not isinstance(
                func.value, ast.Name) or func.value.id not in ("np", "numpy", "plt", "nn", "math"))
        if isinstance(func, ast.Name):
            return func.id[:1].islower() and func.id not in _BUILTINS
    return False


def _tensor_names(function: ast.AST) -> set[str]:
    """Names assigned a tensor-like value somewhere in ``function`` (in source order)."""
    names: set[str] = set()
    assigns = sorted((n for n in ast.walk(function) if isinstance(n, ast.Assign)), key=lambda n: n.lineno)
    for assign in assigns:
        for target in assign.targets:
            if isinstance(target, ast.Name) and _tensor_like(assign.value, names):
                names.add(target.id)
            elif isinstance(target, ast.Tuple) and isinstance(assign.value, ast.Tuple) \
                    and len(target.elts) == len(assign.value.elts):
                for t, v in zip(target.elts, assign.value.elts):
                    if isinstance(t, ast.Name) and _tensor_like(v, names):
                        names.add(t.id)
    return names


def _detached(node: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Attribute(value=copy.deepcopy(node), attr="detach", ctx=ast.Load()), args=[], keywords=[])


@dataclass
class _Site:
    """A statement inside a solution region, with what the statement operators need to know about it."""

    stmt: ast.stmt
    loop_body: list | None  # the loop body it belongs to, if any
    tensors: set[str]


def _inside(node: ast.AST, regions: list[tuple[int, int]]) -> bool:
    return any(a <= node.lineno and node.end_lineno <= b for a, b in regions)


def _overlaps(node: ast.AST, regions: list[tuple[int, int]]) -> bool:
    return any(node.lineno <= b and a <= node.end_lineno for a, b in regions)


_COMPOUND = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)


def _sites(tree: ast.Module, regions: list[tuple[int, int]]) -> Iterator[_Site]:
    def visit(body: list, loop_body: list | None, tensors: set[str]) -> Iterator[_Site]:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = _tensor_names(stmt)
            else:
                inner = tensors
            if _inside(stmt, regions) and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef)):
                yield _Site(stmt, loop_body, tensors)
                if isinstance(stmt, _COMPOUND):
                    is_loop = isinstance(stmt, (ast.For, ast.AsyncFor, ast.While))
                    for name in ("body", "orelse", "finalbody"):
                        children = getattr(stmt, name, None) or []
                        yield from visit(children, children if is_loop and name == "body" else None, tensors)
            elif _overlaps(stmt, regions):
                for name in ("body", "orelse", "finalbody"):
                    yield from visit(getattr(stmt, name, None) or [], None, inner)

    yield from visit(tree.body, None, set())


def _header_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """The expressions of a statement that belong to it (not to the statements nested in its bodies)."""
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        roots: list[ast.AST] = [stmt.iter]
    elif isinstance(stmt, (ast.While, ast.If)):
        roots = [stmt.test]
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        roots = list(stmt.items)
    elif isinstance(stmt, ast.Try):
        roots = []
    else:
        roots = [stmt]
    nodes = []
    for root in roots:
        nodes.extend(ast.walk(root))
    return nodes


Edit = tuple[int, int, str]  # replace the bytes [start, end) of the UTF-8 source by a text


class _Cell:
    """A cell's source, its solution regions and its syntax tree; turns mutated trees into mutated sources.

    A mutated source is made by a small text edit (so that the diff shows just the change and the rest of the
    line, comments included, stays as written), checked by parsing it: it must give exactly the mutated tree.
    When no small edit does, the statement is rewritten with :func:`ast.unparse`."""

    def __init__(self, source: str, regions: list[tuple[int, int]] | None = None) -> None:
        self.source = source
        self.data = source.encode("utf-8")
        self.lines = source.split("\n")
        self.regions = regions if regions is not None else [(1, len(self.lines))]
        self.tree = ast.parse(source)
        self.normal = ast.dump(self.tree)
        self.starts = [0]
        for line in self.data.split(b"\n"):
            self.starts.append(self.starts[-1] + len(line) + 1)

    # -- positions -------------------------------------------------------------------------------------
    def span(self, node: ast.AST) -> tuple[int, int]:
        """Byte offsets of ``node`` in the UTF-8 source (ast's column offsets count UTF-8 bytes)."""
        return (self.starts[node.lineno - 1] + node.col_offset, self.starts[node.end_lineno - 1] + node.end_col_offset)

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.data[start:end].decode("utf-8")

    def line_of(self, offset: int) -> int:
        return next(i for i, start in enumerate(self.starts) if start > offset)

    def indent(self, stmt: ast.stmt) -> str:
        line = self.lines[stmt.lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    def apply(self, edits: list[Edit]) -> str:
        data = self.data
        for start, end, text in sorted(edits, reverse=True):
            data = data[:start] + text.encode("utf-8") + data[end:]
        return data.decode("utf-8")

    # -- edits -------------------------------------------------------------------------------------------
    def statement_edit(self, old: ast.stmt, new: ast.stmt) -> Edit:
        """Rewrite ``old`` as ``new`` (for a compound statement: only its header) with ast.unparse."""
        indent = self.indent(old)
        start = self.starts[old.lineno - 1]
        body = getattr(old, "body", None)
        if isinstance(old, _COMPOUND) and body and body[0].lineno > old.lineno:
            header = copy.copy(new)
            header.body = [ast.Pass()]
            for name in ("orelse", "finalbody", "handlers"):
                if hasattr(header, name):
                    setattr(header, name, [])
            lines = ast.unparse(header).split("\n")[:-1]
            return start, self.starts[body[0].lineno - 1] - 1, "\n".join(indent + line for line in lines)
        return start, self.span(old)[1], "\n".join(indent + line for line in ast.unparse(new).split("\n"))

    def call_edits(self, old: ast.Call, new: ast.Call) -> list[list[Edit]]:
        """Edits of a call's argument list: one argument removed, or two neighbours swapped."""
        if ast.dump(old.func) != ast.dump(new.func):
            return []
        before, after = [*old.args, *old.keywords], [*new.args, *new.keywords]
        dumps_before, dumps_after = [ast.dump(a) for a in before], [ast.dump(a) for a in after]
        found = []
        if len(after) == len(before) - 1:
            for i in range(len(before)):
                if dumps_before[:i] + dumps_before[i + 1:] == dumps_after:
                    start, end = self.span(before[i])
                    if i > 0:
                        start = self.span(before[i - 1])[1]
                    elif len(before) > 1:
                        end = self.span(before[1])[0]
                    found.append([(start, end, "")])
                    break
        elif len(after) == len(before):
            differ = [i for i in range(len(before)) if dumps_before[i] != dumps_after[i]]
            if len(differ) == 2 and dumps_before[differ[0]] == dumps_after[differ[1]] \
                    and dumps_before[differ[1]] == dumps_after[differ[0]]:
                (a, b) = (self.span(before[i]) for i in differ)
                found.append([(a[0], a[1], self.text(before[differ[1]])), (b[0], b[1], self.text(before[differ[0]]))])
        return found

    def attempts(self, node: ast.AST, replacement: ast.AST) -> list[list[Edit]]:
        """Small edits that may turn ``node`` into ``replacement``, best first."""
        start, end = self.span(node)
        found = []
        if isinstance(node, ast.Call) and isinstance(replacement, ast.Call):
            found += self.call_edits(node, replacement)
        if isinstance(node, ast.Tuple) and isinstance(replacement, ast.Tuple) \
                and len(node.elts) == len(replacement.elts):
            differ = [i for i in range(len(node.elts)) if ast.dump(node.elts[i]) != ast.dump(replacement.elts[i])]
            if len(differ) == 2:
                (a, b) = (self.span(node.elts[i]) for i in differ)
                found.append([(a[0], a[1], self.text(node.elts[differ[1]])),
                              (b[0], b[1], self.text(node.elts[differ[0]]))])
        detached = _detach_target(node, replacement)
        if detached is not None:
            text = self.text(detached)
            found += [[(start, end, text + ".detach()")], [(start, end, f"({text}).detach()")]]
        text = ast.unparse(replacement)
        if isinstance(replacement, ast.Constant) and isinstance(replacement.value, str) \
                and self.text(node).startswith('"'):
            text = json.dumps(replacement.value, ensure_ascii=False)  # keep the source's quotes
        found += [[(start, end, text)], [(start, end, f"({text})")]]
        return found


def _detach_target(node: ast.AST, replacement: ast.AST) -> ast.AST | None:
    """``node`` when ``replacement`` is ``node.detach()``."""
    if (isinstance(replacement, ast.Call) and isinstance(replacement.func, ast.Attribute)
            and replacement.func.attr == "detach" and not replacement.args
            and ast.dump(replacement.func.value) == ast.dump(node)):
        return node
    return None


def _statement_mutations(site: _Site) -> Iterator[tuple[str, ast.AST | None, ast.AST | None, str]]:
    """(operator, node, its replacement, description) for the statement operators; node None: delete the statement."""
    stmt = site.stmt
    first_line = ast.unparse(stmt).split("\n")[0]
    if site.loop_body is not None:
        yield "del_loop_stmt", None, None, f"loop statement `{first_line[:60]}` deleted"
    value = getattr(stmt, "value", None) if isinstance(stmt, (ast.Return, ast.Assign)) else None
    if value is None:
        return
    if isinstance(value, ast.Tuple):
        for element in value.elts:
            if _tensor_like(element, site.tensors):
                yield "detach", element, _detached(element), f"`.detach()` on `{_text(element)}`"
        for i in range(len(value.elts) - 1):
            if ast.dump(value.elts[i]) != ast.dump(value.elts[i + 1]):
                swapped = copy.deepcopy(value)
                swapped.elts[i], swapped.elts[i + 1] = swapped.elts[i + 1], swapped.elts[i]
                yield "swap_tuple", value, swapped, f"`{_text(value)}` → `{_text(swapped)}`"
    elif _tensor_like(value, site.tensors):
        yield "detach", value, _detached(value), f"`.detach()` on `{_text(value)}`"


def candidates(source: str, regions: list[tuple[int, int]] | None = None, label: str = "mutant") -> list[Candidate]:
    """Every single-change mutant of the statements inside ``regions`` (1-based inclusive line ranges of
    ``source``; None: the whole source), deduplicated, in a deterministic order: statements in source order,
    then statement operators, then expression operators node by node. Mutants that do not parse or that are
    identical to the original (or to an earlier mutant) after parsing are skipped."""
    cell = _Cell(source, regions)
    seen = {cell.normal}
    found: list[Candidate] = []

    def add(operator: str, mutated: str | None, description: str) -> None:
        if mutated is None:
            return
        try:
            normal = ast.dump(ast.parse(mutated))
        except SyntaxError:
            return
        if normal in seen:
            return
        seen.add(normal)
        pairs = zip(source.split("\n"), mutated.split("\n"))
        first = next((i for i, (a, b) in enumerate(pairs, 1) if a != b),
                     min(source.count("\n"), mutated.count("\n")) + 1)
        diff = "".join(difflib.unified_diff((source + "\n").splitlines(keepends=True),
                                            (mutated + "\n").splitlines(keepends=True), "solution", label, n=2))
        found.append(Candidate(operator, description, first, mutated, diff))

    def edited(stmt: ast.stmt, node: ast.AST, replacement: ast.AST) -> str | None:
        """The source with ``node`` replaced, by the smallest edit whose parse is the mutated tree."""
        expected = ast.dump(copy.deepcopy(cell.tree, memo={id(node): replacement}))
        for edits in cell.attempts(node, replacement):
            mutated = cell.apply(edits)
            try:
                if ast.dump(ast.parse(mutated)) == expected:
                    return mutated
            except SyntaxError:
                continue
        new_stmt = copy.deepcopy(stmt, memo={id(node): replacement})
        try:
            mutated = cell.apply([cell.statement_edit(stmt, new_stmt)])
            return mutated if ast.dump(ast.parse(mutated)) == expected else None
        except (SyntaxError, ValueError, TypeError, AttributeError, RecursionError):
            return None

    for site in _sites(cell.tree, cell.regions):
        stmt = site.stmt
        for operator, node, replacement, description in _statement_mutations(site):
            if node is None:  # delete the statement; a body left empty gets `pass`
                siblings = _parent_body(cell.tree, stmt)
                start, end = cell.starts[stmt.lineno - 1], cell.span(stmt)[1]
                if siblings is not None and len(siblings) == 1:
                    add(operator, cell.apply([(start, end, cell.indent(stmt) + "pass")]), description)
                else:  # the whole lines, newline included
                    add(operator, cell.apply([(start, cell.starts[stmt.end_lineno], "")]), description)
            else:
                add(operator, edited(stmt, node, replacement), description)
        nodes = _header_nodes(stmt)
        parents = {child: parent for parent in nodes for child in ast.iter_child_nodes(parent)}
        for node in nodes:
            for operator, function in EXPRESSION_OPERATORS.items():
                for replacement, description in function(node, parents):
                    add(operator, edited(stmt, node, replacement), description)
    return found


def _parent_body(tree: ast.AST, stmt: ast.stmt) -> list | None:
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and any(s is stmt for s in body):
                return body
    return None


def _order_key(cell: str, candidate: Candidate) -> str:
    """A stable pseudo-random order within one operator (so that a cap spreads the mutants over the source)."""
    return hashlib.sha256(f"{cell}\0{candidate.operator}\0{candidate.source}".encode()).hexdigest()


def select(cell: str, found: list[Candidate], cap: int | None = None) -> list[Mutant]:
    """Round-robin over :data:`OPERATORS` (pseudo-random but fixed order within an operator), at most ``cap``
    mutants, numbered ``<cell>-001``, ``<cell>-002``, … in that order. A prefix of the list is as diverse as
    the list allows, and the ids do not depend on ``cap``."""
    by_operator = {op: sorted((c for c in found if c.operator == op), key=lambda c: _order_key(cell, c))
                   for op in OPERATORS}
    ordered: list[Candidate] = []
    round_index = 0
    while any(round_index < len(queue) for queue in by_operator.values()):
        ordered.extend(queue[round_index] for queue in by_operator.values() if round_index < len(queue))
        round_index += 1
    if cap is not None:
        ordered = ordered[:cap]
    return [Mutant(f"{cell}-{i:03d}", cell, c.operator, c.description, c.line, c.source,
                   c.diff.replace("+++ mutant", f"+++ {cell}-{i:03d}", 1))
            for i, c in enumerate(ordered, start=1)]


# --- the notebooks --------------------------------------------------------------------------------------

def grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class StaleExample(RuntimeError):
    """The reference example's cell differs from the solution (run `make examples`)."""


def solution_cells(solution: dict, reference: dict, cells: Iterable[str]) -> dict[str, tuple[str, list]]:
    """grade_id -> (the cell's source as submitted, its solution regions), checked against the reference example."""
    by_id = {grade_id(c): c for c in solution["cells"] if grade_id(c)}
    submitted = {grade_id(c): c for c in reference["cells"] if grade_id(c)}
    found = {}
    for name in cells:
        if name not in by_id or name not in submitted:
            raise StaleExample(f"no cell with grade_id {name!r} in the solution or the reference example")
        stripped, regions = solution_regions(cell_source(by_id[name]))
        if stripped != cell_source(submitted[name]):
            raise StaleExample(f"the reference example's cell {name!r} is not the solution's: run `make examples`")
        if not regions:
            raise StaleExample(f"the solution cell {name!r} has no BEGIN/END SOLUTION region")
        found[name] = (stripped, regions)
    return found


def build_notebook(reference: dict, cell: str, source: str) -> dict:
    """``reference`` (a parsed notebook) with the source of the one cell whose grade_id is ``cell`` replaced."""
    notebook = copy.deepcopy(reference)
    matches = [c for c in notebook["cells"] if grade_id(c) == cell]
    if len(matches) != 1:
        raise ValueError(f"expected one cell with grade_id {cell!r}, found {len(matches)}")
    original = matches[0]["source"]
    matches[0]["source"] = source.splitlines(keepends=True) if isinstance(original, list) else source
    return notebook


def notebook_text(notebook: dict) -> str:
    """The JSON layout nbformat writes (indent 1, sorted keys, unescaped Unicode, final newline)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_submission(root: Path, student: str, notebook: dict) -> Path:
    path = root / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook_text(notebook), encoding="utf-8")
    return path


def make_mutants(groups: Iterable[Group], limit: int | None = None) -> dict[str, list[Mutant]]:
    """question id -> its mutants (capped by the group, then by ``limit``)."""
    groups = list(groups)
    solution, reference = read_json(SOLUTION_NOTEBOOK), read_json(REFERENCE_EXAMPLE)
    cells = solution_cells(solution, reference, [g.cell for g in groups])
    made = {}
    for group in groups:
        source, regions = cells[group.cell]
        mutants = select(group.cell, candidates(source, regions), group.cap)
        made[group.question] = mutants[:limit] if limit is not None else mutants
    return made


# --- grading -----------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What grading said about one mutant (or the control) in one stage."""

    points: dict[str, tuple[float, float]]  # question -> (score, max score)
    failed: list[dict]  # {"question", "check", "message", "class"} of each failed check
    notes: str = ""
    seconds: float = 0.0

    @property
    def lost(self) -> list[str]:
        return [q for q, (score, maximum) in self.points.items() if score < maximum - 1e-6]


_PROGRESS = re.compile(r"grading:.*?\|\s*(\d+)/(\d+)")


def _follow_progress(stream: Any, log: Any, bar: Any, total: int) -> None:
    """Copy the grade command's stderr to ``log`` and move ``bar`` as its tqdm line counts notebooks."""
    done, buffer = 0, ""
    while True:
        chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
        if not chunk:
            break
        text = chunk.decode("utf-8", "replace")
        log.write(text)
        buffer = (buffer + text)[-4096:]
        for part in re.split(r"[\r\n]", buffer):
            match = _PROGRESS.search(part)
            if match and int(match.group(1)) > done:
                if bar is not None:
                    bar.update(int(match.group(1)) - done)
                done = int(match.group(1))
    if bar is not None and done < total:  # the bar ends at the stage's count whatever was parsed
        bar.update(total - done)


class GradingError(RuntimeError):
    """The grade command failed, or the control lost points."""


def grade_stage(stage: Stage, notebooks: dict[str, dict], workdir: Path, jobs: int, bar: Any = None,
                extra: list[str] | None = None) -> dict[str, Outcome]:
    """Grade ``notebooks`` (student id -> parsed notebook) with ``python -m autograder grade -k stage.select``."""
    submitted, out = workdir / "submitted", workdir / "graded"
    for student, notebook in notebooks.items():
        write_submission(submitted, student, notebook)
    command = [sys.executable, "-m", "autograder", "grade", str(submitted), "--out", str(out), "--lang", "en",
               "--jobs", str(jobs),
               "-k", stage.select, *(extra or [])]
    log_path = workdir / "grade.log"
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.PIPE)
        follower = threading.Thread(target=_follow_progress, args=(process.stderr, log, bar, len(notebooks)),
                                    daemon=True)
        follower.start()
        code = process.wait()
        follower.join()
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
        raise GradingError(f"`{shlex.join(command[1:])}` exited with {code}:\n{tail}")
    outcomes = {}
    for student in notebooks:
        path = out / student / "results.json"
        if not path.exists():
            raise GradingError(f"no {path} after grading (see {log_path})")
        outcomes[student] = read_outcome(read_json(path), stage.questions)
    stage_seconds = time.monotonic() - started
    for outcome in outcomes.values():
        outcome.seconds = outcome.seconds or stage_seconds / max(len(outcomes), 1)
    return outcomes


def read_outcome(results: dict, questions: Iterable[str]) -> Outcome:
    """The points of ``questions`` and the failed checks in a Gradescope ``results.json``."""
    questions = tuple(questions)
    points: dict[str, list[float]] = {}
    failed = []
    for test in results.get("tests", []):
        question = (test.get("tags") or [test["name"].split(":", 1)[0]])[0]
        if question not in questions:
            continue
        score, maximum = points.setdefault(question, [0.0, 0.0]), test.get("max_score", 0.0)
        score[0] += test.get("score", 0.0)
        score[1] += maximum
        if test.get("status") != "passed":
            message = test.get("output", "")
            failed.append({"question": question, "check": test["name"].split(": ", 1)[-1], "message": message,
                           "class": classify(message)})
    return Outcome({q: (round(s, 6), round(m, 6)) for q, (s, m) in points.items()}, failed,
                   notes=results.get("output", ""), seconds=float(results.get("execution_time", 0) or 0))


def check_control(group: Group, stage: Stage, control: Outcome) -> None:
    """The unmutated reference must have checks for every question of the stage and get full marks."""
    missing = [q for q in stage.questions if q not in control.points]
    if missing:
        raise GradingError(f"{group.question}, stage '{stage.label}': `-k {stage.select}` selected no check of "
                           f"{', '.join(missing)} (were the graders renamed?)")
    if control.lost or control.notes:
        details = "; ".join(f"{f['check']}: {f['message']}" for f in control.failed) or control.notes
        raise GradingError(f"{group.question}, stage '{stage.label}': the unmutated reference lost points on "
                           f"{', '.join(control.lost) or 'nothing'} ({details[:600]}); fix the graders first")


# --- survivors: same behaviour as the reference? ----------------------------------------------------------

def _probe_requests(group: Group) -> list[tuple[str, str, dict, float]]:
    """(label, probe, arguments, timeout) run on the reference and on each survivor of ``group``."""
    import numpy as np
    import torch

    from autograder import config

    g = torch.Generator().manual_seed(11)
    tiny_train = {"dataset": "mnist", "n_train": 1024, "epochs": 1, "batch_size": 128, "lr": 1e-3, "seed": 0,
                  "kwargs": {}, "device": "cpu"}
    if group.cell == "reparameterize":
        mu, logvar = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
        return [
            ("call (64, 2) float32", "call", {"name": "reparameterize", "args": [mu, logvar], "seed": 3}, 30),
            ("call (8, 5) float64", "call", {"name": "reparameterize", "args": [
                torch.randn(8, 5, generator=g).double(), torch.randn(8, 5, generator=g).double()], "seed": 4}, 30),
            ("gradients", "gradients", {"name": "reparameterize", "args": [mu[:16], logvar[:16]],
                                        "weight": torch.randn(16, 2, generator=g)}, 30),
            ("VAE trained 1 epoch on 1,024 images", "train", {"name": "VAE", "kind": "vae", **tiny_train}, 180),
        ]
    if group.cell == "vae_loss":
        recon = torch.sigmoid(torch.randn(8, 1, 28, 28, generator=g))
        x = torch.rand(8, 1, 28, 28, generator=g)
        binary = (x > 0.5).float()
        mu, logvar = torch.randn(8, 2, generator=g), 0.5 * torch.randn(8, 2, generator=g)
        return [
            ("call", "call", {"name": "vae_loss", "args": [recon, x, mu, logvar]}, 30),
            ("call, flat reconstruction", "call", {"name": "vae_loss", "args": [recon.flatten(1), x, mu, logvar]}, 30),
            ("call, perfect binary reconstruction", "call", {"name": "vae_loss", "args": [binary, binary, mu, logvar]},
             30),
            ("gradients", "gradients", {"name": "vae_loss", "args": [recon, x, mu, logvar],
                                        "weight": torch.tensor(1.0)}, 30),
        ]
    if group.cell == "kmeans":
        centers = torch.tensor([[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0]])
        blobs = torch.cat([c + torch.randn(40, 2, generator=g) for c in centers])
        duplicates = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]).repeat_interleave(10, dim=0)
        latents = torch.from_numpy(np.load(config.LATENTS_FILE, allow_pickle=False))[:500]
        return [
            ("blobs, k=3", "call", {"name": "kmeans", "args": [blobs, 3], "seed": 1}, 60),
            ("blobs, k=3, seed=5", "call", {"name": "kmeans", "args": [blobs, 3], "kwargs": {"seed": 5}, "seed": 2},
             60),
            ("random 3-D data, k=5", "call", {"name": "kmeans", "args": [torch.randn(200, 3, generator=g), 5]}, 60),
            ("3 distinct points, k=5 (empty clusters)", "call", {"name": "kmeans", "args": [duplicates, 5]}, 60),
            ("500 AE latents, k=10, n_iters=3", "call", {"name": "kmeans", "args": [latents, 10],
                                                         "kwargs": {"n_iters": 3}}, 60),
            ("500 AE latents, k=10", "call", {"name": "kmeans", "args": [latents, 10]}, 60),
        ]
    if group.cell == "plot_latent_clusters":
        points = torch.randn(120, 2, generator=g)
        return [
            ("figure, 4 clusters", "figure", {"name": "plot_latent_clusters", "args": [points, torch.arange(120) % 4],
                                              "kwargs": {"title": "t"}}, 60),
            ("figure, labels 0, 3, 12", "figure", {"name": "plot_latent_clusters", "args": [
                points[:30], torch.tensor([0, 3, 12]).repeat(10)]}, 60),
        ]
    kind = "ae" if group.cell == "ConvAutoEncoder" else "vae"
    return [
        ("forward, (1, 28, 28)", "model", {"name": group.cell, "kwargs": {"in_channels": 1,
                                                                                          "image_size": 28},
                                                           "inputs": [torch.rand(4, 1, 28, 28, generator=g)]}, 60),
        ("forward, (3, 32, 32)", "model", {"name": group.cell, "kwargs": {"in_channels": 3, "image_size": 32},
                                           "inputs": [torch.rand(4, 3, 32, 32, generator=g)]}, 60),
        ("trained 1 epoch on 1,024 images", "train", {"name": group.cell, "kind": kind, **tiny_train}, 240),
    ]


def _difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where two probe answers differ (tensors: beyond float round-off), or None."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{where or 'value'}: {type(a).__name__} vs {type(b).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where or 'value'}: shape/dtype {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
        if a.is_floating_point():
            if torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6, equal_nan=True):
                return None
            error = (a.double() - b.double()).abs().nan_to_num(float("inf")).max().item()
            return f"{where or 'value'}: max |difference| {error:.3g}"
        return None if torch.equal(a, b) else f"{where or 'value'}: {int((a != b).sum())} of {a.numel()} entries differ"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where or 'value'}: keys {sorted(set(a) ^ set(b))[:4]} differ"
        for key in sorted(a):
            found = _difference(a[key], b[key], f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where or 'value'}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float):
        return None if abs(a - b) <= 1e-6 * max(1.0, abs(b)) else f"{where or 'value'}: {a:.6g} vs {b:.6g}"
    return None if a == b else f"{where or 'value'}: {str(a)[:60]} vs {str(b)[:60]}"


class BehaviourProbe:
    """Runs :func:`_probe_requests` in a sandboxed worker (the graders' probes) on a notebook's definitions."""

    def __init__(self, workdir: Path, sandbox_mode: str = "bwrap") -> None:
        from autograder import config
        from autograder.sandbox import SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache

        self.workdir = workdir
        self.runtime = prepare_runtime(workdir / "runtime")
        data = prepare_training_data(training_data_cache(), config.datasets())
        self.sandbox = SandboxConfig(mode=sandbox_mode, device="cpu", data=data.resolve())
        self.reference: dict[str, dict] = {}

    def answers(self, notebook: dict, group: Group) -> dict[str, Any]:
        from autograder.client import Worker
        from autograder.extract import extract_cells
        from autograder.failures import GradingFailure
        from autograder.submission import cell_label

        extraction = extract_cells(notebook)
        cells = [(cell_label(i, notebook["cells"][i]), code) for i, code in extraction.cells]
        results: dict[str, Any] = {}
        with Worker(cells, self.runtime, self.sandbox, self.workdir / "probe-worker.log") as worker:
            for label, op, args, timeout in _probe_requests(group):
                try:
                    results[label] = worker.request(op, cpu_s=timeout, **args)
                except GradingFailure as failure:
                    results[label] = {"failed": str(failure)[:200]}
        return results

    def compare(self, group: Group, reference: dict, notebook: dict) -> dict:
        """{"same": bool, "differences": [...], "probes": [...]} for ``notebook`` against the reference."""
        if group.question not in self.reference:
            self.reference[group.question] = self.answers(reference, group)
        expected = self.reference[group.question]
        found = self.answers(notebook, group)
        differences = []
        for label, answer in expected.items():
            mine = found.get(label)
            failed = [isinstance(a, dict) and set(a) == {"failed"} for a in (mine, answer)]
            if failed[0] and not failed[1]:
                differences.append(f"{label}: the mutant fails ({mine['failed']})")
            elif failed[1] and not failed[0]:
                differences.append(f"{label}: the reference fails ({answer['failed']}), the mutant does not")
            else:
                difference = _difference(mine, answer)
                if difference:
                    differences.append(f"{label}: {difference}")
        return {"same": not differences, "differences": differences, "probes": list(expected)}


# --- the run and its report ---------------------------------------------------------------------------

def _grader_fingerprint() -> str:
    """A short hash of the graders and the oracle: the report says which graders it measured."""
    digest = hashlib.sha256()
    folder = REPO_ROOT / "autograder"
    for path in sorted([*(folder / "graders").glob("*.py"), folder / "oracle.py", folder / "questions.toml",
                        folder / "calibration.json"]):
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _git_head() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "autograder"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" (autograder/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(groups: list[Group], *, jobs: int, limit: int | None, workdir: Path, exhaustive: bool = False,
        probe: bool = True, log: Callable[[str], None] = print) -> dict:
    """Make, grade and classify the mutants of ``groups``; returns the report's data."""
    from tqdm import tqdm

    made = make_mutants(groups, limit)
    reference = read_json(REFERENCE_EXAMPLE)
    total = sum(len(made[g.question]) + 1 for g in groups)  # first stages (+ control); later stages add theirs
    log(f"{sum(len(m) for m in made.values())} mutants: "
        + ", ".join(f"{g.question} {len(made[g.question])}" for g in groups))
    questions_data = []
    started = time.monotonic()
    with tqdm(total=total, desc="mutants", unit="notebook", dynamic_ncols=True) as bar:
        for group in groups:
            group_started = time.monotonic()
            mutants = made[group.question]
            notebooks = {m.id: build_notebook(reference, m.cell, m.source) for m in mutants}
            records = {m.id: {"id": m.id, "cell": m.cell, "operator": m.operator, "description": m.description,
                              "line": m.line, "diff": m.diff, "stages": [], "lost": [], "failed": [],
                              "status": "survived"} for m in mutants}
            pending = list(notebooks)
            for index, stage in enumerate(group.stages):
                if not pending and not exhaustive:
                    break
                if index > 0:  # later stages: the survivors only, and one more control
                    bar.total += len(pending) + 1
                    bar.refresh()
                bar.set_postfix_str(f"{group.question}: {stage.label}")
                stage_dir = workdir / group.question / f"stage{index + 1}"
                batch = {CONTROL_ID: reference, **{mid: notebooks[mid] for mid in pending}}
                outcomes = grade_stage(stage, batch, stage_dir, jobs, bar)
                check_control(group, stage, outcomes.pop(CONTROL_ID))
                for mid, outcome in outcomes.items():
                    record = records[mid]
                    record["stages"].append({"stage": stage.label, "select": stage.select, "points": outcome.points,
                                             "lost": outcome.lost, "seconds": round(outcome.seconds, 1),
                                             "notes": outcome.notes})
                    if outcome.lost:
                        record["status"] = "killed"
                        record["lost"] += [q for q in outcome.lost if q not in record["lost"]]
                        record["failed"] += outcome.failed
                if not exhaustive:
                    pending = [mid for mid in pending if records[mid]["status"] == "survived"]
                if index + 1 < len(group.stages) and not exhaustive:
                    skipped = len(notebooks) - len(pending)
                    if skipped:
                        bar.set_postfix_str(f"{group.question}: {skipped} killed before "
                                            f"'{group.stages[index + 1].label}'")
            for record in records.values():
                killed_failed = [f for f in record["failed"] if f["question"] in record["lost"]]
                record["diagnosis"] = best_class(f["message"] for f in killed_failed) if killed_failed else None
                record["first_message"] = killed_failed[0]["message"] if killed_failed else ""
                record["best_message"] = next((f["message"] for f in killed_failed
                                               if f["class"] == record["diagnosis"]), "")
            survivors = [r for r in records.values() if r["status"] == "survived"]
            if probe and survivors:
                bar.set_postfix_str(f"{group.question}: behaviour of {len(survivors)} survivor(s)")
                prober = BehaviourProbe(workdir / group.question / "probe")
                for record in survivors:
                    try:
                        record["behaviour"] = prober.compare(group, reference, notebooks[record["id"]])
                    except Exception as error:  # a probe that cannot run must not lose the report
                        record["behaviour"] = {"same": None, "differences": [f"probe failed: {error!r}"[:200]],
                                               "probes": []}
            summary = _summary(group, list(records.values()), time.monotonic() - group_started)
            questions_data.append({"question": group.question, "cell": group.cell, "summary": summary,
                                   "stages": [dataclasses.asdict(s) for s in group.stages],
                                   "mutants": list(records.values())})
            tqdm.write(_summary_line(summary))
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "git": _git_head(), "graders": _grader_fingerprint(), "jobs": jobs, "limit": limit, "exhaustive": exhaustive,
        "wall_seconds": round(time.monotonic() - started, 1),
        "generic_messages": [{"name": n, "pattern": p} for n, p in GENERIC_MESSAGES],
        "crash_messages": list(CRASH_MESSAGES),
        "operators": OPERATOR_HELP,
        "questions": questions_data,
    }


def _summary(group: Group, records: list[dict], seconds: float) -> dict:
    killed = [r for r in records if r["status"] == "killed"]
    count = {c: sum(1 for r in killed if r["diagnosis"] == c) for c in CLASS_ORDER}
    return {
        "question": group.question, "graded_on": list(group.questions), "mutants": len(records),
        "killed": len(killed), "survived": len(records) - len(killed),
        "kill_rate": len(killed) / len(records) if records else None,
        "named": count["named"], "explained": count["explained"], "crash": count["crash"],
        "generic": count["generic"], "internal": count["internal"],
        "named_rate": sum(count[c] for c in NAMING_CLASSES) / len(killed) if killed else None,
        "equivalent_suspects": sum(1 for r in records if r.get("behaviour", {}).get("same")),
        "seconds": round(seconds, 1),
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def _summary_line(s: dict) -> str:
    return (f"{s['question']:<17} {s['mutants']:3d} mutants, {s['killed']:3d} killed, {s['survived']:2d} survived: "
            f"kill rate {_percent(s['kill_rate']):>5}; named diagnosis {_percent(s['named_rate']):>5} of killed "
            f"(of which explained crashes {s['explained']}; crash {s['crash']}, generic {s['generic']}, internal {s['internal']}); {s['seconds']:.0f} s")


def _cell(text: str, width: int = 140) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown(data: dict, command: str) -> str:
    """The report ``mutants.md``."""
    minutes, seconds = divmod(int(round(data["wall_seconds"])), 60)
    machine = data["machine"]
    lines = [
        "# Mutation report",
        "",
        "Generated by `autograder/mutants.py`; do not edit by hand. Each mutant is the reference solution with one "
        "small change in one student cell; it is graded with `python -m autograder grade -k …` on its own "
        "question(s) only, and **killed** when it loses points there. The graders change: this is what they caught "
        "at the date below.",
        "",
        f"- command: `{command}`",
        f"- date: {data['date']}",
        f"- machine: {machine['cpus']} CPUs ({machine['processor']}), {machine['platform']}, "
        f"Python {machine['python']}; {data['jobs']} notebooks graded at a time",
        f"- wall time: **{minutes} min {seconds:02d} s**",
        f"- code: git {data['git']}; graders + oracle + questions + calibration fingerprint `{data['graders']}`",
        "- staging: " + ("every stage graded every mutant (--exhaustive)" if data["exhaustive"] else
                         "a later stage (training) grades only the mutants that survived the earlier ones")
        + (f"; `--limit {data['limit']}` per question" if data["limit"] else ""),
        "",
        "## Summary",
        "",
        "| question | graded on | mutants | killed | survived | kill rate | named diagnosis (of killed) | of which "
        "explained crash | crash "
        "| generic | survivors with unchanged behaviour | time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals = {"mutants": 0, "killed": 0, "survived": 0, "named": 0, "explained": 0, "crash": 0, "generic": 0,
              "same": 0}
    for question in data["questions"]:
        s = question["summary"]
        internal = f" + {s['internal']} internal" if s["internal"] else ""
        lines.append(f"| `{s['question']}` | {', '.join(s['graded_on'])} | {s['mutants']} | {s['killed']} | "
                     f"{s['survived']} | {_percent(s['kill_rate'])} | {_percent(s['named_rate'])} "
                     f"({s['named'] + s['explained']}) | {s['explained']} | {s['crash']} | {s['generic']}{internal}"
                     f" | {s['equivalent_suspects']} | {s['seconds']:.0f} s |")
        for key in ("mutants", "killed", "survived", "named", "explained", "crash", "generic"):
            totals[key] += s[key]
        totals["same"] += s["equivalent_suspects"]
    if len(data["questions"]) > 1:
        rate = totals["killed"] / totals["mutants"] if totals["mutants"] else None
        naming = totals["named"] + totals["explained"]
        named = naming / totals["killed"] if totals["killed"] else None
        lines.append(f"| **all** | | {totals['mutants']} | {totals['killed']} | {totals['survived']} | "
                     f"{_percent(rate)} | {_percent(named)} ({naming}) | {totals['explained']} | {totals['crash']} | "
                     f"{totals['generic']} | {totals['same']} | |")
    lines += [
        "",
        "Diagnosis of a killed mutant: the best class among the messages of its failed checks. **named**: the message "
        "names the mistake; **explained crash** (counted as named): the code raised and the message quotes the error "
        "and its line, then names the error's likely cause for the student's code (`autograder/explain.py`); "
        "**crash**: the code raised, hung or died and the message quotes the error and its line; "
        "**generic**: a fallback message (patterns in `GENERIC_MESSAGES`: "
        + ", ".join(f"“{g['name']}”" for g in data["generic_messages"]) + "). "
        "A survivor is run once more beside the reference in a sandboxed worker (the graders' probes on fixed inputs, "
        "plus one short training epoch for models): *same behaviour* means no probe saw a difference (probably an "
        "equivalent mutant, or a difference the probes cannot see, e.g. a figure's title); otherwise a property that "
        "no check looks at.",
        "",
        "## Operators",
        "",
        "| operator | what it does | mutants | killed |",
        "|---|---|---:|---:|",
    ]
    everything = [m for q in data["questions"] for m in q["mutants"]]
    for operator, text in data["operators"].items():
        used = [m for m in everything if m["operator"] == operator]
        if used:
            lines.append(f"| `{operator}` | {_cell(text.replace('``', '`'), 200)} | {len(used)} | "
                         f"{sum(1 for m in used if m['status'] == 'killed')} |")
    lines += ["", "## Survivors", ""]
    survivors = [(q, m) for q in data["questions"] for m in q["mutants"] if m["status"] == "survived"]
    if not survivors:
        lines += ["None.", ""]
    for question, mutant in survivors:
        behaviour = mutant.get("behaviour")
        if behaviour is None:
            seen = "behaviour not probed"
        elif behaviour["same"]:
            seen = (f"**same behaviour** as the reference on all {len(behaviour['probes'])} probes ("
                    + "; ".join(behaviour["probes"]) + ")")
        elif behaviour["same"] is None:
            seen = "behaviour probe failed: " + "; ".join(behaviour["differences"])
        else:
            seen = "**behaves differently**: " + "; ".join(behaviour["differences"][:3])
        lines += [f"### `{mutant['id']}` ({question['question']}, `{mutant['operator']}`)", "",
                  f"{mutant['description']}. {seen}.", "", "```diff", mutant["diff"].rstrip("\n"), "```", ""]
    lines += ["## Killed mutants", "",
              "| mutant | operator | change | lost points on | diagnosis | first failed check's message |",
              "|---|---|---|---|---|---|"]
    for question in data["questions"]:
        for mutant in question["mutants"]:
            if mutant["status"] == "killed":
                message = _cell(mutant["first_message"], 160)
                if mutant.get("best_message") and mutant["best_message"] != mutant["first_message"]:
                    message += f" — {mutant['diagnosis']} by another check: " + _cell(mutant["best_message"], 120)
                lines.append(f"| `{mutant['id']}` | `{mutant['operator']}` | {_cell(mutant['description'], 80)} | "
                             f"{', '.join(mutant['lost'])} | {mutant['diagnosis']} | {message} |")
    return "\n".join(lines) + "\n"


def write_report(data: dict, out: Path, command: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "mutants.md", out / "mutants.json"
    md.write_text(markdown(data, command), encoding="utf-8")
    js.write_text(json.dumps({"command": command, **data}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js


def main(argv: list[str] | None = None) -> int:
    names = [g.question for g in GROUPS]
    parser = argparse.ArgumentParser(
        prog="python -m autograder mutants", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mutation report: grade systematic one-change mutants of the reference solution's student "
                    "cells and report which the graders catch (kill rate) and how well they name the mistake.",
        epilog=f"questions: {', '.join(names)} (a cell name such as plot_latent_clusters works too). "
               "DATA_DIR must point at the datasets, as for `grade`.")
    parser.add_argument("--only", action="append", metavar="QUESTION", help="only this question (repeatable)")
    parser.add_argument("--jobs", type=int, default=0, help="notebooks graded at once (default: the CPU count)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N mutants per question (a quick run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help="where mutants.md and mutants.json go (default: reports/)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the mutant notebooks and graded folders here")
    parser.add_argument("--exhaustive", action="store_true",
                        help="grade every stage (the training checks too) on every mutant, not only the survivors")
    parser.add_argument("--no-probe", dest="probe", action="store_false",
                        help="do not compare the survivors' behaviour with the reference's")
    parser.add_argument("--list", action="store_true", help="print the mutants (id, operator, change) and exit")
    args = parser.parse_args(argv)
    aliases = {**{g.question: g for g in GROUPS}, **{g.cell: g for g in GROUPS}}
    wanted = args.only or names
    unknown = [name for name in wanted if name not in aliases]
    if unknown:
        parser.error(f"unknown question {', '.join(unknown)} (choose from {', '.join(names)})")
    groups = [g for g in GROUPS if g in {aliases[name] for name in wanted}]
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        if args.list:
            for mutants in make_mutants(groups, args.limit).values():
                for mutant in mutants:
                    print(f"{mutant.id:<26} {mutant.operator:<14} line {mutant.line:<3} {mutant.description}")
            return 0
        jobs = args.jobs or max(1, os.cpu_count() or 1)
        command = "python -m autograder mutants" + ("" if argv is None and len(sys.argv) <= 1 else " " + shlex.join(
            argv if argv is not None else sys.argv[1:]))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            data = run(groups, jobs=jobs, limit=args.limit, workdir=args.keep.resolve(), exhaustive=args.exhaustive,
                       probe=args.probe)
        else:
            with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
                data = run(groups, jobs=jobs, limit=args.limit, workdir=Path(tmp), exhaustive=args.exhaustive,
                           probe=args.probe)
    except (StaleExample, GradingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    md, js = write_report(data, args.out, command)
    minutes, seconds = divmod(int(round(data["wall_seconds"])), 60)
    print(f"wall time {minutes} min {seconds:02d} s; wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
