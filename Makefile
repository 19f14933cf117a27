# dmemu: the two quick-start commands. Both create .venv when missing and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# libfaketime binds a server started with --server-cmd to dmemu's clock; its tests need it.
LIBFAKETIME := $(firstword $(wildcard /usr/lib/*-linux-gnu/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1))

.PHONY: demo test lint typecheck bench clean system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dmemu run scenarios/quickstart.yaml --out reports/quickstart

system-packages:
ifeq ($(LIBFAKETIME),)
	@if [ "$$(id -u)" = 0 ]; then \
		echo "installing libfaketime (Debian package faketime) for the --server-cmd tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime; \
	else \
		echo "the --server-cmd tests need libfaketime: sudo apt-get install faketime" >&2; \
		exit 1; \
	fi
endif

test: $(STAMP) system-packages
	$(BIN)/ruff check emulator tests bench docs/examples
	$(BIN)/ruff format --check emulator tests bench docs/examples
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/wns_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
