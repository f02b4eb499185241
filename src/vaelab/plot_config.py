"""The settings of ``vaelab plot`` (``PlotConfig``), from which its flags are generated.

Like ``config.py`` this module imports neither torch nor matplotlib, so the command line can
build its flags without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import setting


@dataclass(frozen=True)
class PlotConfig:
    """What ``plots.all_figures`` draws beyond its fixed set of figures.

    ``colour_by``: the factor of data made from known factors (``data/factors.py``: a sprite's
    shape, scale, position ...) that colours latents.png instead of the labels; the run's
    factor names are checked when the run is read."""

    colour_by: str | None = setting(
        None, "colour latents.png by this factor of data made from known factors", metavar="FACTOR"
    )
