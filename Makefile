# Five targets for a fresh machine: `make reproduce` (the main job), `make quick` (its small preset),
# `make verify` (re-evaluate the committed runs), `make test` and `make docs` (the API reference).
# reproduce and quick train from scratch into runs/ (untracked) and compare every run with the committed one.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup reproduce quick verify test docs

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]" "torch==2.13.0"
	$(PY) -m pip install -q -e ".[ray]" "torch==2.13.0" || echo "Ray could not be installed: the Ray sweep test will be skipped"
	$(PY) -m pip install -q -e ".[tensorboard]" "torch==2.13.0" || echo "tensorboard could not be installed: its tests will be skipped"
	$(PY) -m pip install -q -e ".[box2d]" "torch==2.13.0" || echo "Box2D could not be installed: the LunarLander tests will be skipped"
	$(PY) -m pip install -q -e ".[mujoco]" "torch==2.13.0" || echo "MuJoCo could not be installed: the MuJoCo tests will be skipped"
	touch $@

setup: $(VENV)/.installed

reproduce: setup
	$(VENV)/bin/robustrl reproduce --out runs/reproduce --compare results

quick: setup
	$(VENV)/bin/robustrl reproduce --quick --out runs/quick --compare results/quick

verify: setup
	$(VENV)/bin/robustrl evaluate --runs results/runs --verify

test: setup
	$(PY) -m pytest -q

# The API reference from the docstrings (Sphinx + autodoc) into docs/_build/html (untracked); a warning is an error.
$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[docs]" "torch==2.13.0"
	touch $@

docs: $(VENV)/.docs-installed
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "API reference: docs/_build/html/index.html"
