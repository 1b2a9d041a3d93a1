"""課題 1.2 ``plot_latent_clusters(latents, cluster_labels, title="")`` and the notebook's cluster figures."""
import pytest
import torch

from autograder.figures import figure_outputs, png_problem
from autograder.i18n import t
from autograder.oracle import expect, fail

pytestmark = pytest.mark.question("cluster_plots")

K = 5
_generator = torch.Generator().manual_seed(4)
LATENTS = torch.randn(300, 2, generator=_generator) * 3
LABELS = torch.arange(300) % K
FIGURE_CELLS = ("fig_kmeans_ae", "fig_kmeans_vae")
TITLE = "k-means (k = 5) 潜在空間"
NOT_A_NOTEBOOK = t("提出物が読み込めるノートブックではありません", "the submission is not a readable notebook")


def scatter(functions) -> dict:
    report = functions.request("figure", name="plot_latent_clusters", args=[LATENTS, LABELS], kwargs={"title": TITLE})
    expect(report["is_figure"], t("plot_latent_clusters は matplotlib の Figure を返す必要がありますが、{type} を返し"
                                  "ました（fig, ax = plt.subplots(); ...; return fig）",
                                  "plot_latent_clusters must return a matplotlib Figure, not {type} "
                                  "(fig, ax = plt.subplots(); ...; return fig)", type=report["type"]))
    expect(bool(report["scatters"]), t("図に散布図（ax.scatter）がありません", "the figure has no scatter plot (ax.scatter)"))
    return report


def point_colours(report: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """All plotted points and the RGBA colour of each (a collection may have one colour for all its points)."""
    points, colours = [], []
    for collection in report["scatters"]:
        offsets, faces = collection["offsets"], collection["facecolors"]
        if len(offsets) == 0:
            continue
        expect(len(faces) in (1, len(offsets)), t("散布図の色の数が点の数と合っていません",
                                                  "a scatter's colours do not match its points"))
        points.append(offsets)
        colours.append(faces.expand(len(offsets), 4) if len(faces) == 1 else faces)
    return torch.cat(points), torch.cat(colours)


def test_returns_figure_with_every_point(functions):
    """Returns a Figure whose scatter plots show all N latents, under the given title.

    ja: 渡したタイトルのついた Figure を返し、その散布図に N 個の潜在変数がすべて描かれている
    """
    report = scatter(functions)
    expect(any(TITLE in str(title) for title in report.get("titles", [])),
           t("渡したタイトル（title={title!r}）が図に表示されていません。ax.set_title(title) を使ってください",
             "the figure does not show the title passed in (title={title!r}): use ax.set_title(title)", title=TITLE))
    points, _ = point_colours(report)
    expect(len(points) == len(LATENTS), t("散布図に描かれている点は {drawn} 個です。{given} 個の潜在変数をすべて描く"
                                          "必要があります",
                                          "the scatter plots show {drawn} points; all {given} latents must be drawn",
                                          drawn=len(points), given=len(LATENTS)))
    drawn = sorted(map(tuple, points.float().round(decimals=4).tolist()))
    given = sorted(map(tuple, LATENTS.round(decimals=4).tolist()))
    expect(drawn == given, t("描かれた点が渡された潜在変数と一致しません（latents[:, 0] を横軸、latents[:, 1] を縦軸に"
                             "プロットしてください）",
                             "the points drawn are not the latents passed in (plot latents[:, 0] against "
                             "latents[:, 1])"))


def test_one_colour_per_cluster(functions):
    """Each cluster has its own colour: at least k colours, one per cluster.

    ja: クラスタごとに別の色で描かれている（k 色以上、クラスタごとに 1 色）
    """
    points, colours = point_colours(scatter(functions))
    expect(len(points) == len(LATENTS), t("描かれていない点があります", "not every point is drawn"))
    cluster_of = {tuple(p): int(c) for p, c in zip(LATENTS.round(decimals=4).tolist(), LABELS)}
    colour_of: dict[int, set] = {}
    for point, colour in zip(points.float().round(decimals=4).tolist(), colours.round(decimals=3).tolist()):
        if tuple(point) not in cluster_of:
            fail(t("描かれた点が渡された潜在変数と一致しません", "the points drawn are not the latents passed in"))
        colour_of.setdefault(cluster_of[tuple(point)], set()).add(tuple(colour))
    distinct = {c for shades in colour_of.values() for c in shades}
    expect(len(distinct) >= K, t("{k} 個のクラスタが {colours} 色で描かれています。点をクラスタごとに色分けしてください"
                                 "（クラスタごとに ax.scatter を呼ぶか、c=cluster_labels と tab10 などのカラーマップを"
                                 "使います）",
                                 "{k} clusters are drawn in {colours} colour(s): colour the points by cluster "
                                 "(one ax.scatter per cluster, or c=cluster_labels with a colormap such as tab10)",
                                 k=K, colours=len(distinct)))
    shared = [k for k, shades in colour_of.items() if len(shades) > 1]
    if shared:
        fail(t("クラスタ {cluster} の点が複数の色で描かれています", "the points of cluster {cluster} are drawn in several "
               "colours", cluster=shared[0]))
    expect(len({next(iter(s)) for s in colour_of.values()}) == K, t("2 つのクラスタが同じ色で描かれています",
                                                                    "two clusters share a colour"))


def test_colours_have_a_key(functions):
    """The colours have a key: a legend with a labelled entry per cluster, or a colorbar.

    ja: 色の凡例がある: クラスタごとにラベルのついた項目をもつ凡例、またはカラーバー
    """
    report = scatter(functions)
    entries = report.get("legend_entries", 0)
    expect(entries >= K or report.get("colorbar"),
           t("色がどのクラスタを表すかを示す凡例がありません（{k} 個のクラスタに対して、ラベルのついた凡例の項目が {entries} "
             "個）。ノートブックの指示どおり、ax.scatter(..., label=f\"cluster {{k}}\") で各クラスタにラベルを付けて "
             "ax.legend() を呼ぶか、カラーバーを付けてください",
             "nothing tells which colour is which cluster ({entries} labelled legend entries for {k} clusters): as the "
             "notebook asks, label each cluster (ax.scatter(..., label=f\"cluster {{k}}\")) and call ax.legend(), "
             "or add a colorbar", k=K, entries=entries))


def _cell_id(cell: dict) -> str:
    return str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id") or "")


def test_notebook_shows_cluster_figures(submitted_notebook):
    """The submitted notebook contains the k-means figures (the cells fig_kmeans_ae and fig_kmeans_vae were run).

    ja: 提出されたノートブックに k-means の図がある（セル fig_kmeans_ae と fig_kmeans_vae が実行されている）
    """
    expect(submitted_notebook is not None, NOT_A_NOTEBOOK)
    cells = {_cell_id(cell): cell for cell in submitted_notebook["cells"] if isinstance(cell, dict)}
    for name in FIGURE_CELLS:
        expect(name in cells, t("ノートブックにセル {name} がありません（セルを削除しませんでしたか？）",
                                "the notebook has no cell {name} (was the cell deleted?)", name=name))
        images = figure_outputs(cells[name])
        expect(bool(images), t("セル {name} に図がありません。提出する前にノートブック全体を実行し"
                               "（Kernel → Restart & Run All）、保存してください",
                               "the cell {name} has no figure: run the whole notebook (Kernel → Restart & Run All) "
                               "and save it before submitting", name=name))
        problems = [png_problem(image) for image in images]
        expect(any(problem is None for problem in problems),
               t("セル {name} の図は実際のプロットではありません（{problem}）。セルを実行してからノートブックを保存して"
                 "ください",
                 "the figure in cell {name} is not a real plot ({problem}): run the cell and save the notebook",
                 name=name, problem=problems[0]))
