# The two commands of the README: `make demo` and `make test`. Each sets up what is missing first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export CONTAINERS_CONF := $(CURDIR)/infra/containers.conf
export RAY_AUTH_MODE := disabled

.PHONY: demo test setup system venv test-venv images lint bench docs constraints

# the demo needs only the runtime; the tests also need the test extra
demo: system venv images
	$(VENV)/bin/medarena demo $(DEMO_ARGS)

test: system test-venv images
	bash infra/run-tests.sh $(PY) $(PYTEST_ARGS)

setup: system test-venv images

system:
	@bash infra/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml infra/setup-venv.sh infra/constraints.txt
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

# after an upgrade that passed the whole suite: record the versions every install takes; pins
# with a Python marker (a release that needs a newer Python than some distribution has) are kept
constraints: test-venv
	@{ sed -n '1,2p' infra/constraints.txt; \
	  $(VENV)/bin/pip freeze --exclude-editable | grep -v -i '^py-spy==' | sed 's/+cpu$$//' \
	    | grep -v -i -E "^($$(grep -v '^#' infra/constraints.txt | sed -n 's/^\([^=; ]*\)==.*;.*/\1/p' | sort -u | paste -sd'|' -))=="; \
	  grep -v '^#' infra/constraints.txt | grep ';' || true; } > infra/constraints.txt.new
	mv infra/constraints.txt.new infra/constraints.txt
