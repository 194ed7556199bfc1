# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
WITH_ENGINES := $(PY) -m chargenet.embedded run --

.PHONY: install run test lint format bench migrate clean stop-engines

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

run: install
	$(WITH_ENGINES) $(PY) -m chargenet.devrun

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(WITH_ENGINES) $(PY) manage.py makemigrations --check --dry-run

# Tests queue into Redis database 1, so a `make run` worker never sees their tasks.
test: install lint
	$(PY) -m chargenet.embedded run --redis-db 1 -- $(VENV)/bin/pytest -n 2 -q

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(WITH_ENGINES) $(PY) -m bench

migrate: install
	$(WITH_ENGINES) $(PY) manage.py migrate

stop-engines:
	$(PY) -m chargenet.embedded stop

clean: stop-engines
	rm -rf $(VENV) var
