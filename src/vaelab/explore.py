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
"""

from __future__ import annotations

import base64
import json
import sys
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .analysis import fit_pca, latent_codes, pca_encode
from .batches import DataConfig, Split, load_splits
from .errors import VaelabError
from .nets import IMAGE_DIM, ConvDecoder
from .runs import atomic_write, load_run

FORMAT = "vaelab-explorer/1"
DATA_ID = "vaelab-data"  # id of the <script type="application/json"> block
DIGIT_CANVAS = "digit"  # 280x280: pixel (r, c) is the 10x10 block at (10 r, 10 c)
PLANE_CANVAS = "plane"
CONV_REFUSED = "explorer: cannot export a conv decoder to the browser; MLP and linear decoders only"
COLOURS = [  # matplotlib's tab10, one per digit
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


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
    if width != IMAGE_DIM:
        raise VaelabError(f"explorer: the decoder outputs {width} values, not {IMAGE_DIM} pixels")
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
        f"{model.name.upper()}, {model.latent_dim}-D latent space, {arch}"
        f"{' (' + ', '.join(acts) + ')' if acts else ''}, {cfg.likelihood} p(x|z)"
    )


def exportable_layers(model: nn.Module) -> list[dict[str, Any]]:
    """The model's decoder as JSON layers; VaelabError when the page cannot show this model."""
    d = int(model.latent_dim)
    if d < 2:
        raise VaelabError(f"explorer: needs a latent space of 2 or more dimensions, not {d}")
    return decoder_layers(model.decoder, d)


@torch.no_grad()
def explorer_data(model: nn.Module, test: Split, *, n_points: int = 2000, seed: int = 0) -> dict:
    """Everything the page needs, as JSON-ready values (see the module docstring)."""
    if n_points < 0:
        raise VaelabError(f"n_points must be >= 0, got {n_points}")
    layers = exportable_layers(model)  # refuses conv decoders before any work
    d = int(model.latent_dim)
    codes = latent_codes(model, test.x)  # (N, D) latent means (AE: codes)
    if d == 2:  # the plane is z itself
        origin, axes, xy, explained = np.zeros(2), np.eye(2), codes.double().numpy(), None
    else:  # z = mean + a * pc1 + b * pc2
        pca = fit_pca(codes, 2)
        origin, axes = pca.mean.numpy(), pca.components.numpy()  # (D,), (2, D) orthonormal
        xy = pca_encode(pca, codes).numpy()  # (N, 2)
        explained = (pca.eigenvalues[:2] / pca.eigenvalues.sum().clamp_min(1e-300)).tolist()
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(codes), generator=g)[:n_points].numpy()
    codes_np = codes.double().numpy()
    lo = np.minimum(-3.0, np.floor(codes_np.min(0) * 10) / 10) if len(codes) else np.full(d, -3.0)
    hi = np.maximum(3.0, np.ceil(codes_np.max(0) * 10) / 10) if len(codes) else np.full(d, 3.0)
    return {
        "format": FORMAT,
        "model": model.name,
        "latent_dim": d,
        "likelihood": model.cfg.likelihood,
        "output": "sigmoid" if model.cfg.likelihood == "bernoulli" else "identity",
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
            "labels": base64.b64encode(test.y[pick].numpy().astype(np.uint8).tobytes()).decode(),
        },
        "sliders": {"lo": lo.tolist(), "hi": hi.tolist(), "step": 0.01},
        "start": origin.tolist(),
        "prior": model.name == "vae",
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
    what = "sigmoid of the logits" if data["output"] == "sigmoid" else "clipped to [0, 1]"
    dots = "latent means E[z|x]" if model.name == "vae" else "codes f(x)"
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
    plane_text += f"the {data['points']['total']} test images, coloured by digit."
    legend = "".join(
        f'<span><i style="background:{c}"></i>{k}</span>' for k, c in enumerate(COLOURS)
    )
    title = f"{name or 'model'} \u2014 vaelab latent explorer"
    return PAGE.format(
        title=escape(title),
        name=escape(name or "(model)"),
        describe=escape(_describe(model, data["layers"])),
        explain=escape(
            f"Right: the decoder mean of p(x|z) at the marked z ({what}), 28x28 pixels, "
            "white = 1. Click or drag on the plane, or move the sliders."
        ),
        plane_text=escape(plane_text),
        legend=legend,
        prior_button=(
            '<button id="prior" type="button">z ~ N(0, I)</button>' if data["prior"] else ""
        ),
        css=CSS,
        data_id=DATA_ID,
        data=_json_for_script(data),
        js=JS,
    )


def write_explorer(
    run_dir: str | Path,
    out: Path | None = None,
    *,
    n_points: int = 2000,
    seed: int = 0,
    splits: dict[str, Split] | None = None,
) -> Path:
    """Write the latent explorer of a run (default ``run_dir/explorer.html``); returns its path.

    ``n_points`` test images (a subsample fixed by ``seed``) are drawn as dots; ``splits``
    defaults to the run's own data (``load_splits``).  A conv decoder raises VaelabError.
    """
    run_dir = Path(run_dir)
    model = load_run(run_dir)
    exportable_layers(model)  # refuse before loading any data
    if splits is None:
        splits = load_splits(
            DataConfig(**model.run_config["data"]), log=lambda m: print(m, file=sys.stderr)
        )
    name = run_dir.resolve().name or str(run_dir)
    page = explorer_html(model, splits["test"], name=name, n_points=n_points, seed=seed)
    out = Path(out) if out is not None else run_dir / "explorer.html"
    atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out


CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 1.2em auto; padding: 0 1.5em; color: #222; line-height: 1.4; max-width: 1180px; }
h1 { font-size: 1.45em; margin: 0 0 0.15em; }
.path, pre, output { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.sub { color: #555; margin: 0 0 0.3em; }
.explain { margin: 0 0 1em; }
.explorer { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.panel { display: flex; flex-direction: column; gap: 0.5em; }
#plane { width: 480px; height: 480px; border: 1px solid #ccc; cursor: crosshair;
         touch-action: none; background: #fff; }
#digit { width: 280px; height: 280px; image-rendering: pixelated; border: 1px solid #888; }
.caption { color: #444; font-size: 0.88em; max-width: 480px; margin: 0; }
.legend { display: flex; gap: 0.8em; flex-wrap: wrap; font-size: 0.9em; }
.legend i { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%;
            margin-right: 0.3em; vertical-align: -0.05em; }
.buttons { display: flex; gap: 0.5em; }
button { font: inherit; font-size: 0.9em; padding: 0.2em 0.8em; }
pre { margin: 0; font-size: 0.82em; white-space: pre-wrap; max-width: 560px; }
.sliders { display: grid; grid-template-columns: repeat(2, auto); gap: 0.1em 1.6em;
           font-size: 0.85em; }
.sliders label { display: flex; align-items: center; gap: 0.4em; }
.sliders span { width: 2.3em; text-align: right; color: #555; }
.sliders input { width: 150px; margin: 0; }
.sliders output { width: 3.6em; text-align: right; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<h1>Latent space explorer: <span class="path">{name}</span></h1>
<p class="sub">{describe}</p>
<p class="explain">{explain}</p>
<noscript><p>This page needs JavaScript: it runs the decoder in the browser.</p></noscript>
<main class="explorer">
<section class="panel">
<canvas id="plane" width="480" height="480"></canvas>
<div class="legend">{legend}</div>
<p class="caption">{plane_text}</p>
</section>
<section class="panel">
<canvas id="digit" width="280" height="280"></canvas>
<div class="buttons"><button id="reset" type="button">reset</button>{prior_button}</div>
<pre id="zvalues"></pre>
<div id="sliders" class="sliders"></div>
</section>
</main>
<script type="application/json" id="{data_id}">{data}</script>
<script>{js}</script>
</body>
</html>
"""

JS = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("vaelab-data").textContent);
  const D = data.latent_dim;
  const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  function bytes(b64) {
    const s = atob(b64);
    const u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return u;
  }
  function f32(b64) {  // little-endian float32 on any host
    const u = bytes(b64);
    if (LITTLE) return new Float32Array(u.buffer);
    const dv = new DataView(u.buffer), out = new Float32Array(u.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }

  // erf to ~1e-15: series erf(x) = 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!! for |x| < 2.5,
  // continued fraction of erfc beyond (Abramowitz & Stegun 7.1.6 and 7.1.14).
  function erf(x) {
    const ax = Math.abs(x);
    let r;
    if (ax < 2.5) {
      const x2 = ax * ax;
      let term = ax, sum = ax;
      for (let n = 1; n < 200; n++) {
        term *= (2 * x2) / (2 * n + 1);
        sum += term;
        if (term < 1e-17 * sum) break;
      }
      r = (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
    } else if (ax < 6) {
      let f = ax;
      for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
      r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
    } else r = 1;
    return x < 0 ? -r : r;
  }
  const ACTIVATIONS = {  // exactly torch's definitions
    relu: () => (x) => (x > 0 ? x : 0),
    tanh: () => Math.tanh,
    elu: (l) => (x) => (x > 0 ? x : l.alpha * Math.expm1(x)),
    leaky_relu: (l) => (x) => (x > 0 ? x : l.slope * x),
    softplus: (l) => (x) =>
      (x * l.beta > l.threshold ? x : Math.log1p(Math.exp(l.beta * x)) / l.beta),
    gelu: (l) => l.approximate === "tanh"
      ? (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
      : (x) => 0.5 * x * (1 + erf(x * Math.SQRT1_2)),
  };
  const layers = data.layers.map(function (l) {
    if (l.type === "linear") {
      return { type: l.type, shape: l.shape, W: f32(l.weight), b: l.bias ? f32(l.bias) : null };
    }
    if (!(l.type in ACTIVATIONS)) throw new Error("vaelab explorer: unknown layer " + l.type);
    return { type: l.type, f: ACTIVATIONS[l.type](l) };
  });

  function decode(zArray) {  // the mean of p(x|z) at one z: Float32Array(784)
    if (zArray.length !== D) {
      throw new Error("decode: z needs " + D + " values, got " + zArray.length);
    }
    let h = Float64Array.from(zArray, Number);
    for (const l of layers) {
      if (l.type === "linear") {
        const nOut = l.shape[0], nIn = l.shape[1], W = l.W, b = l.b;
        const o = new Float64Array(nOut);
        for (let i = 0; i < nOut; i++) {
          let s = b ? b[i] : 0;
          const row = i * nIn;
          for (let j = 0; j < nIn; j++) s += W[row + j] * h[j];
          o[i] = s;
        }
        h = o;
      } else {
        for (let i = 0; i < h.length; i++) h[i] = l.f(h[i]);
      }
    }
    const out = new Float32Array(h.length);
    const sigmoid = data.output === "sigmoid";  // Bernoulli logits -> pixel probabilities
    for (let i = 0; i < h.length; i++) out[i] = sigmoid ? 1 / (1 + Math.exp(-h[i])) : h[i];
    return out;
  }

  // --- state: the full z; the plane shows its projection ---
  const P = data.plane, origin = P.origin, ax1 = P.axes[0], ax2 = P.axes[1];
  let z = Float64Array.from(data.start);
  function toPlane(v) {  // (a, b) and the distance of v from the plane
    let a = 0, b = 0;
    for (let d = 0; d < D; d++) {
      a += (v[d] - origin[d]) * ax1[d];
      b += (v[d] - origin[d]) * ax2[d];
    }
    let r2 = 0;
    for (let d = 0; d < D; d++) {
      const e = v[d] - origin[d] - a * ax1[d] - b * ax2[d];
      r2 += e * e;
    }
    return [a, b, Math.sqrt(r2)];
  }
  function fromPlane(a, b) {
    const v = new Float64Array(D);
    for (let d = 0; d < D; d++) v[d] = origin[d] + a * ax1[d] + b * ax2[d];
    return v;
  }

  // --- digit: pixel (r, c) is a 10x10 block of gray round(255 p) ---
  const digit = document.getElementById("digit");
  const dctx = digit.getContext("2d", { willReadFrequently: true });
  const img = dctx.createImageData(280, 280);
  function drawDigit(p) {
    const px = img.data;
    for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, p[28 * r + c])));
      for (let dy = 0; dy < 10; dy++) for (let dx = 0; dx < 10; dx++) {
        const k = 4 * ((10 * r + dy) * 280 + 10 * c + dx);
        px[k] = px[k + 1] = px[k + 2] = v;
        px[k + 3] = 255;
      }
    }
    dctx.putImageData(img, 0, 0);
  }

  // --- plane: dots drawn once into a background canvas, then the marker on top ---
  const plane = document.getElementById("plane");
  const S = 480, DPR = window.devicePixelRatio || 1;
  plane.width = Math.round(S * DPR); plane.height = Math.round(S * DPR);
  const [x0, x1, y0, y1] = P.extent;
  const toPx = (a, b) => [((a - x0) / (x1 - x0)) * S, ((y1 - b) / (y1 - y0)) * S];
  const fromPx = (px, py) => [x0 + (px / S) * (x1 - x0), y1 - (py / S) * (y1 - y0)];
  const bg = document.createElement("canvas");
  bg.width = plane.width; bg.height = plane.height;
  (function drawBackground() {
    const g = bg.getContext("2d");
    g.scale(DPR, DPR);
    g.fillStyle = "#fff"; g.fillRect(0, 0, S, S);
    const span = x1 - x0, raw = span / 8, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    g.font = "11px system-ui, sans-serif"; g.lineWidth = 1;
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) {
      const [px] = toPx(t, 0);
      g.strokeStyle = Math.abs(t) < step / 2 ? "#999" : "#eee";
      g.beginPath(); g.moveTo(px, 0); g.lineTo(px, S); g.stroke();
      g.fillStyle = "#888";
      if (px > 24 && px < S - 60) g.fillText(+t.toFixed(6) + "", px + 2, S - 4);
    }
    for (let t = Math.ceil(y0 / step) * step; t <= y1; t += step) {
      const [, py] = toPx(0, t);
      g.strokeStyle = Math.abs(t) < step / 2 ? "#999" : "#eee";
      g.beginPath(); g.moveTo(0, py); g.lineTo(S, py); g.stroke();
      g.fillStyle = "#888";
      if (py > 70 && py < S - 24) g.fillText(+t.toFixed(6) + "", 3, py - 3);
    }
    const xy = data.points.n ? f32(data.points.xy) : new Float32Array(0);
    const lab = data.points.n ? bytes(data.points.labels) : new Uint8Array(0);
    g.globalAlpha = 0.65;
    for (let i = 0; i < data.points.n; i++) {
      const [px, py] = toPx(xy[2 * i], xy[2 * i + 1]);
      g.fillStyle = data.colours[lab[i] % 10];
      g.beginPath(); g.arc(px, py, 2.4, 0, 2 * Math.PI); g.fill();
    }
    g.globalAlpha = 1; g.fillStyle = "#333"; g.font = "bold 12px system-ui, sans-serif";
    const ex = P.explained;
    const lx = P.labels[0] + (ex ? " (" + (100 * ex[0]).toFixed(0) + "%)" : "");
    const ly = P.labels[1] + (ex ? " (" + (100 * ex[1]).toFixed(0) + "%)" : "");
    g.fillText(lx + " \u2192", S - g.measureText(lx + " \u2192").width - 6, S - 18);
    g.save(); g.translate(18, g.measureText(ly + " \u2192").width + 6); g.rotate(-Math.PI / 2);
    g.fillText(ly + " \u2192", 0, 0); g.restore();
  })();
  const pctx = plane.getContext("2d");
  function drawPlane() {
    pctx.setTransform(1, 0, 0, 1, 0, 0);
    pctx.drawImage(bg, 0, 0);
    pctx.setTransform(DPR, 0, 0, DPR, 0, 0);
    const [a, b, r] = toPlane(z);
    const [px, py] = toPx(a, b);
    pctx.lineWidth = 2; pctx.strokeStyle = "#000";
    pctx.beginPath(); pctx.arc(px, py, 7, 0, 2 * Math.PI); pctx.stroke();
    pctx.beginPath();
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {  // crosshair
      pctx.moveTo(px + 4 * dx, py + 4 * dy);
      pctx.lineTo(px + 12 * dx, py + 12 * dy);
    }
    pctx.stroke();
    if (r <= 1e-6) {  // a filled centre: z lies on the plane; hollow: this is its projection
      pctx.fillStyle = "#000";
      pctx.beginPath(); pctx.arc(px, py, 2.5, 0, 2 * Math.PI); pctx.fill();
    }
  }

  // --- sliders: one per latent dimension ---
  const sliders = [], outputs = [];
  const box = document.getElementById("sliders");
  for (let d = 0; d < D; d++) {
    const label = document.createElement("label");
    const name = document.createElement("span");
    name.textContent = "z" + (d + 1);
    const s = document.createElement("input");
    s.type = "range"; s.id = "z" + (d + 1);
    s.min = data.sliders.lo[d]; s.max = data.sliders.hi[d]; s.step = data.sliders.step;
    const o = document.createElement("output");
    s.addEventListener("input", function () { z[d] = parseFloat(s.value); update(); });
    label.append(name, s, o); box.append(label);
    sliders.push(s); outputs.push(o);
  }

  const text = document.getElementById("zvalues");
  function update() {
    drawDigit(decode(z));
    drawPlane();
    for (let d = 0; d < D; d++) {
      sliders[d].value = z[d];  // the browser clamps to the slider's range and snaps to its step
      outputs[d].value = z[d].toFixed(2);
    }
    const [a, b, r] = toPlane(z);
    let t = "z = (" + Array.from(z, (v) => v.toFixed(3)).join(", ") + ")";
    if (D > 2) {
      t += "\n(a, b) on the plane = (" + a.toFixed(3) + ", " + b.toFixed(3) + ")";
      t += ", distance from the plane " + r.toFixed(3);
    }
    text.textContent = t;
  }

  let dragging = false;
  function moveTo(e) {
    const rect = plane.getBoundingClientRect();
    const [a, b] = fromPx(((e.clientX - rect.left - plane.clientLeft) / plane.clientWidth) * S,
                          ((e.clientY - rect.top - plane.clientTop) / plane.clientHeight) * S);
    z = fromPlane(a, b);
    update();
  }
  plane.addEventListener("pointerdown", function (e) {
    dragging = true; plane.setPointerCapture(e.pointerId); moveTo(e); e.preventDefault();
  });
  plane.addEventListener("pointermove", function (e) { if (dragging) moveTo(e); });
  plane.addEventListener("pointerup", function () { dragging = false; });
  plane.addEventListener("pointercancel", function () { dragging = false; });
  document.getElementById("reset").addEventListener("click", function () {
    z = Float64Array.from(data.start);
    update();
  });
  const prior = document.getElementById("prior");
  if (prior) prior.addEventListener("click", function () {
    for (let d = 0; d < D; d++) {  // Box-Muller
      z[d] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    }
    update();
  });

  window.vaelab = {
    latentDim: D,
    digitCanvas: "digit",
    planeCanvas: "plane",
    decode: (zArray) => decode(Array.from(zArray)),
    getLatent: () => Array.from(z),
    setLatent: function (zArray) {
      const v = Float64Array.from(zArray, Number);
      if (v.length !== D || !v.every(Number.isFinite)) {
        throw new Error("setLatent: z needs " + D + " finite values");
      }
      z = v; update();
    },
  };
  update();
})();
"""
