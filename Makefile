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

# Debian packages the tests need, installed when missing (CI runs as root on a fresh machine):
# libfaketime binds a server started with --server-cmd to dmemu's clock; Chromium opens the
# HTML reports (tests/test_report.py).
system-packages:
	@missing=""; \
	[ -n "$(LIBFAKETIME)" ] || missing="$$missing faketime"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "the tests need Debian packages:$$missing (sudo apt-get install$$missing)" >&2; \
			exit 1; \
		fi; \
	fi

test: $(STAMP) system-packages
	$(BIN)/ruff check emulator tests bench docs/examples
	$(BIN)/ruff format --check emulator tests bench docs/examples
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/wns_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
