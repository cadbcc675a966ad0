# One entry point. `make book` = smoke study + book; `make test` = the test suite (what CI runs).
# Both create/refresh the project's own virtual environment in .venv (torch==2.13.0 first: on these
# machines that is a local CPU wheel; an unpinned torch would pull gigabytes of CUDA packages).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= smoke
CORES ?= 2
# the book shows the committed `cpu` run after a smoke run (the smoke run proves the chain on this machine);
# after `make book PROFILE=P` for any other P it shows that run, the reader's own
BOOK_PROFILE ?= $(if $(filter smoke,$(PROFILE)),cpu,$(PROFILE))

.PHONY: env book run test bench clean help
help:
	@echo "make book   - run the $(PROFILE) study (Snakemake + papermill) and build the Jupyter Book of the $(BOOK_PROFILE) run"
	@echo "make test   - run the test suite (what .ci/run calls)"
	@echo "make bench  - run the benchmarks (benchmarks/)"
	@echo "make clean  - remove build outputs (keeps .venv)"

env: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m transferlimits run --profile $(PROFILE) --cores $(CORES)

book: run
	$(PY) -m transferlimits book --profile $(BOOK_PROFILE)

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_phantom.py
	$(PY) benchmarks/estimate_reference.py
	$(PY) benchmarks/bench_mmd.py
	$(PY) benchmarks/bench_encoders.py
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf _build build results .snakemake
