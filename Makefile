# The two commands of the README: `make demo` and `make test`. Both create .venv once and reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
# Rules call the `aam` command: put the environment's bin/ first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test lint bench benchmark clean-results

setup: $(STAMP)

# TORCH_INDEX: a PyTorch wheel index to take torch from before the package, e.g. the CPU build on a
# machine without a GPU (make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu). Unset, pip
# takes PyPI's torch, the CUDA build on Linux, which GPU machines need.
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/report.html

# -n auto: one pytest worker per core (pytest-xdist); the end-to-end tests wait on Snakemake and
# subprocesses much of the time: on 2 cores the suite took 893 s against 1,131 s run serially
# (765 s since the minute-long tests start first: tests/conftest.py; 684 s and 865 s in two fresh-clone
# CI runs on 2-core machines, 2026-12-04, .ci/run with setup 829 s and 1,043 s; 667 s, 863 s with
# setup, once the schema was parsed once per process and the Snakefile stopped reading every
# installed package's metadata: scripts/bench_startup.py; 345 s, 428 s with setup, on a faster
# 2-core machine with the seed ensemble of two as the default: docs/benchmarks.md).
# --dist worksteal: a worker whose queue runs dry takes tests from the other's, so that the few
# minute-long end-to-end tests do not leave one core idle at the end.
# --durations=25: the slowest tests, printed at the end, so that a CI log says where the time goes.
test: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/python -m pytest -n auto --dist worksteal --durations=25

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/snakemake --lint --configfile config/config.yaml

# Every benchmark runs (one whose inputs are absent says so in one line and exits 0); the ones that
# failed are listed at the end, and then make fails.
bench: $(STAMP)
	@failed=""; for b in scripts/bench_*.py; do \
		echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

# The multi-study benchmark (config/benchmark.yaml; needs ../shared/data): AAM and the baselines on
# 9 tasks, 5 folds x 2 repeats, timed with the load average. FRESH=1 reruns every job (deletes
# results_benchmark/ first). Leaderboard: results_benchmark/benchmark/leaderboard.tsv; docs/benchmark.md.
# SEED=N draws other folds and training seeds into results_benchmark_sN (scripts/pool_fold_draws.py
# pools several draws).
benchmark: $(STAMP)
	$(BIN)/python scripts/benchmark_run.py --cores $(CORES) $(if $(FRESH),--fresh) $(if $(SEED),--seed $(SEED))
