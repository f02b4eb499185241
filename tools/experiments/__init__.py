"""Experiments that write tables: docs/results.md (``results``), docs/likelihoods.md
(``likelihood_table``), seed-to-seed stability (``stability``), the colour a run keeps
(``channel_spread``), the disentanglement metrics on known answers and their time
(``known_answers``, docs/disentanglement.md), and the shapes data set they can run on
(``make_shapes``)."""
