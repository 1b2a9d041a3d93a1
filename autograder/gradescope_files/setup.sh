#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image; the zip is unpacked in
# /autograder/source. Written for the Ubuntu 22.04 base image (python3 is 3.10 there; the grader needs
# >= 3.10). It installs Python and bubblewrap, the grader and its dependencies, then prepares the
# training split that the workers read. Built by `python -m autograder gradescope` (autograder/gradescope.py).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive

apt-get update
# python3-venv: the grader's own venv; bubblewrap: the sandbox for student code (Gradescope's container may
# still refuse it when grading: run_autograder then falls back and says so); libseccomp2: the syscall filter.
apt-get install -y --no-install-recommends python3 python3-venv python3-pip bubblewrap libseccomp2

python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install --upgrade pip
# PyTorch's CPU wheels: Gradescope has no GPU, and they are far smaller than the default CUDA ones.
"$ROOT/venv/bin/pip" install torch torchvision --index-url https://download.pytorch.org/whl/cpu
# The grader and its other dependencies. Editable, so that `autograder` stays in /autograder/source, next to
# the reference solution (solutions/), the worker's labtools.py (assignment/) and the MNIST files (data/).
"$ROOT/venv/bin/pip" install -e "$ROOT/source"

# The training split as uint8 safetensors (what the sandboxed workers read), made once here from data/.
cd "$ROOT/source"
PYTHONPATH="$ROOT/source" "$ROOT/venv/bin/python" -m autograder.gradescope prepare "$ROOT"
