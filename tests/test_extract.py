"""autograder.extract keeps a notebook's definitions and drops its top-level work."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from autograder.extract import extract_cell, extract_notebook, load_definitions

CONTRACT = ["reparameterize", "vae_loss", "kmeans", "plot_latent_clusters", "ConvAutoEncoder", "ConvVAE",
            "AutoEncoder", "VAE"]


def write_notebook(path: Path, sources: list[str]) -> Path:
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources]
    cells.insert(1, {"cell_type": "markdown", "metadata": {}, "source": "def not_code(): pass"})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_keeps_definitions_and_drops_top_level_work() -> None:
    source = "\n".join([
        "import torch",
        "%matplotlib inline",
        "!pip install something",
        "LATENT = 2",
        "SIZES: tuple = (784, 128)",
        "model = train(LATENT)",
        "QUICK = os.environ.get('QUICK')",
        "@torch.no_grad()",
        "def f(a=LATENT):",
        "    return a",
        "class A:",
        "    size = 3",
        "print(f())",
    ])
    kept = extract_cell(source)
    assert kept.splitlines() == [
        "import torch", "LATENT = 2", "SIZES: tuple = (784, 128)",
        "@torch.no_grad()", "def f(a=LATENT):", "    return a", "class A:", "    size = 3",
    ]


def test_a_broken_cell_costs_only_itself(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", ["def good():\n    return 1", "def broken(:\n    pass", "X = 5"])
    extraction = extract_notebook(path)
    assert [index for index, _ in extraction.cells] == [0, 3]
    assert [index for index, _ in extraction.skipped] == [2]
    assert extraction.skipped[0][1].startswith("SyntaxError")
    namespace: dict = {}
    exec(extraction.source, namespace)
    assert namespace["good"]() == 1 and namespace["X"] == 5
    assert "not_code" not in namespace


def test_reference_notebook_defines_the_contract(solutions_dir: Path) -> None:
    namespace = load_definitions(solutions_dir / "autoencoders.ipynb")
    missing = [name for name in CONTRACT if name not in namespace]
    assert not missing, missing
    assert "ae_history" not in namespace and "x_train" not in namespace, "training code must not run"
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    assert namespace["reparameterize"](mu, logvar).shape == (3, 2)


def test_a_cell_nested_past_the_parsers_limit_costs_only_that_cell(tmp_path: Path) -> None:
    """Tens of KB of `1+1+…` or `- - … 1` make CPython's parser raise RecursionError or MemoryError, not
    SyntaxError; in the trusted process that must skip the cell, not end the grading of the submission."""
    deep = ["x = " + "+".join(["1"] * 30_000), "x = " + "-" * 30_000 + "1", "y = a" + ".b" * 30_000]
    extraction = extract_notebook(write_notebook(tmp_path / "deep.ipynb", ["import torch", *deep, "K = 3"]))
    assert [code for _, code in extraction.cells] == ["import torch", "K = 3"]
    assert [reason for _, reason in extraction.skipped] == ["too deeply nested to parse"] * 3
