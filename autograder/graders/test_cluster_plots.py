"""課題 1.2 ``plot_latent_clusters(latents, cluster_labels, title="")`` and the notebook's cluster figures."""
import pytest
import torch

from autograder.figures import check_png, figure_outputs
from autograder.oracle import expect, fail

pytestmark = pytest.mark.question("cluster_plots")

K = 5
_generator = torch.Generator().manual_seed(4)
LATENTS = torch.randn(300, 2, generator=_generator) * 3
LABELS = torch.arange(300) % K
FIGURE_CELLS = ("fig_kmeans_ae", "fig_kmeans_vae")
TITLE = "k-means (k = 5) 潜在空間"


def scatter(student) -> dict:
    report = student.request("figure", name="plot_latent_clusters", args=[LATENTS, LABELS], kwargs={"title": TITLE})
    expect(report["is_figure"], f"plot_latent_clusters must return a matplotlib Figure, not {report['type']} "
                                "(fig, ax = plt.subplots(); ...; return fig)")
    expect(bool(report["scatters"]), "the figure has no scatter plot (ax.scatter)")
    return report


def point_colours(report: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """All plotted points and the RGBA colour of each (a collection may have one colour for all its points)."""
    points, colours = [], []
    for collection in report["scatters"]:
        offsets, faces = collection["offsets"], collection["facecolors"]
        if len(offsets) == 0:
            continue
        expect(len(faces) in (1, len(offsets)), "a scatter's colours do not match its points")
        points.append(offsets)
        colours.append(faces.expand(len(offsets), 4) if len(faces) == 1 else faces)
    return torch.cat(points), torch.cat(colours)


def test_returns_figure_with_every_point(student):
    """Returns a Figure whose scatter plots show all N latents, under the given title."""
    report = scatter(student)
    expect(any(TITLE in str(title) for title in report.get("titles", [])),
           f"the figure does not show the title passed in (title={TITLE!r}): use ax.set_title(title)")
    points, _ = point_colours(report)
    expect(len(points) == len(LATENTS), f"the scatter plots show {len(points)} points; all {len(LATENTS)} latents "
                                        "must be drawn")
    drawn = sorted(map(tuple, points.float().round(decimals=4).tolist()))
    given = sorted(map(tuple, LATENTS.round(decimals=4).tolist()))
    expect(drawn == given, "the points drawn are not the latents passed in (plot latents[:, 0] against latents[:, 1])")


def test_one_colour_per_cluster(student):
    """Each cluster has its own colour: at least k colours, one per cluster."""
    points, colours = point_colours(scatter(student))
    expect(len(points) == len(LATENTS), "not every point is drawn")
    cluster_of = {tuple(p): int(c) for p, c in zip(LATENTS.round(decimals=4).tolist(), LABELS)}
    colour_of: dict[int, set] = {}
    for point, colour in zip(points.float().round(decimals=4).tolist(), colours.round(decimals=3).tolist()):
        if tuple(point) not in cluster_of:
            fail("the points drawn are not the latents passed in")
        colour_of.setdefault(cluster_of[tuple(point)], set()).add(tuple(colour))
    distinct = {c for shades in colour_of.values() for c in shades}
    expect(len(distinct) >= K, f"{K} clusters are drawn in {len(distinct)} colour(s): colour the points by cluster "
                               "(one ax.scatter per cluster, or c=cluster_labels with a colormap such as tab10)")
    shared = [k for k, shades in colour_of.items() if len(shades) > 1]
    if shared:
        fail(f"the points of cluster {shared[0]} are drawn in several colours")
    expect(len({next(iter(s)) for s in colour_of.values()}) == K, "two clusters share a colour")


def _cell_id(cell: dict) -> str:
    return str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id") or "")


def test_notebook_shows_cluster_figures(submitted_notebook):
    """The submitted notebook contains the k-means figures (the cells fig_kmeans_ae and fig_kmeans_vae were run)."""
    expect(submitted_notebook is not None, "the submission is not a readable notebook")
    cells = {_cell_id(cell): cell for cell in submitted_notebook["cells"] if isinstance(cell, dict)}
    for name in FIGURE_CELLS:
        expect(name in cells, f"the notebook has no cell {name} (was the cell deleted?)")
        images = figure_outputs(cells[name])
        expect(bool(images), f"the cell {name} has no figure: run the whole notebook (Kernel → Restart & Run All) "
                             "and save it before submitting")
        problems = [check_png(image) for image in images]
        expect(any(problem is None for problem in problems),
               f"the figure in cell {name} is not a real plot ({problems[0]}): run the cell and save the notebook")
