# The two commands of README.md: `make demo` and `make test`. Everything installs into ./.venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_ARGS ?= -n 2

.PHONY: demo serve test lint bench screenshots install clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo --host $(HOST) --port $(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production mode on this machine (docs/deployment.md): gunicorn, a Celery worker and Celery beat against
# DATABASE_URL and CELERY_BROKER_URL, after migrate and collectstatic.
serve: $(INSTALLED)
	PATH="$(CURDIR)/$(BIN):$$PATH" HOST=$(HOST) PORT=$(PORT) bin/serve

test: $(INSTALLED)
	$(BIN)/python -m pytest $(TEST_ARGS) $(ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy hitl_platform models_registry reviews audits

bench: $(INSTALLED)
	$(BIN)/python bench/run_all.py

# Retake docs/tour.md's screenshots (the tour's browser test, saving into docs/screenshots/).
screenshots: $(INSTALLED)
	HITL_TOUR_SCREENSHOTS_UPDATE=1 $(BIN)/python -m pytest tests/browser/test_tour_screenshots.py

clean:
	rm -rf $(VENV) test-output .pytest_cache
