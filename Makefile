# The two commands of the README. Each sets up its own virtual environment first.
# CPU machines: torch==2.13.0 is installed before anything else so pip never pulls a CUDA build.
# GPU machines: run `make TORCH_SPEC="torch" demo` (or pre-install your CUDA torch into .venv).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test test-slow lint install
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/mriharmony demo $(ARGS)

# lint first (seconds): ruff's checks and its formatting, as configured in pyproject.toml
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# both cores: two pytest-xdist workers, one test module each at a time (module fixtures built once), torch on one
# thread per worker, the expensive phantoms and the tiny demo built once for both (tests/conftest.py)
XDIST ?= -n 2 --dist loadfile

test: lint
	$(BIN)/python -m pytest -m "not slow" $(XDIST) $(ARGS)

# the learning measurements (real training until a metric must move; several minutes each); CI runs them too
test-slow: install
	$(BIN)/python -m pytest -m slow $(XDIST) $(ARGS)
