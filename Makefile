# Course package and autograder for the autoencoder / VAE lab.  `make` (or `make help`) lists the targets.
#
#   make grade                        # grade submitted/ (on a fresh clone: the example class) into grades/
#   make test                         # creates .venv on first use, then runs pytest
#   QUICK=1 make solutions            # short run of the solution notebook
#   DATA_DIR=../shared/datasets make test

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= data
# Extra pip arguments, e.g. PIP_FLAGS="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_FLAGS ?=
PYTEST_ARGS ?=
# nbgrader: the repo root is the course directory; the exchange is where students fetch and submit.
COURSE_DIR ?= .
EXCHANGE ?= /srv/nbgrader/exchange
COURSE_ID ?= ae-vae-lab
GRADES ?= grades
JOBS ?=
SANDBOX ?= bwrap
# make grade BACKEND=ray [ADDRESS=auto]: one Ray task per submission (a local Ray, or the cluster at ADDRESS)
BACKEND ?= local
ADDRESS ?=
# make calibrate DEVICE=cuda; make export FORMAT=moodle ROSTER=roster.csv
DEVICE ?=
FORMAT ?= canvas
ROSTER ?=
SUBMITTED = $(if $(wildcard $(COURSE_DIR)/submitted),$(COURSE_DIR)/submitted,examples/submitted)
COURSE = $(VPY) tools/course.py --course-dir $(COURSE_DIR) --exchange $(EXCHANGE) --course-id $(COURSE_ID)

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
.PHONY: help install sandbox browser lint test grade list mutants calibrate gradebook export gradescope similarity notebook assignment release collect feedback check \
	solutions bench gpu-check examples clean

help: ## list the targets
	@echo "usage: make TARGET [QUICK=1] [DATA_DIR=path] [VENV=path] [PYTHON=python3]"
	@grep -E '^[a-z][a-z_-]*:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-11s %s\n", $$1, $$2}'

install: $(STAMP) ## create the venv (VENV=.venv) and pip install -e '.[ray,dev]' (again when pyproject.toml changes)

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install $(PIP_FLAGS) -e '.[ray,dev]'
	touch $@

sandbox: ## install bubblewrap (the grader's sandbox) with apt-get when it is missing and we are root
	@[ "$(SANDBOX)" = none ] || command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }; }; } || \
		{ echo "bubblewrap is missing: install it (apt-get install bubblewrap), or grade with SANDBOX=none (unsafe)"; exit 1; }

browser: ## install chromium (and a Japanese font) for tests/test_browser.py with apt-get when missing and root; never fails
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null 2>&1 || \
		  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null 2>&1; }; }; } || \
		echo "chromium is missing: tests/test_browser.py will be skipped (apt-get install chromium)"

test: install sandbox browser lint ## lint, then run the test suite (pytest; PYTEST_ARGS=... for more options)
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: install ## ruff (pyproject.toml's [tool.ruff]: unused and undefined names, syntax errors, likely bugs)
	$(VPY) -m ruff check .

grade: install sandbox ## grade submitted/ into grades/ (no submitted/: the example class in examples/submitted/)
	@[ -d "$(COURSE_DIR)/submitted" ] || echo "No $(COURSE_DIR)/submitted/ folder: grading the example class in examples/submitted/."
	$(VPY) -m autograder grade $(SUBMITTED) --out $(GRADES) --sandbox $(SANDBOX) $(if $(JOBS),--jobs $(JOBS)) \
		--backend $(BACKEND) $(if $(ADDRESS),--address $(ADDRESS))
	@if [ -f "$(COURSE_DIR)/gradebook.db" ] && [ -d "$(COURSE_DIR)/submitted" ]; then $(COURSE) gradebook --grades $(GRADES); fi

list: install ## print the rubric: every question, its checks and their points (read from the graders)
	$(VPY) -m autograder list

mutants: install sandbox ## grade mutants of the reference; writes reports/mutants.md (kill rate per question)
	$(VPY) -m autograder mutants $(if $(JOBS),--jobs $(JOBS))

calibrate: install sandbox ## retrain the reference (20 seeds a budget): autograder/calibration.json (DEVICE=cuda: its own file)
	$(VPY) -m autograder calibrate $(if $(DEVICE),--device $(DEVICE))

gradebook: install ## put $(GRADES)/<student>/results.json into $(COURSE_DIR)/gradebook.db (formgrader, nbgrader export)
	$(COURSE) gradebook --grades $(GRADES)

export: install ## grades.csv -> an LMS import file: make export FORMAT=canvas|moodle ROSTER=roster.csv [EXPORT_ARGS=...]
	@[ -n "$(ROSTER)" ] || { echo "usage: make export FORMAT=canvas|moodle ROSTER=roster.csv"; exit 2; }
	$(VPY) -m autograder export $(GRADES) --format $(FORMAT) --roster $(ROSTER) $(EXPORT_ARGS)

gradescope: install ## build/gradescope.zip: the Gradescope autograder (upload it in Configure Autograder)
	$(VPY) -m autograder gradescope --out build/gradescope.zip

similarity: install ## code similarity of submitted/ (or the example class) -> grades/similarity.html (evidence, not proof)
	$(VPY) -m autograder similarity $(SUBMITTED) --out $(GRADES)/similarity.html $(SIMILARITY_ARGS)

collect: install ## nbgrader collect from the exchange (+ zip_collect of downloaded/autoencoders/) into submitted/
	$(COURSE) collect

feedback: install ## put grades/<student>/feedback.html where nbgrader release_feedback expects it, and release it
	$(COURSE) feedback --grades $(GRADES)

examples: install ## regenerate the example class in examples/submitted/ from the solution and the release
	$(VPY) tools/make_examples.py

notebook: install ## build solutions/autoencoders.ipynb from solutions/autoencoders.py
	$(VPY) tools/build_notebook.py

assignment: notebook ## regenerate the student release assignment/ with nbgrader generate_assignment
	$(VPY) tools/release.py

release: assignment ## regenerate assignment/ and release it to the nbgrader exchange (EXCHANGE=, COURSE_ID=)
	$(COURSE) release

check: install ## fail if the committed notebook, assignment/ or examples/ is stale
	$(VPY) tools/build_notebook.py --check
	$(VPY) tools/release.py --check
	$(VPY) tools/make_examples.py --check

solutions: notebook ## execute the solution notebook into build/solutions/ (QUICK=1: short mode)
	$(VPY) tools/execute_notebook.py solutions/autoencoders.ipynb build/solutions/autoencoders.ipynb

bench: install sandbox ## run the benchmarks: data loading, one submission vs re-executing it, class throughput
	$(VPY) benchmarks/data_loading.py
	$(VPY) benchmarks/grading_speed.py
	$(VPY) benchmarks/class_throughput.py --n 16 $(if $(JOBS),--jobs $(JOBS))

gpu-check: install sandbox ## on a CUDA machine (< 5 min): CUDA tests, calibrate on CUDA, the class on the GPU, throughput
	$(VPY) benchmarks/gpu_check.py

clean: ## remove build/ and caches (keeps the venv and data/)
	rm -rf build .pytest_cache *.egg-info
	find . \( -path ./.git -o -path ./data -o -path '$(patsubst $(CURDIR)/%,./%,$(VENV))' \) -prune -o \
		\( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -print0 | xargs -0 -r rm -rf
