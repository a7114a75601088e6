# reviewflow: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo
# Two pytest workers on CI's two cores; `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2

.PHONY: install demo test bench bench-shard bench-fit clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/python cli.py synth $(DEMO)/train.ft.txt.bz2 --lines 20000 --seed 1 --bad-fraction 0.002
	$(BIN)/python cli.py synth $(DEMO)/test.ft.txt.bz2 --lines 4000 --seed 2
	$(BIN)/python cli.py shard --train $(DEMO)/train.ft.txt.bz2 --test $(DEMO)/test.ft.txt.bz2 \
		--out $(DEMO)/data --num-shards 4 --overwrite
	$(BIN)/python cli.py fit --model ffn --data $(DEMO)/data --out $(DEMO)/runs/ffn --epochs 4 --seed 1 --overwrite
	$(BIN)/python cli.py fit --model cnn --data $(DEMO)/data --out $(DEMO)/runs/cnn --epochs 3 --seed 1 --overwrite

test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests

bench: bench-shard bench-fit

bench-shard: install
	$(BIN)/python benchmarks/shard_bench.py

bench-fit: install
	$(BIN)/python benchmarks/fit_bench.py

clean:
	rm -rf $(DEMO) bench-out .pytest_cache
