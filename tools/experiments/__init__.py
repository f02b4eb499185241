"""Experiments that write tables: docs/results.md (``results``), docs/likelihoods.md
(``likelihood_table``), seed-to-seed stability (``stability``), the colour a run keeps
(``channel_spread``), and the shapes data set they can run on (``make_shapes``)."""
