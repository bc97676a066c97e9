# Quick start: `make demo` (train + evaluate on built-in synthetic data) and
# `make test` (the whole suite). Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
WORKDIR ?= workdirs/demo

.PHONY: install demo test

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m launch.train --config=occnet_jax/configs/default.py --workdir=$(WORKDIR)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=25
