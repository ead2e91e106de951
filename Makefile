# Two commands do everything on a fresh machine:
#   make run    create .venv, build llama.cpp (patched), install the app, open it
#   make test   the same plus the dev extras (CPU torch), then ruff and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TORCH ?= torch==2.13.0

.PHONY: run test lint llama-cpp clean installer-test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# llama-cpp-python 0.3.36 from source with our fixes to its vendored llama.cpp (see native/llama-cpp).
$(VENV)/.llama-cpp: native/llama-cpp/build-wheel.sh $(wildcard native/llama-cpp/*.patch) | $(PY)
	wheel=$$(PYTHON=$(PYTHON) native/llama-cpp/build-wheel.sh | tail -n 1) && \
	  $(PY) -m pip install --quiet --force-reinstall "$$wheel"
	touch $@

$(VENV)/.app: pyproject.toml $(VENV)/.llama-cpp
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.llama-cpp
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

llama-cpp: $(VENV)/.llama-cpp

run: $(VENV)/.app
	$(BIN)/huatuo gui

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# A native crash ends pytest at once: its thread dump goes to a file, shown with the crashed thread last.
test: $(VENV)/.dev
	$(BIN)/ruff check .
	mkdir -p build && rm -f build/test-crash.log
	QT_QPA_PLATFORM=offscreen HUATUO_TEST_CRASH_LOG=build/test-crash.log $(BIN)/pytest $(PYTEST_ARGS) || { rc=$$?; \
		if [ -s build/test-crash.log ]; then cat build/test-crash.log; echo "--- the thread that crashed:"; \
			grep -A40 "^Current thread" build/test-crash.log; fi; exit $$rc; }

# Packaging checks: freeze, build and sign the Linux packages and the Windows installer
# (apt-get install binutils desktop-file-utils dpkg-dev gnupg nsis osslsigncode shellcheck).
installer-test: $(VENV)/.dev
	$(PY) -m pip install --quiet pyinstaller
	HUATUO_INSTALLER_TEST=1 QT_QPA_PLATFORM=offscreen $(BIN)/pytest -m installer tests/installer

clean:
	rm -rf $(VENV) build *.egg-info
