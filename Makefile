# The two commands of the README: `make demo` and `make test`. Each sets up what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export CONTAINERS_CONF := $(CURDIR)/infra/containers.conf
export RAY_AUTH_MODE := disabled

.PHONY: demo test setup system venv test-venv images lint bench docs

# the demo needs only the runtime; the tests also need the test extra
demo: system venv images
	$(VENV)/bin/medarena demo $(DEMO_ARGS)

test: system test-venv images
	bash infra/run-tests.sh $(PY) $(PYTEST_ARGS)

setup: system test-venv images

system:
	@bash infra/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml infra/setup-venv.sh
	@bash infra/setup-venv.sh $(VENV)
	touch $@

test-venv: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	@bash infra/setup-venv.sh $(VENV) test
	touch $@

images: venv
	@bash infra/build-images.sh

lint: test-venv
	$(VENV)/bin/ruff check .

bench: setup
	for script in bench/*.py; do $(PY) "$$script" || exit 1; done

docs: test-venv
	$(VENV)/bin/mkdocs build --strict
