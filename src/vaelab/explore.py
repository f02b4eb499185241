"""One self-contained HTML page to explore a decoder's latent space in the browser.

The page carries the decoder itself: every ``nn.Linear`` weight and bias as little-endian
float32 bytes in base64, with the shapes and the activations in a JSON header, all inside one
``<script type="application/json">`` block.  Plain JavaScript decodes them into Float32Arrays
and runs the decoder (matrix-vector products in float64, the activations written like torch's:
ReLU, tanh, ELU, exact erf GELU (or its tanh form), softplus with beta and threshold, leaky
ReLU), then shows the mean of p(x|z): the sigmoid of the logits for a Bernoulli decoder, the
decoder's output for a Gaussian one.  erf is a series / continued fraction accurate to ~1e-15,
so the page's pixels agree with ``model.decode(z).mean`` to float32 rounding.

No server and no network: inline CSS and JS only.  On the left, a plane through latent space
with the test-set latent means drawn as dots coloured by digit: z itself when the latent space
is 2-D, otherwise ``z = mean + a * pc1 + b * pc2`` with pc1, pc2 the first two principal
directions of the test-set latent means.  On the right, the decoded digit and one slider per
latent dimension.  ``window.vaelab`` (``setLatent``, ``getLatent``, ``decode``) lets a test drive
the page; the digit canvas draws pixel p as a 10x10 block of gray ``round(255 * p)``.

The page's HTML template, stylesheet and script are package files, ``vaelab/assets/explorer.html``,
``explorer.css`` and ``explorer.js``, read with ``importlib.resources`` each time a page is made.
The template's ``{field}`` slots are filled by ``str.format`` (a literal brace in it would be
written ``{{`` or ``}}``); the CSS and the JS go in as values, verbatim, never formatted.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .analysis import fit_pca, latent_codes, pca_encode
from .data import DIGITS, Split
from .errors import VaelabError
from .models.abilities import HasBound, LatentPictures, require
from .nets import ConvDecoder
from .runs import Run, atomic_write

FORMAT = "vaelab-explorer/1"
DATA_ID = "vaelab-data"  # id of the <script type="application/json"> block
DIGIT_CANVAS = "digit"  # 280x280: pixel (r, c) is the 10x10 block at (10 r, 10 c)
PLANE_CANVAS = "plane"
CONV_REFUSED = "explorer: cannot export a conv decoder to the browser; MLP and linear decoders only"
COLOURS = [  # matplotlib's tab10, one per digit
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


ASSETS = "assets"  # the folder of the page's files inside the vaelab package
TEMPLATE, STYLESHEET, SCRIPT = "explorer.html", "explorer.css", "explorer.js"


def asset_text(name: str) -> str:
    """The text of the package file ``vaelab/assets/<name>``, read now (UTF-8)."""
    return (files("vaelab") / ASSETS / name).read_text(encoding="utf-8")


def f32_base64(t: torch.Tensor | np.ndarray) -> str:
    """Base64 of the values of ``t`` as little-endian float32, row-major."""
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _activation(m: nn.Module) -> dict[str, Any] | None:
    """The JSON description of a torch activation module, or None for anything else."""
    kind = type(m)
    if kind is nn.ReLU:
        return {"type": "relu"}
    if kind is nn.Tanh:
        return {"type": "tanh"}
    if kind is nn.ELU:
        return {"type": "elu", "alpha": float(m.alpha)}
    if kind is nn.LeakyReLU:
        return {"type": "leaky_relu", "slope": float(m.negative_slope)}
    if kind is nn.Softplus:
        return {"type": "softplus", "beta": float(m.beta), "threshold": float(m.threshold)}
    if kind is nn.GELU:
        return {"type": "gelu", "approximate": m.approximate}  # "none" (erf) or "tanh"
    return None


def _flat(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _flat(child)]
    return [module]


def decoder_layers(decoder: nn.Module, latent_dim: int) -> list[dict[str, Any]]:
    """The decoder as a list of JSON layers: ``linear`` (weight (out, in) and bias in base64)
    and activations.  Only MLP and linear decoders can be exported."""
    layers: list[dict[str, Any]] = []
    width = latent_dim
    for m in _flat(decoder):
        if isinstance(m, (ConvDecoder, nn.modules.conv._ConvNd)):
            raise VaelabError(CONV_REFUSED)
        if isinstance(m, nn.Linear):
            if m.in_features != width:
                raise VaelabError(f"explorer: decoder layer {m} does not take {width} inputs")
            layers.append(
                {
                    "type": "linear",
                    "shape": [m.out_features, m.in_features],
                    "weight": f32_base64(m.weight),
                    "bias": None if m.bias is None else f32_base64(m.bias),
                }
            )
            width = m.out_features
            continue
        act = _activation(m)
        if act is None:
            raise VaelabError(
                f"explorer: cannot export decoder module {type(m).__name__} to the browser; "
                "MLP and linear decoders only"
            )
        layers.append(act)
    return layers


def _extent(xy: np.ndarray, pad: float = 0.08) -> list[float]:
    """A square [x0, x1, y0, y1] holding every point and the origin, padded by ``pad``."""
    if len(xy) == 0:
        return [-3.0, 3.0, -3.0, 3.0]
    pts = np.concatenate([xy.reshape(-1, 2), np.zeros((1, 2))])
    lo, hi = pts.min(0), pts.max(0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3) * (1 + pad)
    return [centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half]


def _describe(model: nn.Module, layers: list[dict[str, Any]]) -> str:
    cfg = model.cfg
    sizes = [model.latent_dim] + [la["shape"][0] for la in layers if la["type"] == "linear"]
    acts = sorted({la["type"] for la in layers if la["type"] != "linear"})
    arch = f"{cfg.decoder} decoder {'-'.join(map(str, sizes))}"
    return (
        f"{model.about.label}, {model.latent_dim}-D latent space, {arch}"
        f"{' (' + ', '.join(acts) + ')' if acts else ''}, {cfg.likelihood} p(x|z)"
    )


def exportable_layers(model: nn.Module) -> list[dict[str, Any]]:
    """The model's decoder as JSON layers; VaelabError when the page cannot show this model."""
    d = int(model.latent_dim)
    if d < 2:
        raise VaelabError(f"explorer: needs a latent space of 2 or more dimensions, not {d}")
    require(model, LatentPictures, "the explorer")
    decoder = model.browser_decoder()
    if decoder is None:
        raise VaelabError(
            f"explorer: a {model.about.label}'s decoder needs more than the code (a label); the "
            "page shows decoders of the code alone"
        )
    return decoder_layers(decoder, d)


@torch.no_grad()
def explorer_data(model: nn.Module, test: Split, *, n_points: int = 2000, seed: int = 0) -> dict:
    """Everything the page needs, as JSON-ready values (see the module docstring)."""
    if n_points < 0:
        raise VaelabError(f"n_points must be >= 0, got {n_points}")
    layers = exportable_layers(model)  # refuses conv decoders before any work
    dims = math.prod(model.image_shape)
    width = next(la["shape"][0] for la in reversed(layers) if la["type"] == "linear")
    if width != dims:
        raise VaelabError(f"explorer: the decoder outputs {width} values, not {dims} pixels")
    d = int(model.latent_dim)
    codes = latent_codes(model, test.x)  # (N, D) flat codes: latent means (AE: codes)
    if not codes.isfinite().all():
        raise VaelabError(
            "explorer: the latent codes of the test images are not finite (NaN or inf); "
            "the weights hold non-finite values, or the encoder overflows"
        )
    if d == 2:  # the plane is z itself
        origin, axes, xy, explained = np.zeros(2), np.eye(2), codes.double().numpy(), None
    else:  # z = mean + a * pc1 + b * pc2
        pca = fit_pca(codes, 2)
        origin, axes = pca.mean.numpy(), pca.components.numpy()  # (D,), (2, D) orthonormal
        xy = pca_encode(pca, codes).numpy()  # (N, 2)
        explained = (pca.eigenvalues[:2] / pca.eigenvalues.sum().clamp_min(1e-300)).tolist()
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(codes), generator=g)[:n_points].numpy()
    labels = test.y[pick].numpy()
    codes_np = codes.double().numpy()
    lo = np.minimum(-3.0, np.floor(codes_np.min(0) * 10) / 10) if len(codes) else np.full(d, -3.0)
    hi = np.maximum(3.0, np.ceil(codes_np.max(0) * 10) / 10) if len(codes) else np.full(d, 3.0)
    return {
        "format": FORMAT,
        "model": model.about.label,
        "latent_dim": d,
        "likelihood": model.cfg.likelihood,
        "image": list(model.image_shape),
        "classes": list(test.classes) if test.labelled else None,
        "output": model.likelihood.output,
        "layers": layers,
        "plane": {
            "origin": origin.tolist(),
            "axes": axes.tolist(),
            "labels": ["z1", "z2"] if d == 2 else ["PC1", "PC2"],
            "explained": explained,
            "extent": _extent(xy[pick]),
        },
        "points": {
            "n": len(pick),
            "total": len(codes),
            "xy": f32_base64(xy[pick]),  # (n, 2) plane coordinates
            # labels as bytes; 255 marks an unlabelled image
            "labels": base64.b64encode(
                np.where(labels < 0, 255, labels % 255).astype(np.uint8).tobytes()
            ).decode(),
        },
        "sliders": {"lo": lo.tolist(), "hi": hi.tolist(), "step": 0.01},
        "start": origin.tolist(),
        "prior": isinstance(model, HasBound) and model.standard_normal_prior,
        "colours": COLOURS,
    }


def _json_for_script(obj: Any) -> str:
    """JSON that cannot close its <script> block ("<", ">" and "&" as \\u escapes)."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    assert "</" not in text
    return text


def explorer_html(
    model: nn.Module, test: Split, *, name: str = "", n_points: int = 2000, seed: int = 0
) -> str:
    """The explorer page for ``model`` with the latent means of ``test``; ``name``: run folder."""
    data = explorer_data(model, test, n_points=n_points, seed=seed)
    d, plane = data["latent_dim"], data["plane"]
    what = {
        "sigmoid": "sigmoid of the logits",
        "cb_mean": "mean of the continuous Bernoulli",
    }.get(data["output"], "clipped to [0, 1]")
    dots = model.about.codes
    if d == 2:
        plane_text = f"The plane is z = (z1, z2); dots: {dots} of {data['points']['n']} of "
    else:
        pct = ", ".join(f"{100 * e:.0f}%" for e in plane["explained"])
        plane_text = (
            f"The plane is z = mean + a\u00b7PC1 + b\u00b7PC2, the first two principal directions "
            f"of the test {dots} ({pct} of their variance); clicking it sets every coordinate "
            f"of z, the sliders move z off the plane (the marker then shows its projection). "
            f"Dots: {data['points']['n']} of "
        )
    classes = data["classes"]
    digits = classes is not None and tuple(classes) == DIGITS
    plane_text += f"the {data['points']['total']} test images, " + (
        "unlabelled." if classes is None else f"coloured by {'digit' if digits else 'class'}."
    )
    legend = "".join(
        f'<span><i style="background:{COLOURS[k % len(COLOURS)]}"></i>{escape(name)}</span>'
        for k, name in enumerate(classes or [])
    )
    title = f"{name or 'model'} \u2014 vaelab latent explorer"
    # str.format fills the template's fields only; the CSS and JS go in as values, verbatim
    return asset_text(TEMPLATE).format(
        title=escape(title),
        name=escape(name or "(model)"),
        describe=escape(_describe(model, data["layers"])),
        explain=escape(
            f"Right: the decoder mean of p(x|z) at the marked z ({what}), "
            f"{model.image_shape[1]}x{model.image_shape[2]} pixels"
            f"{', RGB' if model.image_shape[0] == 3 else ''}, white = 1. Click or drag on the "
            "plane, or move the sliders."
        ),
        plane_text=escape(plane_text),
        legend=legend,
        prior_button=(
            '<button id="prior" type="button">z ~ N(0, I)</button>' if data["prior"] else ""
        ),
        css=asset_text(STYLESHEET),
        data_id=DATA_ID,
        data=_json_for_script(data),
        js=asset_text(SCRIPT),
    )


def write_explorer(
    run_dir: str | Path, out: Path | None = None, *, n_points: int = 2000, seed: int = 0
) -> Path:
    """Write the latent explorer of a run (default ``run_dir/explorer.html``); returns its path.
    ``n_points`` test images (a subsample fixed by ``seed``) of the run's own data are drawn
    as dots.  A model whose decoder cannot run in the page raises VaelabError.
    """
    run = Run.load(run_dir)
    model = run.model(finite=True)  # NaN weights: refused, not drawn as a page of NaN
    exportable_layers(model)  # refuse before loading any data
    name = run.path.resolve().name or str(run.path)
    page = explorer_html(model, run.splits()["test"], name=name, n_points=n_points, seed=seed)
    out = Path(out) if out is not None else run.path / "explorer.html"
    atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out
