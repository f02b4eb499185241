"""The documentation: the tutorial's values and figures (``make_docs``), the diagrams
(``diagrams``), the Explorer page's small model (``explorer_model``), the MkDocs site
(``build_site``) and pictures of it (``screenshot_site``)."""
