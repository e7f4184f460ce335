# `make demo` and `make test` work on a fresh clone: they create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-data
# The demo runs on the proof domain: toy CLIPs trained here (committed checkpoints, loaded
# offline as ARCH:toy), a generated corpus and four generated test sets. One store, built with
# the strong retrieval model as coarse and fine; two classifiers, weak and medium, evaluated over it.
DEMO_STORE := XMORE_HOME=$(DEMO)/home XMORE_COARSE_MODEL=xmore-toy-strong:toy XMORE_FINE_MODEL=xmore-toy-strong:toy
DEMO_ENV := $(DEMO_STORE) XMORE_CLASSIFIER_MODEL=xmore-toy-weak:toy
DEMO_MEDIUM := $(DEMO_STORE) XMORE_CLASSIFIER_MODEL=xmore-toy-medium:toy
# Every method whose inputs are given: X-MoRe and its ablations, CODER with the generated text banks, RECO.
DEMO_EVAL := $(foreach t,shape colour texture shape-sketch,--dataset $(DEMO)/tests/$(t) \
	--textbank $(t)=$(DEMO)/textbanks/$(t).json) --seeds 0,1,2 \
	--corpus-attributes toy-web=$(DEMO)/corpus/attributes.csv --diagnose

.PHONY: install test test-slow screenshots lint demo clean

$(BIN)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

# The suite without the multi-process and kill -9 tests (marked slow); CI runs both targets.
test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -q -m slow

# The README's screenshots, remade by the browser tests (Debian's chromium and chromium-driver).
screenshots: install
	XMORE_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_web.py

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
	@echo "== Setup 1: weak classifier (xmore-toy-weak), strong retrieval (xmore-toy-strong) =="
	$(DEMO_ENV) $(BIN)/xmore reco train --corpus toy-web --out $(DEMO)/reco/weak.safetensors
	$(DEMO_ENV) $(BIN)/xmore eval $(DEMO_EVAL) --fusion $(DEMO)/reco/weak.safetensors --out $(DEMO)/eval-weak
	@echo "== Setup 2: medium classifier (xmore-toy-medium), the same store =="
	$(DEMO_MEDIUM) $(BIN)/xmore cache-captions --rebuild
	$(DEMO_MEDIUM) $(BIN)/xmore reco train --corpus toy-web --out $(DEMO)/reco/medium.safetensors
	$(DEMO_MEDIUM) $(BIN)/xmore eval $(DEMO_EVAL) --fusion $(DEMO)/reco/medium.safetensors --out $(DEMO)/eval-medium

clean:
	rm -rf $(DEMO) xmore-data .pytest_cache
