"""Runs side by side: one table (Markdown or HTML) and their validation curves overlaid.

Each row is a run folder: its model, the pixels it saw, epochs, training time, and what
``vaelab evaluate`` saved for the test split (-ELBO or loss, the importance-sampled estimate
with K and its diagnostics, active units).  Numbers of different kinds (a log-likelihood of
binarized pixels, a density of continuous pixels, a loss on grayscale pixels) or estimates
with different K are never put in one column silently: each cell names its kind and K, and
the table ends with a note whenever a column mixes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from .errors import VaelabError
from .evaluate import ESTIMATE_KEYS
from .runs import Run

KIND_WORDS = {
    "likelihood": "NLL",
    "density": "density NLL",
    "loss": "loss, not an NLL",
}


@dataclass
class Row:
    """One run's line of the table; ``None`` where the run has no such number."""

    name: str
    model: str
    pixels: str
    epochs: int
    train_seconds: float
    kind: str | None = None
    neg_elbo: float | None = None
    recon: float | None = None
    nll: float | None = None
    nll_sem: float | None = None
    k: int | None = None
    k_sub: int | None = None
    k_gap: float | None = None
    ess_median: float | None = None
    ess_p5: float | None = None
    active: str | None = None
    n_images: int | None = None
    disentanglement: dict[str, float] | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    values: int = 784  # pixel values per image, C x H x W (MNIST: 784)


def split_evaluation(saved: dict, split: str) -> dict | None:
    """The evaluation of ``split`` in a run's evaluation.json: the whole split's, unless only a
    partial one (``split[:N]``, from ``--limit N``; the one with the most images) has the
    importance-sampled estimate.  Every number of the entry returned is on the same images.
    Evaluations with other products than fp32 (``split@bf16``, ...) are never chosen."""
    whole = saved.get(split) or None
    parts = [
        v
        for k, v in saved.items()
        if k.startswith(f"{split}[:") and "@" not in k and isinstance(v, dict)
    ]
    part = max(parts, key=lambda v: v.get("n_images", 0), default=None)

    def estimated(ev: dict | None) -> bool:
        return ev is not None and any(key in ev for key in ESTIMATE_KEYS.values())

    if whole is not None and (estimated(whole) or not estimated(part)):
        return whole
    return part or whole


def row_of(path: str | Path, split: str = "test") -> Row:
    """The table row of one run folder (what its evaluation.json holds for ``split``)."""
    run = Run.load(path)
    metrics = run.metrics()
    try:
        model = run.build_model().describe()
    except VaelabError:
        model = run.model_name
    row = Row(
        name=run.path.name or str(run.path),
        model=model,
        pixels=run.data.describe(),
        epochs=metrics[-1]["epoch"] if metrics else 0,
        train_seconds=sum(m.get("seconds", 0.0) for m in metrics),
        curve=[(m["epoch"], m["val_loss"]) for m in metrics if "val_loss" in m],
        values=math.prod(run.model_config.get("image_shape", (1, 28, 28))),
    )
    ev = split_evaluation({k: _readable(v) for k, v in run.evaluation().items()}, split)
    if not ev:
        return row
    row.kind = ev.get("kind")
    row.n_images = ev.get("n_images")
    row.neg_elbo = ev.get("neg_elbo", ev.get("recon"))
    row.recon = ev.get("recon")
    if "active_units" in ev and "latent_dim" in ev:
        row.active = f"{ev['active_units']}/{ev['latent_dim']}"
    row.disentanglement = _scores(ev.get("disentanglement"))
    key = ESTIMATE_KEYS.get(row.kind or "")
    if key and key in ev:
        row.nll, row.nll_sem, row.k = ev[key], ev.get(f"{key}_sem"), ev.get("nll_k")
        row.k_sub, row.k_gap = ev.get("nll_k_sub"), ev.get("nll_k_gap")
        row.ess_median, row.ess_p5 = ev.get("ess_median"), ev.get("ess_p5")
    return row


# What the table reads from an evaluation, and of what type; anything else is left out.
NUMBERS = ("neg_elbo", "recon", "nll_k_gap", "ess_median", "ess_p5", "n_images", "nll_k",
           "nll_k_sub", "active_units", "latent_dim",
           *ESTIMATE_KEYS.values(), *(f"{k}_sem" for k in ESTIMATE_KEYS.values()))  # fmt: skip
COUNTS = ("n_images", "nll_k", "nll_k_sub", "active_units", "latent_dim")


def _readable(ev: dict) -> dict:
    """The entry ``ev`` of an evaluation.json with the values the table cannot show (a kind
    that is not text, a number that is not finite, a count that is not whole) left out."""
    out = {k: v for k, v in ev.items() if k not in NUMBERS and k != "kind"}
    if isinstance(ev.get("kind"), str):
        out["kind"] = ev["kind"]
    for key in NUMBERS:
        value = ev.get(key)
        real = isinstance(value, int | float) and not isinstance(value, bool)
        if real and math.isfinite(value) and (key not in COUNTS or isinstance(value, int)):
            out[key] = value
    return out


# The disentanglement numbers the table shows, by their short names (docs/disentanglement.md).
SCORES = {
    "beta_vae": "BetaVAE",
    "factor_vae": "FactorVAE",
    "mig": "MIG",
    "dci_disentanglement": "DCI-D",
    "dci_completeness": "DCI-C",
    "dci_informativeness": "DCI-I",
    "sap": "SAP",
    "modularity": "modularity",
}


def _scores(entry) -> dict[str, float] | None:
    """The finite numbers of an evaluation's "disentanglement" entry that the table shows."""
    values = entry.get("values") if isinstance(entry, dict) else None
    if not isinstance(values, dict):
        return None
    out = {
        k: float(v)
        for k, v in values.items()
        if k in SCORES and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {k: v for k, v in out.items() if math.isfinite(v)} or None


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _minutes(seconds: float) -> str:
    if not seconds:
        return ""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def cells(row: Row) -> list[str]:
    """The row as table cells (text), each estimate labelled with its kind and K."""
    kind = KIND_WORDS.get(row.kind or "", "")
    bound = ""
    if row.neg_elbo is not None:
        what = "-ELBO" if row.kind in ("likelihood", "density") else "loss"
        bound = f"{row.neg_elbo:.2f} ({what})"
    estimate = ""
    if row.nll is not None:
        sem = f" ± {row.nll_sem:.2f}" if row.nll_sem is not None else ""
        estimate = f"{row.nll:.2f}{sem} ({kind}, K={row.k})"
    gap = ""
    if row.k_gap is not None:
        gap = f"{row.k_gap:+.3f} (K={row.k_sub} vs {row.k})"
    ess = ""
    if row.ess_median is not None and row.ess_p5 is not None:
        ess = f"{row.ess_median:.0f} / {row.ess_p5:.0f}"
    return [
        row.name,
        row.model,
        row.pixels,
        str(row.epochs),
        _minutes(row.train_seconds),
        bound,
        estimate,
        gap,
        ess,
        row.active or "",
        "" if row.n_images is None else str(row.n_images),
        ", ".join(f"{SCORES[k]} {v:.2f}" for k, v in (row.disentanglement or {}).items()),
    ]


HEADER = [
    "run",
    "model",
    "pixels",
    "epochs",
    "train time",
    "test -ELBO or loss (nats per image)",
    "test -log p(x) estimate ± s.e. over images",
    "estimate with K/5 samples minus with K",
    "ESS median / 5th pct",
    "active units",
    "test images",
    "disentanglement (0 to 1, higher is better)",
]


def notes(rows: list[Row]) -> list[str]:
    """Sentences for the table's foot: what each column's numbers are, and where they mix."""
    sizes = sorted({r.values for r in rows}) or [784]
    summed = (
        f"the {sizes[0]} pixels"
        if len(sizes) == 1
        else f"each image's pixel values ({' or '.join(map(str, sizes))}: not comparable)"
    )
    out = [
        f"All numbers are in nats per image, summed over {summed} and averaged over the "
        "test images; the s.e. is the spread over images / sqrt(N), not Monte Carlo error. "
        "ESS: effective sample size of the K importance weights, over images."
    ]
    kinds = {r.kind for r in rows if r.kind}
    if len(kinds) > 1:
        out.append(
            "Not comparable across kinds: this table mixes "
            + ", ".join(f"{KIND_WORDS[k]} ({k})" for k in sorted(kinds))
            + ". A Bernoulli loss on grayscale pixels is not a likelihood, and a density of "
            "continuous pixels is in other units than a probability of binary ones."
        )
    ks = {r.k for r in rows if r.k is not None}
    if len(ks) > 1:
        out.append(
            f"The estimates use different K ({', '.join(map(str, sorted(ks)))}): a larger K gives "
            "a tighter (lower) estimate, so compare rows with the same K."
        )
    images = {r.n_images for r in rows if r.n_images is not None}
    if len(images) > 1:
        out.append(
            f"The rows are evaluated on different numbers of test images "
            f"({', '.join(map(str, sorted(images)))})."
        )
    if any(r.disentanglement for r in rows):
        out.append(
            "Disentanglement: the metrics of the model's codes on its data's known factors "
            "(BetaVAE and FactorVAE scores, mutual information gap, DCI disentanglement, "
            "completeness and informativeness, SAP, modularity), each in [0, 1]; compare rows "
            "evaluated with the same preset and data (docs/disentanglement.md)."
        )
    pixels = {r.pixels for r in rows}
    if len(pixels) > 1:
        out.append("The runs saw different pixels (see the pixels column).")
    return out


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes(rows)) + "\n"


def html(rows: list[Row]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells(r)) + "</tr>" for r in rows
    )
    foot = "".join(f"<p>{escape(n)}</p>" for n in notes(rows))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>vaelab compare</title><style>body{font-family:sans-serif;margin:1.5em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:left}</style></head><body>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{foot}"
        "</body></html>\n"
    )


def compare(paths: list[str | Path], split: str = "test") -> list[Row]:
    if not paths:
        raise VaelabError("compare needs at least one run folder")
    return [row_of(p, split) for p in paths]
