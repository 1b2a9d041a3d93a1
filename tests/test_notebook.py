"""Execute the reference notebook and the student template in quick mode (QUICK=1).

The reference must run top to bottom, draw every figure and pass every self-check; the template
must run until its first stub and stop there with an error that names the function to write.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools.execute_notebook import ExecutionFailed, execute_notebook

FIGURE_IDS = {
    "fig_ae_reconstruction", "fig_ae_latent", "fig_ae_samples",
    "fig_vae_latent", "fig_vae_samples", "fig_vae_interpolation",
    "fig_kmeans_ae", "fig_kmeans_vae", "fig_conv_latent", "fig_fashion_latent", "fig_cifar_latent",
}
STUBS = ["reparameterize", "vae_loss", "kmeans", "plot_latent_clusters", "ConvAutoEncoder", "ConvVAE"]


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def run_quick(src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Execute ``src`` with QUICK=1 into ``dst`` and return the executed notebook (errors propagate)."""
    monkeypatch.setenv("QUICK", "1")
    seconds = execute_notebook(src, dst, timeout=600)
    print(f"{src.name} executed in {seconds:.1f} s")
    return nbformat.read(dst, as_version=4)


@pytest.fixture(scope="module")
def executed_reference(solutions_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return run_quick(solutions_dir / "autoencoders.ipynb", tmp_path_factory.mktemp("ref") / "out.ipynb", monkeypatch)


def test_every_figure_task_draws_an_image(executed_reference: nbformat.NotebookNode) -> None:
    figure_cells = {grade_id(c): c for c in executed_reference.cells if "figure" in c.metadata.get("tags", [])}
    assert set(figure_cells) == FIGURE_IDS, "the figure cells changed: update FIGURE_IDS or the notebook"
    missing = [
        name for name, cell in figure_cells.items()
        if not any("image/png" in o.get("data", {}) for o in cell.outputs)
    ]
    assert not missing, f"figure cells without an image output: {missing}"


def test_every_self_check_passes_on_the_reference(executed_reference: nbformat.NotebookNode) -> None:
    checks = {grade_id(c): stdout_of(c) for c in executed_reference.cells if (grade_id(c) or "").startswith("check_")}
    assert sorted(checks) == sorted(f"check_{name}" for name in STUBS)
    for cell_id, text in checks.items():
        name = cell_id.removeprefix("check_")
        assert f"✔ {name}" in text, f"{cell_id} printed {text!r}"


def test_reference_reports_sane_metrics(executed_reference: nbformat.NotebookNode) -> None:
    """Quick mode still trains: the printed test errors are far below those of an untrained model."""
    text = "\n".join(stdout_of(c) for c in executed_reference.cells if c.cell_type == "code")
    ae_mse = float(text.split("AE のテスト MSE:")[1].split()[0])
    vae_loss = float(text.split("VAE のテスト損失 (1 サンプルあたりの BCE + KL):")[1].split()[0])
    assert 0.0 < ae_mse < 0.06, ae_mse  # predicting the mean image gives about 0.067
    assert 100.0 < vae_loss < 190.0, vae_loss  # the mean image gives about 206


def test_template_runs_until_the_first_stub_and_names_it(
    assignment_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = tmp_path / "template.ipynb"
    with pytest.raises(ExecutionFailed):
        run_quick(assignment_dir / "autoencoders.ipynb", dst, monkeypatch)
    cells = nbformat.read(dst, as_version=4).cells
    failing = [i for i, c in enumerate(cells) if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert len(failing) == 1
    index = failing[0]
    assert grade_id(cells[index]) == "check_reparameterize"
    error = next(o for o in cells[index].outputs if o.output_type == "error")
    assert error.ename == "NotImplementedError"
    assert "reparameterize" in error.evalue
    before = [c for c in cells[:index] if c.cell_type == "code"]
    assert before and all(c.execution_count is not None for c in before), "a cell before the first stub did not run"


def test_a_relative_data_dir_keeps_its_meaning_in_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel runs in the notebook's folder, so execute_notebook passes DATA_DIR as an absolute path."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint(os.environ['DATA_DIR'])")])
    (tmp_path / "nb").mkdir()
    nbformat.write(notebook, tmp_path / "nb" / "probe.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", "datasets")
    execute_notebook(tmp_path / "nb" / "probe.ipynb", tmp_path / "out.ipynb", timeout=60)
    printed = stdout_of(nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0]).strip()
    assert printed == str(tmp_path / "datasets")
