# Two commands do everything on a fresh machine (Python 3.11, x86_64):
#   make run    create .venv, install atdr, run the default workflow end to end
#   make test   create .venv, install atdr, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: run test install clean

$(BIN)/atdr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/atdr

run: install
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/default
	@echo "Tables and figures: results/comparison/  (report: snakemake --report report.html)"

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .snakemake results/*/ report.html
