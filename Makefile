# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each step is skipped when its inputs have not changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamps
# Python files are served from the source tree by the editable install; only native sources need a rebuild.
SOURCES := $(shell find src -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.c' \) 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: all setup demo test bench clean
all: setup

$(STAMP)/system: scripts/ensure_system_packages.sh
	@scripts/ensure_system_packages.sh
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/python-deps: $(STAMP)/system pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja psutil pytest pytest-benchmark numpy matplotlib
	@touch $@

$(STAMP)/build: $(STAMP)/python-deps $(SOURCES)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	@touch $@

setup: $(STAMP)/build

demo: setup
	$(PY) examples/demo.py
	$(VENV)/bin/faas-sdk bench --executions 5

test: setup
	$(PY) -m pytest -q tests

bench: setup
	@mkdir -p benchmarks/results
	$(PY) -m pytest -q benchmarks --benchmark-only --benchmark-columns=min,median,mean,max,rounds \
		--benchmark-json=benchmarks/results/latest.json

clean:
	rm -rf build $(VENV) .pytest_cache
