# `make demo` and `make test` work on a fresh clone: they create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-data
# The demo runs on the proof domain: toy CLIPs trained here (committed checkpoints, loaded
# offline as ARCH:toy), a generated corpus and four generated test sets.
DEMO_ENV := XMORE_HOME=$(DEMO)/home XMORE_COARSE_MODEL=xmore-toy-s:toy XMORE_FINE_MODEL=xmore-toy-m:toy \
	XMORE_CLASSIFIER_MODEL=xmore-toy-s:toy
DEMO_TESTS := $(foreach t,shape colour texture shape-sketch,--dataset $(DEMO)/tests/$(t))

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
	$(DEMO_ENV) $(BIN)/xmore ingest $(DEMO)/corpus --corpus toy-web
	$(DEMO_ENV) $(BIN)/xmore retrieve $(DEMO)/queries/star/00003.png --coarse -K 8 -k 4
	$(DEMO_ENV) $(BIN)/xmore classify $(DEMO)/queries/*/*.png --labels $(DEMO)/labels.txt --stream demo
	$(DEMO_ENV) $(BIN)/xmore streams show demo
	$(DEMO_ENV) $(BIN)/xmore status
	$(DEMO_ENV) $(BIN)/xmore eval $(DEMO_TESTS) --seeds 0,1,2 --out $(DEMO)/eval

clean:
	rm -rf $(DEMO) xmore-data .pytest_cache
