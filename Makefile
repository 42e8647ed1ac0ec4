# Two commands do everything:  make run  (the whole pipeline)  and  make test.
PROFILE ?= quick
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run datasets test app lock clean-results help

help:
	@echo "make run [PROFILE=quick|smoke|full]  build the data sets and execute every notebook"
	@echo "make test                            run the test suite (smoke profile)"
	@echo "make app                             start the Streamlit explorer"
	@echo "make lock                            re-pin requirements.lock from pyproject.toml"

# The virtual environment is (re)made when missing or when the pins change. The packages are
# compiled to bytecode as they are installed: where PYTHONDONTWRITEBYTECODE is set (as on the
# project's development machine) Python would otherwise compile TensorFlow anew in every process,
# 22 s of each notebook's and test worker's start instead of 8.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "uv>=0.5"
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/galaxies run --profile $(PROFILE)

datasets: $(STAMP)
	$(BIN)/galaxies datasets --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest

app: $(STAMP)
	$(BIN)/streamlit run EDA/app/app.py

lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -q -o requirements.lock

clean-results:
	rm -rf results/$(PROFILE)
