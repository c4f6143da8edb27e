# podrec: the two set-up commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE := src/podrec/data/sample
DEMO_DB ?= sqlite:///demo/podrec.db

.PHONY: install browser demo test lint bench evaluate-similar clean

$(BIN)/podrec: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

install: $(BIN)/podrec

demo: install
	$(BIN)/podrec ingest catalog $(SAMPLE)/catalog.jsonl --db $(DEMO_DB)
	$(BIN)/podrec ingest events $(SAMPLE)/events.jsonl --db $(DEMO_DB)
	$(BIN)/podrec enrich --db $(DEMO_DB)
	$(BIN)/podrec recommend --user demo-listener -k 8 --explain --db $(DEMO_DB)
	$(BIN)/podrec recommend --query "true crime but funny" -k 5 --db $(DEMO_DB)
	$(BIN)/podrec recommend --query "学习投资理财的播客" -k 5 --db $(DEMO_DB)
	$(BIN)/podrec similar 1028908750 -k 5 --db $(DEMO_DB)

# The web page's test drives Debian's chromium (Playwright's own browser download does not
# work offline); installed here when missing, so `make test` works on a bare machine.
browser:
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	  || { $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }; }

test: install browser
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

evaluate-similar: install
	$(BIN)/podrec evaluate-similar --data ../shared/data --out out/evaluate-similar

bench: install
	$(BIN)/python benchmarks/bench_embedding.py
	$(BIN)/python benchmarks/bench_latency.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_feedback.py
	$(BIN)/python benchmarks/bench_lists.py
	$(BIN)/python benchmarks/bench_index.py
	$(BIN)/python benchmarks/bench_server.py

clean:
	rm -rf $(VENV) demo out .cache .pytest_cache
