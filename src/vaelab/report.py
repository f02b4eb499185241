"""One self-contained HTML page per run: configuration, metrics, evaluation and figures.

The page needs nothing but itself: inline CSS, no scripts, no external fonts, the figures
embedded as ``data:image/png;base64`` URIs.  Every piece of text from the run folder goes
through ``html.escape``.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from .errors import VaelabError
from .runs import Run, atomic_write, read_in, read_json

CAPTIONS = {  # known figures first, in this order; any other PNG follows by name
    "curves.png": "Training curves: loss per epoch on the training and validation splits.",
    "reconstructions.png": "Images (odd rows) and their reconstructions (even rows): the "
    "mean of p(x|z) at the image's code (the model's codes are named in the figure's title).",
    "samples.png": "Samples: decoder means of p(x|z) at random codes z (VAE: z ~ N(0, I); "
    "AE: z from a Gaussian fitted to the training codes).",
    "latents.png": "Latent means of the test images, coloured by label, or by the factor "
    "asked with `vaelab plot --colour-by` (a PCA projection when the latent space has more "
    "than two dimensions).",
    "manifold.png": "The 2-D latent space decoded on a grid of z (VAE: at quantiles of the "
    "N(0, I) prior; AE: evenly over the 1st-99th percentiles of the fitted code Gaussian).",
    "interpolation.png": "Decodings along straight lines between the latent means of pairs "
    "of test images; the originals at both ends of each row.",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
code, .path { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.92em; }
.sub { color: #555; margin-top: 0; }
.configs { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
table { border-collapse: collapse; font-size: 0.92em; margin: 0.3em 0 1em; }
th, td { border: 1px solid #d4d4d4; padding: 0.25em 0.7em; text-align: left; }
th { background: #f1f3f5; }
tbody tr:nth-child(even) { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best { background: #fff4cc !important; font-weight: 600; }
.note { background: #eef5ff; border-left: 4px solid #4a7bd0; padding: 0.5em 0.9em;
        margin: 0.5em 0 0.8em; }
.note b { display: inline-block; min-width: 5.5em; }
.warn { background: #fff1f0; border-left-color: #c0392b; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
"""


def write_report(run_dir: str | Path, out: Path | None = None) -> Path:
    """Write the run's HTML report (default ``run_dir/report.html``) atomically; its path."""
    run = Run.load(run_dir)
    cfg = run.as_dict() | {"vaelab_version": run.version}
    out = Path(out) if out is not None else run.path / "report.html"
    page = _page(run, cfg)
    atomic_write(out, lambda p: p.write_text(page, encoding="utf-8"))
    return out


def _page(run: Run, cfg: dict[str, Any]) -> str:
    run_dir, rows = run.path, run.metrics()
    try:
        model = run.build_model()
        unit, summary = model.about.loss_unit, model.about.summary
    except (VaelabError, TypeError, ValueError):
        unit, summary = str(cfg.get("units", "per image")), str(cfg["model"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>vaelab report: {escape(str(run_dir))}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>vaelab run <span class="path">{escape(str(run_dir))}</span></h1>',
        f'<p class="sub">{escape(summary)} &middot; folder '
        f'<span class="path">{escape(str(run_dir.resolve()))}</span></p>',
        _config_section(cfg, unit),
        _metrics_section(rows, unit),
        _evaluation_section(run.evaluation_path),
        _figures_section(run.figures_dir),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


# --- sections ------------------------------------------------------------------------------


def _config_section(cfg: dict[str, Any], unit: str) -> str:
    out = ["<h2>Model and configuration</h2>"]
    line = f"<p>Model <b>{escape(str(cfg['model']))}</b>"
    if "vaelab_version" in cfg:
        line += f", trained with vaelab {escape(str(cfg['vaelab_version']))}"
    out.append(line + f". Losses are in {escape(unit)}, averaged over images.</p>")
    out.append('<div class="configs">')
    for key in ("model_config", "train", "data"):
        value = cfg.get(key)
        if isinstance(value, dict):
            out.append(f"<div><h3>{escape(key)}</h3>{_key_value_table(_flatten(value))}</div>")
    out.append("</div>")
    return "\n".join(out)


def _metrics_section(rows: list[dict[str, Any]], unit: str) -> str:
    out = ["<h2>Training metrics</h2>"]
    if not rows:
        return out[0] + "\n<p>No metrics.jsonl in this run folder.</p>"
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    order = ["epoch", *[k for k in keys if k not in ("epoch", "lr", "seconds")], "lr", "seconds"]
    keys = [k for k in order if k in keys]
    out.append(
        f'<p class="note"><b>unit</b> losses in {escape(unit)}, averaged over images. '
        "Train values are means over the epoch's batches while the weights changed; "
        "validation values are measured after the epoch. <i>seconds</i>: wall time of the "
        "epoch. The highlighted row has the lowest validation loss (the best weights).</p>"
    )
    val = [r.get("val_loss", math.inf) for r in rows]
    best = min(range(len(rows)), key=lambda i: val[i]) if rows else -1
    head = "".join(f"<th>{escape(_column_name(k))}</th>" for k in keys)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="num">{escape(_number(k, row.get(k)))}</td>' for k in keys)
        body.append(f'<tr class="best">{cells}</tr>' if i == best else f"<tr>{cells}</tr>")
    out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    return "\n".join(out)


def _evaluation_section(path: Path) -> str:
    if not path.exists():
        return ""
    out = ["<h2>Evaluation</h2>"]
    try:
        data = read_json(path, "evaluation")
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError, VaelabError) as e:
        out.append(
            f'<p class="note warn">{escape(path.name)} could not be read: {escape(str(e))}</p>'
        )
        return "\n".join(out)
    if not any(isinstance(v, dict) for v in data.values()):
        data = {"evaluation": data}  # one flat result rather than a mapping of results
    for name, result in data.items():
        out.append(f"<h3>{escape(str(name))}</h3>")
        if not isinstance(result, dict):
            out.append(_key_value_table({"value": result}))
            continue
        result = dict(result)
        scores = result.pop("disentanglement", None)
        flat = _flatten(result)
        notes = {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] in ("meaning", "unit")}
        for key, value in notes.items():
            out.append(f'<p class="note"><b>{escape(key)}</b> {escape(_text(value))}</p>')
        rest = {k: v for k, v in flat.items() if k not in notes}
        if rest:
            out.append(_key_value_table(rest))
        if isinstance(scores, dict):
            out.append(disentanglement_table(scores))
    return "\n".join(out)


def disentanglement_table(d: dict[str, Any]) -> str:
    """The disentanglement metrics of an evaluation: one row per number (in [0, 1], higher
    is better) with what it means, and the seconds and settings they took."""
    values, meaning, seconds, settings = (
        d.get(k) if isinstance(d.get(k), dict) else {}
        for k in ("values", "meaning", "seconds", "settings")
    )
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td{_num_class(v)}>{escape(_text(v))}</td>"
        f"<td>{escape(_text(meaning.get(k, '')))}</td></tr>"
        for k, v in values.items()
    )
    head = "<tr><th>metric</th><th>value (0 to 1)</th><th>meaning</th></tr>"
    extra = {f"seconds.{k}": v for k, v in seconds.items()}
    extra |= {f"settings.{k}": v for k, v in settings.items()}
    extra |= {k: d[k] for k in ("preset", "grid") if k in d}
    return (
        "<h3>disentanglement</h3>"
        f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>" + _key_value_table(extra)
    )


def _figures_section(folder: Path) -> str:
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pngs:
        return "<h2>Figures</h2>\n<p>No figures in this run folder.</p>"
    known = list(CAPTIONS)
    pngs.sort(key=lambda p: (known.index(p.name) if p.name in known else len(known), p.name))
    out = ["<h2>Figures</h2>"]
    for png in pngs:
        data = base64.b64encode(read_in(folder, png.name)).decode("ascii")  # never a link
        caption = CAPTIONS.get(png.name, "")
        if png.name.startswith("latents-"):  # one scatter per factor of data with known factors
            factor = png.stem.removeprefix("latents-")
            caption = f"Latent means of the test images, coloured by the factor {factor}."
        out.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(png.name)}">'
            f"<figcaption><code>{escape(png.name)}</code> {escape(caption)}</figcaption></figure>"
        )
    return "\n".join(out)


# --- formatting ----------------------------------------------------------------------------


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def _text(value: Any) -> str:
    """A scalar as text; lists as compact JSON, None as null."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _key_value_table(items: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td{_num_class(v)}>{escape(_text(v))}</td></tr>"
        for k, v in items.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _num_class(value: Any) -> str:
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ' class="num"' if is_num else ""


def _column_name(key: str) -> str:
    names = {"lr": "learning rate", "seconds": "seconds", "epoch": "epoch"}
    if key in names:
        return names[key]
    split, _, term = key.partition("_")
    term = {"neg_elbo": "recon + KL", "kl": "KL", "recon": "recon", "loss": "loss"}.get(term, term)
    return f"{split} {term}"


def _number(key: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, float):
        return str(value)
    if key == "lr":
        return f"{value:.3g}"
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:.2f}"
