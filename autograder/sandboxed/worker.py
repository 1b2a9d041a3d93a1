"""The sandboxed worker: loads a student's definitions, then answers probe requests.

Run as ``python -m sandboxed.worker`` inside the sandbox. Requests come on stdin and answers go
on a private copy of stdout; the student's own ``print`` output goes to stderr (a capped log).

1. The first request is ``{"op": "load", "cells": [[label, source], ...]}``: each cell's
   definitions run on their own, so one failing cell costs only the names it defines.
2. Every later request is ``{"op": NAME, "args": {...}}`` for a probe in :mod:`sandboxed.probes` (and, in the
   roles that mount it, :mod:`sandboxed.models`).
   The answer is ``{"ok": True, "value": ...}`` or, when the student's code raised,
   ``{"ok": False, "error": TYPE, "message": TEXT, "where": "cell `kmeans`, line 4: ..."}``.
"""
from __future__ import annotations

import linecache
import os
import sys
import traceback

CELL_PREFIX = "<cell "
SANDBOX_UID = SANDBOX_GID = 65534


def _no_new_privileges() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): from now on no exec (a set-user-ID program such as mount or passwd) can
    raise this process's privileges. bubblewrap sets it already; without bubblewrap (mode "none") this is
    what keeps a worker that dropped to 65534 from getting root back."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # 38 = PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def drop_privileges() -> None:
    """Become uid/gid 65534 with no capability, or exit: student code never runs with privileges.

    Under a root grader bubblewrap starts the worker as root (it needed root to set up the mounts)
    and leaves it only CAP_SETUID and CAP_SETGID; the switch below clears every capability. No exec can
    give privileges back afterwards (no_new_privs, checked too).
    """
    _no_new_privileges()
    if os.getuid() == 0 or os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    held = [name for name in ("CapPrm", "CapEff", "CapAmb") if int(fields[name].strip(), 16)]
    if fields.get("NoNewPrivs", "0").strip() != "1":
        held.append("NoNewPrivs = 0: a set-user-ID program could give root back")
    if os.getuid() == 0 or os.geteuid() == 0 or held:
        print(f"worker: refusing to run student code with privileges ({', '.join(held) or 'uid 0'})", file=sys.stderr)
        os._exit(70)


def _where(error: BaseException) -> str:
    """The innermost frame of the student's own code in ``error``'s traceback, if any."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith(CELL_PREFIX)]
    if not frames:
        return ""
    frame = frames[-1]
    cell = frame.filename[len(CELL_PREFIX) : -1]
    text = f"cell {cell}, line {frame.lineno}"
    return f"{text}: {frame.line.strip()}" if frame.line else text


def _failure(error: BaseException) -> dict:
    try:
        message = str(error).strip().splitlines()
    except BaseException:  # noqa: BLE001 - a student exception whose __str__ raises
        message = ["(the exception's message could not be read)"]
    return {"ok": False, "error": type(error).__name__, "message": message[0][:300] if message else "",
            "where": _where(error)}


def load_cells(cells: list, namespace: dict) -> dict:
    """Run each cell's definitions in ``namespace``; report the names defined and the cells that failed."""
    failed = []
    for label, source in cells:
        filename = f"{CELL_PREFIX}{label}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - sandboxed on purpose
        except BaseException as error:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
            failed.append([str(label), f"{type(error).__name__}: {str(error).strip()[:200]}"])
    defined = sorted(name for name in namespace if not name.startswith("__"))
    return {"defined": defined, "failed": failed}


def _no_import_from_the_working_folder() -> None:
    """``python -m`` puts the working folder first on ``sys.path``; in the sandbox that is the writable ``/tmp``,
    so a function could write ``/tmp/helper.py`` (or a ``/tmp/tqdm.py`` that shadows a real package) and import
    it, out of the source check's sight. Only read-only folders stay on the path."""
    here = os.getcwd()
    if sys.path and sys.path[0] in ("", here) and here not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        del sys.path[0]


def _models_module():
    """:mod:`sandboxed.models` (registering the model and training probes) where this role's runtime has it."""
    import importlib.util

    if importlib.util.find_spec("sandboxed.models") is None:
        return None
    import sandboxed.models

    return sandboxed.models


def main() -> None:
    _no_import_from_the_working_folder()
    if "--sandboxed" in sys.argv[1:]:
        drop_privileges()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the student's prints go to the log, never into the answer stream
    requests = os.fdopen(0, "rb", closefd=False)

    import torch  # matplotlib, where the definitions import it, draws with Agg (MPLBACKEND, sandbox.py)

    torch.set_num_threads(1)
    from sandboxed import probes
    from sandboxed.protocol import ProtocolError, receive, send

    models = _models_module()
    if "--drop-privileges" in sys.argv[1:]:  # no bubblewrap, root grader: never run student code as root
        probes.preload()
        if models is not None:
            models.preload()
        drop_privileges()

    namespace: dict = {"__name__": "__main__"}
    while True:
        try:
            request = receive(requests)
        except ProtocolError:
            return
        op = request.get("op")
        try:
            if op == "load":
                value = load_cells(request["cells"], namespace)
            else:
                value = probes.run(op, namespace, request.get("args", {}))
            answer = {"ok": True, "value": probes.plain(value)}
        except BaseException as error:  # noqa: BLE001
            answer = _failure(error)
            if torch.cuda.is_available():  # a CUDA out-of-memory error costs only this check
                torch.cuda.empty_cache()
        try:
            send(answers, answer)
        except (TypeError, ValueError) as error:  # over the protocol's caps, too deep, unencodable text
            send(answers, {"ok": False, "error": "UnsendableAnswer", "where": "",
                           "message": f"the answer cannot be sent back to the grader ({str(error)[:200]})"})


if __name__ == "__main__":
    sys.exit(main())
