"""The course secret: where the trusted side's random draws come from, so that no worker can predict them.

The VAE's ε, the latents' grid offset and jitter, and the smoothness shifts (:mod:`autograder.latents`) are drawn
from generators keyed by this secret and by what they are for. It is 32 random bytes, made on first use and
kept in a file that only the grader's user can read and that no sandbox mounts (default: ``.grading-secret`` in
the repository root; ``AUTOGRADER_SECRET_FILE`` names another), so regrades draw the same values, and a course
that keeps its file keeps its grades reproducible. ``AUTOGRADER_SECRET`` (hex) passes the same secret to a
process that cannot read the file (a Ray node); a worker's environment never holds it
(:func:`autograder.sandbox.worker_environment` builds that environment from nothing).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line reads the secret's file name without importing torch
    import torch

SECRET_FILE = Path(__file__).resolve().parent.parent / ".grading-secret"
FILE_VARIABLE = "AUTOGRADER_SECRET_FILE"
VALUE_VARIABLE = "AUTOGRADER_SECRET"
SECRET_BYTES = 32


def secret_file() -> Path:
    """Where the course secret is kept: ``$AUTOGRADER_SECRET_FILE`` or ``.grading-secret`` in the repository."""
    return Path(os.environ.get(FILE_VARIABLE) or SECRET_FILE)


@lru_cache(maxsize=4)
def _read(path: str, value: str | None) -> bytes:
    if value:
        return bytes.fromhex(value)
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(f".{file.name}.{os.getpid()}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(SECRET_BYTES))
        try:
            os.link(partial, file)  # the first grader to get here wins; the others read its secret
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    data = file.read_bytes()
    if len(data) < 16:
        raise ValueError(f"{file}: a course secret needs at least 16 bytes (delete the file to make a new one)")
    return data


def course_secret() -> bytes:
    """The course secret (made on first use)."""
    return _read(str(secret_file()), os.environ.get(VALUE_VARIABLE))


def generator(*purpose: object) -> torch.Generator:
    """A torch generator seeded by HMAC-SHA256(secret, purpose): the same draws for the same purpose, none
    that a worker could compute."""
    import torch

    digest = hmac.new(course_secret(), "|".join(map(str, purpose)).encode(), hashlib.sha256).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


_submission = ""  # the graded notebook's SHA-256 (set by the runner, which grades one notebook per process)


def for_submission(notebook: bytes) -> None:
    """Key :func:`submission_generator` to this notebook: every notebook gets its own probe inputs."""
    global _submission
    _submission = hashlib.sha256(notebook).hexdigest()


def submission_generator(*purpose: object) -> torch.Generator:
    """A generator for the graded notebook's probe inputs: the same notebook draws the same inputs (regrades
    agree), another notebook or another course draws others, so no table of answers can be prepared for them."""
    return generator("submission", _submission, *purpose)
