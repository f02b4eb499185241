# Convenience targets; each is one command you can also run by hand.
PYTHON ?= .venv/bin/python

.PHONY: setup test docs results results-quick bench

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest

# Regenerates docs/tutorial.md and docs/figures/ (trains the models the tutorial discusses).
docs: setup
	$(PYTHON) scripts/make_docs.py

# Regenerates docs/results.md (long: trains the paper-protocol VAE, K = 5000 evaluation).
# `make results-quick` runs the same script on small runs in minutes (into runs/results-quick).
results: setup
	$(PYTHON) scripts/results.py

results-quick: setup
	$(PYTHON) scripts/results.py --quick

bench: setup
	$(PYTHON) bench/epoch_time.py
	$(PYTHON) bench/nll_speed.py
