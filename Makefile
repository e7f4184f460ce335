# `make demo` and `make test` work on a fresh clone: they create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-data
# The demo runs the whole pipeline on the tiny built-in architecture (random weights):
# it shows the pipeline, not accuracy.
DEMO_ENV := XMORE_HOME=$(DEMO)/home XMORE_COARSE_MODEL=xmore-tiny XMORE_FINE_MODEL=xmore-tiny-wide \
	XMORE_CLASSIFIER_MODEL=xmore-tiny XMORE_COARSE_K=32 XMORE_FINE_K=8

.PHONY: install test lint demo clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

demo: install
	rm -rf $(DEMO)
	$(BIN)/python scripts/make_demo_data.py $(DEMO)
	$(DEMO_ENV) $(BIN)/xmore init
	$(DEMO_ENV) $(BIN)/xmore ingest $(DEMO)/corpus --corpus demo-shapes
	$(DEMO_ENV) $(BIN)/xmore retrieve $(DEMO)/queries/query-000-*.png --coarse -K 8 -k 4
	$(DEMO_ENV) $(BIN)/xmore classify $(DEMO)/queries/*.png --labels $(DEMO)/labels.txt --stream demo
	$(DEMO_ENV) $(BIN)/xmore streams show demo
	$(DEMO_ENV) $(BIN)/xmore status

clean:
	rm -rf $(DEMO) xmore-data .pytest_cache
