# The README's two commands, `make demo` and `make test`, do all set-up on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
STACK_FILE := $(VENV)/.stack

# The dependency stack and its Python (constraints/stack.py): the current stack (constraints/current.txt) where
# ml-metadata 1.21 installs, else the legacy one (constraints/legacy.txt). Remembered in .venv/.stack, so an
# up-to-date `make setup` probes nothing; PYTHON=... or STACK=current|legacy chooses again.
ifeq ($(origin PYTHON)$(origin STACK),undefinedundefined)
PICKED := $(shell cat $(STACK_FILE) 2>/dev/null || python3 constraints/stack.py)
else
PICKED := $(shell python3 constraints/stack.py $(if $(PYTHON),--python '$(PYTHON)') $(if $(STACK),--stack '$(STACK)'))
endif
STACK_NAME := $(word 1,$(PICKED))
STACK_PYTHON := $(word 2,$(PICKED))
STAMP := $(VENV)/.installed-$(STACK_NAME)

.PHONY: setup demo test test-slow test-all bench specs dist image lock clean

setup: $(STAMP)
	@echo "setup: $(STACK_NAME) stack (constraints/$(STACK_NAME).txt): $(wordlist 3,100,$(PICKED))"

# Re-installs only when a dependency file changes, so a second `make setup` takes well under a second.
ifeq ($(STACK_NAME),)
$(STAMP):
	@echo "error: no dependency stack fits (constraints/stack.py says why above)" >&2; exit 2
else
$(STAMP): pyproject.toml components/pyproject.toml plugin/pyproject.toml constraints/$(STACK_NAME).txt
	@have="$$(cut -d' ' -f1,2 $(STACK_FILE) 2>/dev/null)"; \
	if [ -n "$$have" ] && [ "$$have" != "$(STACK_NAME) $(STACK_PYTHON)" ]; then \
		echo "setup: .venv was made for '$$have'; re-creating it for '$(STACK_NAME) $(STACK_PYTHON)'"; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(STACK_PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints/$(STACK_NAME).txt \
		-e ./components -e ./plugin -e '.[test,components]'
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	echo "$(PICKED)" > $(STACK_FILE)
	touch $(STAMP)
endif

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

# specs/ holds what kfp 2.17 users compile: the current stack's kfp. On the legacy stack the compiler runs in
# .venv/specs-kfp, a small environment with that kfp (and no ml-metadata, which compiling does not need).
# The checked-in specs/ embed the components' shared code. `make specs IMAGE=... SPECS_DIR=build/specs` compiles
# containerized components for that image; `make specs INDEX_URL='URL [URL...]' SPECS_DIR=...` lightweight ones
# installing the components' wheel from those indexes (README: "Running the components on Vertex AI / Kubeflow").
SPECS_KFP := $(VENV)/specs-kfp
SPECS_DIR ?= specs
SPECS_OPTIONS = --output-dir '$(SPECS_DIR)' $(if $(IMAGE),--components-image '$(IMAGE)') \
	$(foreach url,$(INDEX_URL),--index-url '$(url)')
specs: setup
	@if [ "$(STACK_NAME)" = current ]; then set -x; $(BIN)/python -m kfp_lineage.remote.compiling $(SPECS_OPTIONS); \
	else set -x; $(MAKE) --no-print-directory $(SPECS_KFP)/.installed && \
		PYTHONPATH=.:components $(SPECS_KFP)/bin/python -m kfp_lineage.remote.compiling $(SPECS_OPTIONS); fi

# The components' wheel (and sdist) in dist/, for a private index: twine upload or gcloud artifacts (README).
dist: setup
	rm -rf dist/kfp_lineage_components-* && $(BIN)/python -m pip wheel --quiet --no-deps --disable-pip-version-check \
		--wheel-dir dist ./components
	@ls dist/kfp_lineage_components-*

# The image of containerized components (components/Dockerfile), tagged IMAGE; PUSH=1 pushes it too. Needs docker
# or podman (CONTAINER_ENGINE=...).
CONTAINER_ENGINE ?= $(shell command -v docker || command -v podman)
IMAGE ?=
image:
	@test -n "$(IMAGE)" || { echo "error: pass IMAGE=REGISTRY/NAME:TAG" >&2; exit 2; }
	@test -n "$(CONTAINER_ENGINE)" || { echo "error: no container engine (docker or podman) on PATH" >&2; exit 2; }
	$(CONTAINER_ENGINE) build -t '$(IMAGE)' components
	$(if $(PUSH),$(CONTAINER_ENGINE) push '$(IMAGE)')

$(SPECS_KFP)/.installed: constraints/current.txt
	test -x $(SPECS_KFP)/bin/python || $(BIN)/python -m venv $(SPECS_KFP)
	$(SPECS_KFP)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints/current.txt \
		kfp google-cloud-pipeline-components
	touch $@

# Resolves both stacks for every Python and platform they claim (needs network; about two minutes).
lock:
	rm -rf /tmp/kfp-lineage-lock && python3 -m venv /tmp/kfp-lineage-lock
	/tmp/kfp-lineage-lock/bin/pip install --quiet --disable-pip-version-check uv
	/tmp/kfp-lineage-lock/bin/python constraints/lock.py /tmp/kfp-lineage-lock/bin/uv

clean:
	rm -rf $(VENV) .kfp-lineage .pytest_cache
