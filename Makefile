# Course package for the autoencoder / VAE lab.  `make` (or `make help`) lists the targets.
#
#   make test                         # creates .venv on first use, then runs pytest
#   QUICK=1 make solutions            # short run of the solution notebook
#   DATA_DIR=../shared/datasets make test

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= data
# Extra pip arguments, e.g. PIP_FLAGS="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_FLAGS ?=
PYTEST_ARGS ?=

override VENV := $(abspath $(VENV))
override DATA_DIR := $(abspath $(DATA_DIR))
export DATA_DIR
export PATH := $(VENV)/bin:$(PATH)
# QUICK=1 selects the notebook's short mode; pass it through only when it is set.
ifdef QUICK
export QUICK
endif

STAMP := $(VENV)/.installed
VPY := $(VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help install test notebook release check solutions bench clean

help: ## list the targets
	@echo "usage: make TARGET [QUICK=1] [DATA_DIR=path] [VENV=path] [PYTHON=python3]"
	@grep -E '^[a-z][a-z_-]*:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create the venv (VENV=.venv) and pip install -e . (again when pyproject.toml changes)

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install $(PIP_FLAGS) -e .
	touch $@

test: install ## run the test suite (pytest; PYTEST_ARGS=... for more options)
	$(VPY) -m pytest $(PYTEST_ARGS)

notebook: install ## build solutions/autoencoders.ipynb from solutions/autoencoders.py
	$(VPY) tools/build_notebook.py

release: notebook ## regenerate the student release assignment/ with nbgrader
	$(VPY) tools/release.py

check: install ## fail if the committed notebook or assignment/ is stale
	$(VPY) tools/build_notebook.py --check
	$(VPY) tools/release.py --check

solutions: notebook ## execute the solution notebook into build/solutions/ (QUICK=1: short mode)
	$(VPY) tools/execute_notebook.py solutions/autoencoders.ipynb build/solutions/autoencoders.ipynb

bench: install ## run the data-loading benchmark
	$(VPY) benchmarks/data_loading.py

# (later: grade, collect, feedback, calibrate)

clean: ## remove build/ and caches (keeps the venv and data/)
	rm -rf build .pytest_cache *.egg-info
	find . \( -path ./.git -o -path ./data -o -path '$(patsubst $(CURDIR)/%,./%,$(VENV))' \) -prune -o \
		\( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print0 | xargs -0 -r rm -rf
