"""The documentation: the tutorial's values and figures (``make_docs``), the diagrams
(``diagrams``), the MkDocs site (``build_site``) and pictures of it (``screenshot_site``)."""
