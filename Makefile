# Convenience targets; each is one command you can also run by hand.
PYTHON ?= .venv/bin/python

.PHONY: setup test docs tutorial-text site serve results results-quick table bench

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest

# Regenerates docs/tutorial.md and docs/figures/ (trains the models the tutorial discusses),
# then builds the documentation site into site/ (open site/index.html; works offline).
docs: setup
	$(PYTHON) -m tools.docs.make_docs
	$(PYTHON) -m tools.docs.build_site

# docs/tutorial.md refilled from an edited template and the saved values (runs nothing).
tutorial-text: setup
	$(PYTHON) -m tools.docs.make_docs --render-only

# The site alone, from docs/ as it stands (well under a minute; trains nothing: the Explorer's
# model ships in docs/assets/explorer-vae, made once by `python -m tools.docs.explorer_model`).
site: setup
	$(PYTHON) -m tools.docs.build_site

# The built site on http://127.0.0.1:8000 (search works when served; from disk it is hidden).
serve:
	$(PYTHON) -m http.server --directory site --bind 127.0.0.1 8000

# Regenerates docs/results.md (long: trains the paper-protocol VAE, K = 5000 evaluation).
# `make results-quick` runs the same script on small runs in minutes (into runs/results-quick).
results: setup
	$(PYTHON) -m tools.experiments.results

results-quick: setup
	$(PYTHON) -m tools.experiments.results --quick
	$(PYTHON) -m tools.experiments.likelihood_table --quick

# docs/likelihoods.md and its figure, from the runs that
# `python -m tools.experiments.likelihood_table launch`
# trained and evaluated (hours on a CPU; see docs/likelihoods.md for each row's command).
TABLE_RUNS ?= runs/table runs/table-gpu runs/table-gpu2
table: setup
	$(PYTHON) -m tools.experiments.likelihood_table write $(TABLE_RUNS)

# docs/performance.md from the benchmarks (about 9 minutes); with pythae in the training table:
# `bash tools/bench/setup_pythae.sh && make bench PYTHON=.venv-bench/bin/python`
bench: setup
	$(PYTHON) -m tools.bench.report --python $(PYTHON)
