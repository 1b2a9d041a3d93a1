"""A run-time watch: did the student's function run code from a forbidden package?

The source policy (:mod:`autograder.policy`, on the trusted side) reads the notebook; it cannot see a
package reached in a way it does not parse. This watch sees what actually runs: while the function
runs, a profile hook (``sys.setprofile``, and ``threading.setprofile`` for the threads it starts)
looks at every Python function that is entered and records the first one whose file lies in a
forbidden package's folder (``sklearn.cluster`` → ``…/sklearn/cluster/``). A library's compiled core
is always entered through its Python wrapper (``KMeans.fit`` in ``sklearn/cluster/_kmeans.py``).

The worker shares its process with the student's code, so code that unhooks the watch could hide from
it; the source policy refuses the calls that would (``sys.setprofile``, ``sys.settrace``, ``os.fork``…),
and a watch found unhooked afterwards is reported as such.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from typing import Iterator


def package_files(modules: list[str]) -> list[tuple[str, str]]:
    """``(dotted name, path prefix)`` for each installed module in ``modules``, found without importing it:
    a package's folder (ending in a separator) or a module's ``.py`` file."""
    found = []
    for dotted in modules:
        top, *rest = dotted.split(".")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        roots = list(spec.submodule_search_locations or [])
        if not roots:
            if spec.origin and not rest:
                found.append((dotted, spec.origin))
            continue
        for root in roots:
            found.append((dotted, os.path.join(root, *rest, "")))
            if rest:
                found.append((dotted, os.path.join(root, *rest[:-1], rest[-1] + ".py")))
    return found


@contextlib.contextmanager
def watching(modules: list[str]) -> Iterator[list[str]]:
    """Yield a list that, after the block, names the first forbidden code entered, as
    ``"sklearn.cluster (_kmeans.py: fit)"``, or says that the watch was unhooked; empty when neither."""
    seen: list[str] = []
    files = package_files(modules)
    if not files:
        yield seen
        return
    prefixes = tuple(prefix for _, prefix in files)

    def hook(frame, event, arg):  # noqa: ANN001 - the profile hook's signature
        if event == "call" and not seen and frame.f_code.co_filename.startswith(prefixes):
            filename = frame.f_code.co_filename
            dotted = next(name for name, prefix in files if filename.startswith(prefix))
            seen.append(f"{dotted} ({os.path.basename(filename)}: {frame.f_code.co_name})")

    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield seen
    finally:
        unhooked = sys.getprofile() is not hook
        sys.setprofile(None)
        threading.setprofile(None)
        if unhooked and not seen:
            seen.append("unhooked")
