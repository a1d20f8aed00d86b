# The two commands of the README: `make demo` and `make test`. Each sets up what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export CONTAINERS_CONF := $(CURDIR)/infra/containers.conf
export RAY_AUTH_MODE := disabled

.PHONY: demo test setup system venv images lint bench docs

demo: setup
	$(VENV)/bin/medarena demo

test: setup
	bash infra/run-tests.sh $(PY)

setup: system venv images

system:
	@bash infra/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first, so that monai (a test extra) does not pull the CUDA one
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

images: venv
	@bash infra/build-images.sh

lint: venv
	$(VENV)/bin/ruff check .

bench: setup
	for script in bench/*.py; do $(PY) "$$script" || exit 1; done

docs: venv
	$(VENV)/bin/mkdocs build --strict
