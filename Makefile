# The README's two commands, `make demo` and `make test`, do all set-up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3.10 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow test-all bench specs lock clean

setup: $(STAMP)

# Re-installs only when a dependency file changes, so a second `make setup` takes well under a second.
$(STAMP): pyproject.toml components/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-e ./components -e '.[test]'
	touch $(STAMP)

# `kfp-lineage run` fills the pipeline's code_version parameter with this checkout's git commit.
demo: setup
	$(BIN)/kfp-lineage run specs/training.yaml
	$(BIN)/kfp-lineage trace latest/train/model

# Tests marked slow (kills, concurrency, whole-pipeline reruns) stay out of the everyday run; CI runs them too.
test: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: setup
	$(BIN)/python -m pytest -q

# Lineage queries on a synthetic 10k-run store (built once, cached in bench/.cache/), then the runner against
# kfp.local, then task environments against kfp.local's use_venv; each writes its bench/results*.md.
bench: setup
	$(BIN)/python bench/bench_queries.py
	$(BIN)/python bench/bench_runner.py
	$(BIN)/python bench/bench_envs.py

specs: setup
	$(BIN)/kfp-lineage compile

lock:
	rm -rf /tmp/kfp-lineage-lock && $(PYTHON) -m venv /tmp/kfp-lineage-lock
	/tmp/kfp-lineage-lock/bin/pip install --quiet ./components .
	{ head -2 constraints.txt; /tmp/kfp-lineage-lock/bin/pip freeze | grep -v '^kfp-lineage'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .kfp-lineage .pytest_cache
