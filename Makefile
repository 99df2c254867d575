PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q aggregator  # bytecode even where PYTHONDONTWRITEBYTECODE is set: every command starts faster
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile  # two workers, one per core; a test file stays on one worker

demo: $(STAMP)
	$(BIN)/aggregator demo --out out/demo

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m compileall -q aggregator
	$(BIN)/python benchmarks/run_all.py
	$(BIN)/python benchmarks/utility.py
	$(BIN)/python benchmarks/dp_audit_long.py
	$(BIN)/python benchmarks/joint.py
	$(BIN)/python benchmarks/joint_engine.py
	$(BIN)/python benchmarks/mse.py

clean:
	rm -rf $(VENV) out .pytest_cache
