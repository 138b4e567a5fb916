# Two commands do everything on a fresh machine (Python 3.11, x86_64):
#   make run    create .venv, install atdr, run the default workflow end to end
#   make test   create .venv, install atdr, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
# Workflow jobs call `python -m atdr`: the venv's python must come first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test install schema bench clean

$(BIN)/atdr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/atdr

run: install
	$(BIN)/snakemake --cores $(CORES)
	@echo
	@echo "Comparison table: results/comparison/config/table.md (also .csv, .tex)"
	@echo "Figures:          results/comparison/config/*.png, mAP_by_model.pdf"
	@echo "Report:           $(BIN)/snakemake --report report.html"

test: install
	$(BIN)/python -m pytest

# Regenerate the workflow config schema from the run config (atdr/config.py, atdr/workflow.py).
schema: install
	$(BIN)/python -m atdr.workflow > workflow/schemas/config.schema.yaml

# Speed benchmarks (ratios against baselines measured in the same run): results/benchmarks/*.csv.
# About 10 minutes on 2 CPU cores; on a GPU machine the GPU rows and AST's MFU are added.
bench: install
	$(BIN)/python benchmarks/data_pipeline.py --out results/benchmarks/data_pipeline.csv
	$(BIN)/python benchmarks/models.py --out results/benchmarks/models.csv --mfu-out results/benchmarks/ast_mfu.csv

clean:
	rm -rf $(VENV) .snakemake results/*/ report.html
