"""vaelab's own tools, grouped by job; each runs from the repository root as a module:

- ``tools.docs``: the documentation (the tutorial's numbers and figures, the diagrams, the
  site, its screenshots): ``python -m tools.docs.build_site``;
- ``tools.experiments``: experiments that write tables (docs/results.md, docs/likelihoods.md,
  seed stability, colour spread) and the data they need: ``python -m tools.experiments.results``;
- ``tools.bench``: benchmarks that print ratios measured in one run, and the report that makes
  docs/performance.md from them: ``python -m tools.bench.report``.

``machine`` describes the machine a tool measured on, for all three.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root
