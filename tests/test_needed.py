"""autograder/needed.py: a worker loads the graded names and what they use, nothing else."""
from __future__ import annotations

import time

from autograder import config
from autograder.extract import extract_notebook
from autograder.needed import needed_cells
from autograder.submission import roots

CELLS = [
    ("imports", "from __future__ import annotations\nimport torch\nimport torchvision\nimport matplotlib.pyplot as plt"),
    ("helpers", "SCALE = 0.5\nUNUSED = 3\ndef helper(x):\n    return torch.exp(SCALE * x)"),
    ("graded", "@decorate\ndef reparameterize(mu, logvar):\n    return mu + helper(logvar)"),
    ("decorator", "def decorate(f):\n    return f"),
    ("other", "from scipy.optimize import linear_sum_assignment\ndef accuracy(a, b):\n    return linear_sum_assignment(a)"),
    ("star", "from labtools import *"),
]


def _kept(cells: list[tuple[str, str]]) -> dict[str, str]:
    return dict(cells)


def test_keeps_the_closure_of_the_roots_and_nothing_else():
    kept = _kept(needed_cells(CELLS, ["reparameterize"]))
    assert kept["imports"] == "from __future__ import annotations\nimport torch", \
        "a future import is always kept (first), torch is used by helper, torchvision and plt by nothing"
    assert kept["helpers"] == "SCALE = 0.5\ndef helper(x):\n    return torch.exp(SCALE * x)", \
        "SCALE and helper are used, UNUSED is not"
    assert kept["graded"].startswith("@decorate"), "a decorator line belongs to its statement"
    assert "decorator" in kept, "a name used only in a decorator is needed"
    assert "other" not in kept, "scipy's import serves only accuracy, which no root uses"
    assert kept["star"] == "from labtools import *", "a star import may define anything: kept"
    assert [label for label, _ in needed_cells(CELLS, ["reparameterize"])] == \
        ["imports", "helpers", "graded", "decorator", "star"], "cells keep their order"


def test_every_definition_of_a_needed_name_is_kept():
    cells = [("a", "def f():\n    return 1"), ("b", "x = 2"), ("c", "def f():\n    return x")]
    assert _kept(needed_cells(cells, ["f"])) == dict(cells), "a redefinition and what it uses are kept in order"


def test_a_cell_that_does_not_parse_is_kept_whole_and_unknown_roots_keep_nothing():
    cells = [("bad", "def broken(:\n    pass"), ("fine", "import os")]
    assert needed_cells(cells, ["anything"]) == [("bad", "def broken(:\n    pass")]
    assert needed_cells([("fine", "import os")], ["missing"]) == []


def test_linear_in_the_size_of_the_definitions():
    def chain(n: int) -> list[tuple[str, str]]:
        return [(str(i), f"def f{i}():\n    return f{i + 1}()") for i in range(n)] + [(str(n), f"def f{n}():\n    return 0")]

    timings = []
    for n in (2_000, 8_000):
        started = time.perf_counter()
        assert len(needed_cells(chain(n), ["f0"])) == n + 1
        timings.append(time.perf_counter() - started)
    assert timings[1] < 10 * timings[0] + 0.05, f"4x the statements took {timings[1] / timings[0]:.1f}x the time"


def test_the_reference_loads_without_the_evaluation_imports_and_every_graded_name_stays():
    cells = [(str(i), code) for i, code in extract_notebook(config.PACKAGE_DIR.parent / "solutions" / "autoencoders.ipynb").cells]
    for role in ("functions", "encoder", "student"):
        source = "\n".join(code for _, code in needed_cells(cells, roots(role)))
        for name in roots(role):
            assert f"def {name}(" in source or f"class {name}(" in source, f"{role}: {name} was dropped"
        for heavy in ("import torchvision", "scipy.optimize", "sklearn.metrics"):
            assert heavy not in source, f"{role} still loads {heavy}"
    assert "plt" not in "\n".join(code for _, code in needed_cells(cells, roots("student"))), \
        "the model workers draw nothing: no matplotlib"


def test_the_given_template_class_is_sent_with_what_it_uses():
    source = config.template_source("VAE")
    assert "class VAE(" in source and "def mlp_encoder(" in source and "def mlp_decoder(" in source
    assert "torchvision" not in source and "def kmeans(" not in source
