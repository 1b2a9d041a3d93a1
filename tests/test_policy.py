"""autograder.policy: "implement kmeans yourself" checked on the notebook's source, never by running it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.policy import Policy, policies, policy_findings


def check_policy(notebook: dict, functions: list[str], forbid: list[str]) -> list[str]:
    """The English text of :func:`policy_findings`, one line per finding: what these tests assert on."""
    return [finding.en for finding in policy_findings(notebook, functions, forbid)]


FORBID = ["sklearn.cluster", "scipy.cluster"]

SETUP = """\
%matplotlib inline
import math
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
"""

CLEAN_KMEANS = '''\
def _squared_distances(x, centroids):
    """(N, K) squared Euclidean distances."""
    return torch.cdist(x, centroids).pow(2)


def _kmeans_plus_plus(x, n_clusters, generator):
    first = torch.randint(len(x), (1,), generator=generator)
    centroids = x[first]
    for _ in range(1, n_clusters):
        nearest = _squared_distances(x, centroids).min(dim=1).values
        chosen = torch.multinomial(nearest + 1e-12, 1, generator=generator)
        centroids = torch.cat([centroids, x[chosen]])
    return centroids


def kmeans(x, n_clusters, n_iters=100, seed=0):
    """Lloyd's algorithm with k-means++ initialisation."""
    x = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    centroids = _kmeans_plus_plus(x, n_clusters, generator)
    labels = _squared_distances(x, centroids).argmin(dim=1)
    for _ in range(n_iters):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=n_clusters).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        new_labels = _squared_distances(x, centroids).argmin(dim=1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return labels, centroids
'''

USE_IT = """\
labels, centroids = kmeans(torch.randn(300, 2), 3)
print(adjusted_rand_score(labels.numpy(), labels.numpy()), math.pi, np.pi, F.relu, DEVICE)
"""


def code(source: str, grade_id: str | None = None) -> dict:
    metadata = {"nbgrader": {"grade_id": grade_id, "solution": True}} if grade_id else {}
    return {"cell_type": "code", "metadata": metadata, "source": source, "outputs": [], "execution_count": None}


def notebook(*cells: str | dict) -> dict:
    built = [cell if isinstance(cell, dict) else code(cell) for cell in cells]
    built.insert(0, {"cell_type": "markdown", "metadata": {}, "source": "# 課題 1.1 kmeans\nimport sklearn.cluster"})
    return {"cells": built, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def check(*cells: str | dict, functions: tuple[str, ...] = ("kmeans",)) -> list[str]:
    return check_policy(notebook(*cells), list(functions), FORBID)


def kmeans_body(*lines: str, header: str = "def kmeans(x, n_clusters, n_iters=100, seed=0):") -> str:
    return "\n".join([header, *("    " + line for line in lines)]) + "\n"


# --------------------------------------------------------------------------------------------------
# legitimate notebooks


def test_a_clean_pytorch_kmeans_has_no_findings() -> None:
    assert check(SETUP, code(CLEAN_KMEANS, "kmeans"), USE_IT) == []


def test_sources_as_lists_of_lines_work() -> None:
    cell = code([line + "\n" for line in CLEAN_KMEANS.splitlines()], "kmeans")
    assert check(SETUP, cell) == []
    bad = code(["from sklearn.cluster import KMeans\n", "def kmeans(x, k, n_iters=100, seed=0):\n",
                "    return KMeans(k).fit_predict(x)\n"], "kmeans")
    assert len(check(bad)) == 1


def test_the_reference_solution_and_examples_are_clean(repo_root: Path) -> None:
    for path in [repo_root / "solutions" / "autoencoders.ipynb", repo_root / "assignment" / "autoencoders.ipynb"]:
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert check_policy(nb, ["kmeans"], FORBID) == [], path


def test_forbidden_imports_unused_by_kmeans_are_fine() -> None:
    comparison = """\
from sklearn.cluster import KMeans
import sklearn.cluster as skc
import scipy.cluster.vq as vq
from sklearn import cluster
reference = KMeans(3, n_init=10).fit_predict(torch.randn(300, 2).numpy())
codebook, _ = vq.kmeans(np.random.rand(50, 2), 3)
def compare_with_sklearn(x, k):
    return adjusted_rand_score(KMeans(k).fit_predict(x), kmeans(x, k)[0])
"""
    assert check(SETUP, code(CLEAN_KMEANS, "kmeans"), comparison, USE_IT) == []


def test_local_names_shadowing_forbidden_imports_are_fine() -> None:
    shadowed = kmeans_body(
        "cluster = torch.zeros(len(x), dtype=torch.long)",
        "KMeans = n_clusters",
        "vq = [c for c in range(KMeans)]",
        "return cluster, torch.stack([x[cluster == c].mean(0) for c in vq])",
    )
    assert check("from sklearn import cluster\nfrom sklearn.cluster import KMeans\nimport scipy.cluster.vq as vq",
                 "import torch", shadowed) == []


def test_allowed_parts_of_a_package_are_fine() -> None:
    uses_other_sklearn = kmeans_body(
        "import sklearn.metrics",
        "from scipy.spatial.distance import cdist",
        "d = torch.as_tensor(cdist(x, x[:n_clusters]))",
        "print(sklearn.metrics.adjusted_rand_score([0], [0]), scipy.special.expit(0.0))",
        "return d.argmin(1), x[:n_clusters]",
    )
    assert check("import torch\nimport scipy.special", uses_other_sklearn) == []


def test_a_missing_function_is_not_a_finding() -> None:
    assert check(SETUP, "from sklearn.cluster import KMeans\nmodel = KMeans(3)") == []
    assert check_policy({}, ["kmeans"], FORBID) == []


@pytest.mark.parametrize("bad", [None, [], "nb", {"cells": None}, {"cells": [None, 1, {"cell_type": "code"}]},
                                 {"cells": [{"cell_type": "code", "source": 5}]},
                                 {"cells": [{"cell_type": "code", "source": ["a", 1]}]},
                                 {"cells": [{"cell_type": "code", "source": "x = 1\0"}]}])
def test_malformed_notebooks_never_raise(bad: object) -> None:
    assert check_policy(bad, ["kmeans"], FORBID) == []  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# wrapping sklearn.cluster / scipy.cluster, in every import form


@pytest.mark.parametrize("imports, use, thing", [
    ("from sklearn.cluster import KMeans", "KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("from sklearn.cluster import KMeans as K", "K(n_clusters)", "sklearn.cluster.KMeans"),
    ("from sklearn.cluster import MiniBatchKMeans", "MiniBatchKMeans(n_clusters)", "sklearn.cluster.MiniBatchKMeans"),
    ("from sklearn.cluster import k_means", "k_means(x, n_clusters)", "sklearn.cluster.k_means"),
    ("from sklearn.cluster._kmeans import KMeans", "KMeans(n_clusters)", "sklearn.cluster._kmeans.KMeans"),
    ("import sklearn.cluster", "sklearn.cluster.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("import sklearn", "sklearn.cluster.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("import sklearn.metrics", "sklearn.cluster.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("import sklearn.cluster as skc", "skc.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("import sklearn as sk", "sk.cluster.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("from sklearn import cluster", "cluster.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("from sklearn import cluster as c", "c.KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("import sklearn", "getattr(sklearn, 'cluster').KMeans(n_clusters)", "sklearn.cluster.KMeans"),
    ("from scipy.cluster.vq import kmeans2", "kmeans2(x, n_clusters)", "scipy.cluster.vq.kmeans2"),
    ("import scipy.cluster.vq as vq", "vq.kmeans2(x, n_clusters)", "scipy.cluster.vq.kmeans2"),
    ("from scipy.cluster import vq", "vq.kmeans2(x, n_clusters)", "scipy.cluster.vq.kmeans2"),
    ("import scipy", "scipy.cluster.vq.kmeans2(x, n_clusters)", "scipy.cluster.vq.kmeans2"),
])
def test_every_import_form_used_inside_kmeans_is_found(imports: str, use: str, thing: str) -> None:
    source = kmeans_body(f"model = {use}", "return model")
    for cells in ([imports, code(source, "kmeans")],  # import in another cell
                  [code(imports + "\n" + source, "kmeans")]):  # import in the same cell
        findings = check(SETUP, *cells)
        assert any(f.startswith(f"kmeans uses {thing} (line ") and "own PyTorch implementation" in f
                   for f in findings), findings


def test_the_message_names_function_thing_line_and_cell() -> None:
    cell = code("from sklearn.cluster import KMeans\n\n\n" + kmeans_body("km = KMeans(n_clusters).fit(x)",
                                                                         "return km.labels_, km.cluster_centers_"),
                "kmeans")
    assert check(cell) == ["kmeans uses sklearn.cluster.KMeans (line 5 of cell `kmeans`): "
                           "the lab asks for your own PyTorch implementation"]
    assert check(SETUP, "\n" + kmeans_body("return KMeans(n_clusters)"),
                 "from sklearn.cluster import KMeans") == [
        "kmeans uses sklearn.cluster.KMeans (line 3 of cell #3): the lab asks for your own PyTorch implementation"]


@pytest.mark.parametrize("import_line", [
    "from sklearn.cluster import KMeans",
    "from sklearn import cluster",
    "import sklearn.cluster",
    "import sklearn.cluster as skc",
    "from scipy.cluster.vq import kmeans2",
    "from scipy.cluster import vq",
    "import scipy.cluster.vq",
])
def test_an_import_statement_inside_kmeans_is_found(import_line: str) -> None:
    findings = check(kmeans_body(import_line, "return None"))
    assert findings and findings[0].startswith("kmeans imports ") and "line 2" in findings[0], findings


def test_a_relative_import_inside_kmeans_is_found() -> None:
    findings = check(kmeans_body("from .cluster import KMeans", "return KMeans(n_clusters)"))
    assert findings and "relative import" in findings[0]


@pytest.mark.parametrize("helper", [
    # a helper function that wraps KMeans
    "def _fit(x, k, seed):\n    return KMeans(k, random_state=seed).fit(x)\n",
    # a helper that imports it itself
    "def _fit(x, k, seed):\n    from sklearn.cluster import KMeans as KM\n    return KM(k).fit(x)\n",
    # the forbidden object hidden in a default argument, a decorator, a class body
    "def _fit(x, k, seed, impl=KMeans):\n    return impl(k).fit(x)\n",
    "def _wrap(f):\n    return lambda x, k, seed: KMeans(k).fit(x)\n\n@_wrap\ndef _fit(x, k, seed):\n    pass\n",
    "class _Fitter:\n    impl = KMeans\n\ndef _fit(x, k, seed):\n    return _Fitter.impl(k).fit(x)\n",
    # a module-level alias and a lambda
    "_IMPL = KMeans\n_fit = lambda x, k, seed: _IMPL(k).fit(x)\n",
    # two levels of helpers
    "def _inner(k):\n    return KMeans(k)\n\ndef _fit(x, k, seed):\n    return _inner(k).fit(x)\n",
])
def test_a_helper_that_kmeans_calls_is_checked_too(helper: str) -> None:
    source = kmeans_body("km = _fit(x, n_clusters, seed)", "return km.labels_, km.cluster_centers_")
    findings = check("from sklearn.cluster import KMeans", helper, code(source, "kmeans"))
    assert findings, helper
    assert all(f.startswith("kmeans (through `_") for f in findings), findings
    assert any("sklearn.cluster" in f for f in findings), findings


def test_a_class_method_used_by_kmeans_is_checked() -> None:
    clusterer = """\
import torch
from sklearn.cluster import KMeans


class Clusterer:
    def __init__(self, k, seed=0):
        self.k, self.seed = k, seed

    def fit(self, x):
        model = KMeans(self.k, random_state=self.seed, n_init=10).fit(x.numpy())
        return torch.as_tensor(model.labels_), torch.as_tensor(model.cluster_centers_)
"""
    source = kmeans_body("return Clusterer(n_clusters, seed).fit(x)")
    assert check(clusterer, code(source, "kmeans")) == [
        "kmeans (through `Clusterer`) uses sklearn.cluster.KMeans (line 10 of cell #2): "
        "the lab asks for your own PyTorch implementation"]


def test_a_star_import_is_found() -> None:
    source = kmeans_body("return KMeans(n_clusters).fit_predict(x)")
    findings = check("from sklearn.cluster import *", source)
    assert len(findings) == 1 and "from sklearn.cluster import *" in findings[0]
    assert check("from sklearn import *", kmeans_body("return cluster.KMeans(n_clusters)"))
    assert check("from torch import *", kmeans_body("return cdist(x, x)")) == []


def test_kmeans_bound_by_a_forbidden_import_is_found() -> None:
    findings = check("from scipy.cluster.vq import kmeans")
    assert findings == ["kmeans is imported from scipy.cluster.vq.kmeans (line 1 of cell #2): "
                        "the lab asks for your own PyTorch implementation"]
    assert check("from sklearn.cluster import k_means as kmeans")


def test_kmeans_rebound_or_patched_after_its_definition_is_found() -> None:
    clean = code(CLEAN_KMEANS, "kmeans")
    from_sklearn = "from sklearn.cluster import k_means"
    assert check(SETUP, clean, from_sklearn, "kmeans = lambda x, k, n_iters=100, seed=0: k_means(x, k)")
    assert check(SETUP, clean, from_sklearn, "def _sk(x, k, n_iters=100, seed=0):\n    return k_means(x, k)\n",
                 "kmeans.__code__ = _sk.__code__")
    assert check(SETUP, clean, from_sklearn,
                 "def _patch():\n    global kmeans\n    kmeans = lambda x, k, n_iters=100, seed=0: k_means(x, k)\n")


def test_a_bare_package_passed_around_is_found() -> None:
    findings = check("import sklearn", kmeans_body("pkg = sklearn", "return pkg"))
    assert findings and "the module sklearn itself" in findings[0]


# --------------------------------------------------------------------------------------------------
# dynamic code that could hide an import


@pytest.mark.parametrize("lines, words", [
    (["KMeans = __import__('sklearn.cluster', fromlist=['KMeans']).KMeans"], "uses __import__"),
    (["import importlib", "m = importlib.import_module('sklearn' + '.cluster')"], "importlib"),
    (["m = importlib.import_module('sklearn.cluster')"], "uses importlib.import_module"),
    (["m = import_module('sklearn.cluster')"], "uses importlib.import_module"),
    (["exec('from sklearn.cluster import KMeans')"], "uses exec"),
    (["model = eval('KMeans')(n_clusters)"], "uses eval"),
    (["code = compile('import sklearn', '<x>', 'exec')"], "uses compile"),
    (["name = 'clus' + 'ter'", "m = getattr(sklearn, name)"], "getattr(sklearn, <computed name>)"),
    (["m = getattr(torch, 'sys').modules['sklearn.cluster']"], "the attribute .sys"),
    (["m = sys.modules['sklearn.cluster']"], "uses sys.modules"),
    (["m = globals()['KMeans']"], "uses globals"),
    (["m = vars(sklearn)['cluster']"], "uses vars"),
    (["m = sklearn.__dict__['cluster']"], "the attribute .__dict__"),
    (["m = kmeans.__globals__['KMeans']"], "the attribute .__globals__"),
    (["g = getattr", "m = g(sklearn, 'cluster')"], "getattr as a value"),
    (["m = pickle.loads(b'csklearn.cluster\\nKMeans\\n.')"], "uses pickle.loads"),
    (["sys.path.insert(0, '/tmp')", "import h", "m = h"], "uses sys.path"),  # a module kmeans wrote itself
    (["sys.setprofile(None)", "m = 0"], "uses sys.setprofile"),  # unhooks the worker's run-time watch
    (["m = os.fork()"], "uses os.fork"),  # a child process is not watched
    (["from concurrent.futures import ProcessPoolExecutor", "m = ProcessPoolExecutor"], "ProcessPoolExecutor"),
])
def test_dynamic_code_inside_kmeans_is_found(lines: list[str], words: str) -> None:
    imports = ("import os\nimport sys\nimport pickle\nimport importlib\nfrom importlib import import_module\n"
               "import sklearn\nimport torch")
    findings = check(imports, kmeans_body(*lines, "return m"))
    assert any(words in f and f.startswith("kmeans ") for f in findings), findings


def test_dynamic_code_in_a_helper_is_found() -> None:
    helper = "def _load(name):\n    return __import__(name)\n"
    findings = check(helper, kmeans_body("m = _load('sklearn.cluster')", "return m"))
    assert findings == ["kmeans (through `_load`) uses __import__ (line 2 of cell #2): dynamic code could hide "
                        "an import, so it is not allowed in this function"]


def test_harmless_dynamic_looking_code_is_fine() -> None:
    fine = kmeans_body(
        "fn = torch.compile",  # an attribute named compile, not the builtin
        "dtype = getattr(torch, 'float32')",  # a literal name on an allowed module
        "size = getattr(x, 'shape')",
        "return fn, dtype, size",
    )
    assert check("import torch", fine) == []
    method = ("class Model:\n    def layer(self, i):\n        return getattr(self, f'layer{i}')\n")
    assert check(method, functions=("Model",)) == []


# --------------------------------------------------------------------------------------------------
# cells that do not parse, magics, labels, policies as data


def test_cells_that_do_not_parse_are_skipped() -> None:
    broken = "from sklearn.cluster import KMeans\ndef kmeans(x, k:\n    return KMeans(k)\n"
    assert check(broken) == []
    assert check(SETUP, code(CLEAN_KMEANS, "kmeans"), "def broken(:\n    pass", "x = !ls") == []


def test_ipython_magics_are_ignored() -> None:
    source = "%%time\n%load_ext autoreload\n!pip install scikit-learn\n" + CLEAN_KMEANS
    assert check(SETUP, code(source, "kmeans")) == []
    wrapped = "%%time\nfrom sklearn.cluster import KMeans\n" + kmeans_body("return KMeans(n_clusters)")
    assert check(code(wrapped, "kmeans")) == [
        "kmeans uses sklearn.cluster.KMeans (line 4 of cell `kmeans`): the lab asks for your own PyTorch "
        "implementation"]


def test_only_code_cells_count() -> None:
    markdown = {"cell_type": "markdown", "metadata": {}, "source": kmeans_body("return KMeans(n_clusters)")}
    assert check(markdown, "from sklearn.cluster import KMeans") == []


def test_several_functions_and_every_definition_are_checked() -> None:
    bad_first = kmeans_body("return KMeans(n_clusters)")
    findings = check("from sklearn.cluster import KMeans", bad_first, code(CLEAN_KMEANS, "kmeans"),
                     "def helper_plot(z):\n    return KMeans(3)\n", functions=("kmeans", "helper_plot"))
    assert [f.split(" (")[0] for f in findings] == ["kmeans uses sklearn.cluster.KMeans",
                                                    "helper_plot uses sklearn.cluster.KMeans"]


def test_the_lab_policy_is_data() -> None:
    policy = next(p for p in policies() if p.question == "kmeans")
    assert isinstance(policy, Policy) and "sklearn.cluster" in policy.forbid and "scipy.cluster" in policy.forbid
    assert policy.check(notebook(SETUP, code(CLEAN_KMEANS, "kmeans"))) == []
    assert policy.check(notebook("import faiss", kmeans_body("return faiss.Kmeans(x.shape[1], n_clusters)")))


def test_patching_kmeans_through_an_alias_is_found() -> None:
    wrapper = "from sklearn.cluster import k_means\ndef _sk(x, k, n_iters=100, seed=0):\n    return k_means(x, k)\n"
    findings = check(SETUP, code(CLEAN_KMEANS, "kmeans"), wrapper, "f = kmeans\nf.__code__ = _sk.__code__")
    assert any("kmeans (through `_sk`) uses sklearn.cluster.k_means" in f for f in findings), findings
    assert any(f.startswith("kmeans uses the attribute .__code__ (line 2 of cell #5)") for f in findings), findings
    # without a kmeans there is nothing to report
    assert check(SETUP, wrapper, "def g():\n    pass\ng.__code__ = _sk.__code__") == []
