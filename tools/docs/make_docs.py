"""Regenerate docs/tutorial.md and docs/figures/ from docs/tutorial.template.md.

Every number and figure in the tutorial comes from this script: it runs the two example
scripts, trains the other models the text discusses, measures, copies the figures and fills
the ``{{name}}`` placeholders of the template.  ``make docs`` runs it.  The measured values
are kept in docs/tutorial.values.json, so that ``--render-only`` (``make tutorial-text``)
refills an edited template in a second without rerunning anything.

    python -m tools.docs.make_docs [--epochs 10] [--work runs/docs] [--out DIR] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import vaelab
from tools import ROOT
from tools.docs.diagrams import draw_all
from tools.machine import cpu_name
from vaelab.analysis import mse_per_pixel, pca_check, pca_probes, probes
from vaelab.config import DataConfig
from vaelab.data import load_splits
from vaelab.evaluate import evaluate_run
from vaelab.models.helpers import flat_codes
from vaelab.nll import log_likelihood_estimates
from vaelab.plots import (
    all_figures,
    kl_per_unit,
    latent_scatter,
    manifold_grid,
    means_and_draws,
    sample_grid,
    style_grid,
    traversal_grid,
)
from vaelab.settings import resolve_settings
from vaelab.train import TrainConfig, train

DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"  # --out moves it (and tutorial.md beside it)


def run_example(name: str, out: Path, epochs: int) -> str:
    cmd = [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--epochs", str(epochs)]
    p = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, check=True)
    return "\n".join(line for line in p.stdout.splitlines() if not line.startswith("epoch "))


def copy_figure(run: Path, name: str, dest: str) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "figures" / name, FIGURES / dest)


def proposal_comparison(model, x: torch.Tensor, k: int) -> dict[str, float]:
    """-log p(x) estimated by importance sampling with K draws from the prior and with K from
    the encoder's q(z|x), on the same images (nats per image), and the effective sample size
    of each set of weights (median over images)."""
    torch.manual_seed(0)
    out = {}
    with torch.no_grad():
        lw_q = model.log_importance_weights(x, k)  # (K, B): log p(x, z) - log q(z|x)
        z = torch.randn(k, len(x), model.latent_dim)
        lw_p = torch.stack([model.decode(zk).log_prob(x) for zk in z])  # log p(x|z), z ~ p(z)
    for name, lw in (("prior", lw_p), ("q", lw_q)):
        lse = torch.logsumexp(lw, 0)
        out[f"nll_{name}"] = -(lse - math.log(k)).mean().item()
        out[f"ess_{name}"] = torch.exp(2 * lse - torch.logsumexp(2 * lw, 0)).median().item()
    return out


def generators_sentence(ae_q: dict, vae_q: dict) -> str:
    """The sample-quality comparison of the AE and the VAE, said as the numbers say it."""
    fd_better = "AE" if ae_q["fd"] < vae_q["fd"] else "VAE"
    prec = "VAE" if vae_q["precision"] > ae_q["precision"] else "AE"
    rec = "VAE" if vae_q["recall"] > ae_q["recall"] else "AE"
    text = (
        f"By the Frechet distance the {fd_better} is the better generator here "
        f"({ae_q['fd']:.1f} for the AE, whose codes are drawn from a Gaussian fitted to its "
        f"training codes, against {vae_q['fd']:.1f} for the VAE, whose codes come from its "
        f"prior). Precision (how many samples look like some real image) favours the {prec} "
        f"({ae_q['precision']:.2f} AE, {vae_q['precision']:.2f} VAE) and recall (how much of "
        f"the real images' variety the samples cover) the {rec} ({ae_q['recall']:.2f} AE, "
        f"{vae_q['recall']:.2f} VAE)."
    )
    if fd_better == "AE":
        text += (
            "\n\nThe VAE, built to generate, does not win on distance: a Gaussian fitted to the "
            "codes after training puts the AE's samples where its codes actually are, while the "
            "VAE draws from a prior that its codes fill only roughly (see the 2-D pictures "
            "below), and the KL term that keeps its codes close together also blurs its decoder "
            "means. What the VAE has and the AE lacks is a bound on log p(x) and a prior it was "
            "trained to match."
        )
    return text


def features_sentence(scores: dict[str, dict]) -> str:
    """What the probe table says, computed from its numbers."""
    names = {"vae": "the VAE's latent means", "ae": "the AE's codes", "pca": "PCA codes"}

    def best_worst(key: str) -> str:
        ranked = sorted(scores, key=lambda n: -scores[n][key])
        top, low = ranked[0], ranked[-1]
        return (f"{names[top]} score best ({scores[top][key]:.3f}, against "
                f"{scores[low][key]:.3f} for {names[low]})")  # fmt: skip

    best = max(s["linear_probe_acc"] for s in scores.values())
    out = (
        f"With a linear read-out {best_worst('linear_probe_acc')}; with nearest neighbours "
        f"{best_worst('knn_acc')}."
    )
    if best - scores["pca"]["linear_probe_acc"] < 0.03:
        return out + (
            " Codes learned without labels separate the digits about as well as a linear "
            "projection of the same size, not far better: what they add over PCA is a decoder "
            "and, for the VAE, a density."
        )
    return out + (
        " Codes learned without labels separate the digits clearly better than a linear "
        "projection of the same size."
    )


def render(v: dict, out: Path) -> None:
    """Fill the template's ``{{name}}`` placeholders from ``v`` and its ``[[example]]`` blocks
    from examples/, into OUT/tutorial.md."""
    template = (DOCS / "tutorial.template.md").read_text()
    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", template)) - set(v))
    if missing:
        names = ", ".join(missing)
        sys.exit(f"error: no value for {names}: run make_docs.py without --render-only")
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: str(v[m.group(1)]), template)
    for name in ("mnist_ae", "mnist_vae"):
        text = text.replace(f"[[{name}]]", (ROOT / "examples" / f"{name}.py").read_text().strip())
    (out / "tutorial.md").write_text(text)


@dataclass
class Work:
    """What every section shares: where its runs go, how long they train, the data."""

    folder: Path
    epochs: int
    gray: dict
    binary: dict
    quiet: dict = field(default_factory=lambda: {"progress": False})

    def train(self, name: str, model: str, cfg: dict, tc: TrainConfig | None = None,
              data: DataConfig | None = None) -> Path:  # fmt: skip
        out = self.folder / name
        tc = tc or TrainConfig(epochs=self.epochs)
        train(out, model, cfg, tc, data or DataConfig(), **self.quiet)
        return out

    def evaluate(self, run: Path, **kw) -> dict:
        return evaluate_run(run, save=False, **self.quiet, **kw)


def section_examples(w: Work) -> dict:
    """Sections 4 and 5: the two worked examples, run as a reader would run them; the
    features their codes make against PCA."""
    v: dict[str, object] = {
        "ae_output": run_example("mnist_ae", w.folder / "example-ae", w.epochs),
        "vae_output": run_example("mnist_vae", w.folder / "example-vae", w.epochs),
    }
    for run, prefix in [(w.folder / "example-ae", "ae"), (w.folder / "example-vae", "vae")]:
        for fig in ("reconstructions", "samples", "latents", "curves", "interpolation"):
            copy_figure(run, f"{fig}.png", f"{prefix}-{fig}.png")
    ae = w.evaluate(w.folder / "example-ae")
    vae = w.evaluate(w.folder / "example-vae")
    v |= {"ae_recon": f"{ae['recon']:.1f}", "ae_mse": f"{ae['mse_per_pixel']:.4f}"}
    v |= {k: f"{vae[k]:.1f}" for k in ("neg_elbo", "recon", "kl")}
    v["vae_active"] = vae["active_units"]
    scores = {
        "vae": probes(vaelab.load_run(w.folder / "example-vae"), w.gray),
        "ae": probes(vaelab.load_run(w.folder / "example-ae"), w.gray),
        "pca": pca_probes(w.gray, 20),
    }
    for name, sc in scores.items():
        v[f"{name}_probe"] = f"{sc['linear_probe_acc']:.3f}"
        v[f"{name}_knn"] = f"{sc['knn_acc']:.3f}"
    v["features_sentence"] = features_sentence(scores)
    return v


CONV_AE_EPOCHS = 3  # the convolutional AE and the MLP AE beside it (section 4)


def section_conv_ae(w: Work) -> dict:
    """Sections 1 and 4: a convolutional encoder with an MLP decoder, beside the MLP AE of the
    example, both trained CONV_AE_EPOCHS epochs: reconstruction, parameters, linear probe, and
    the conv AE's figures."""
    nets = {
        "conv": {"encoder": "conv", "decoder": "mlp", "hidden": [256], "latent_dim": 20},
        "mlp": {"encoder": "mlp", "decoder": "mlp", "hidden": [400], "latent_dim": 20},
    }
    v: dict[str, object] = {"conv_epochs": CONV_AE_EPOCHS}
    for name, cfg in nets.items():
        out = w.train(f"{name}-ae-{CONV_AE_EPOCHS}", "ae", cfg, TrainConfig(epochs=CONV_AE_EPOCHS))
        model = vaelab.load_run(out)
        r = w.evaluate(out)
        v |= {
            f"{name}_recon": f"{r['recon']:.1f}",
            f"{name}_mse": f"{r['mse_per_pixel']:.4f}",
            f"{name}_params": f"{sum(p.numel() for p in model.parameters()):,}",
            f"{name}_ae_probe": f"{probes(model, w.gray)['linear_probe_acc']:.3f}",
        }
        if name == "conv":
            all_figures(out)
            for fig in ("reconstructions", "latents"):
                copy_figure(out, f"{fig}.png", f"conv-ae-{fig}.png")
    return v


def section_architectures(w: Work) -> dict:
    """Section 1: a linear AE against PCA."""
    cfg = {"encoder": "linear", "decoder": "linear", "likelihood": "gaussian", "latent_dim": 16}
    tc = TrainConfig(epochs=50, batch_size=128, lr=1e-2, lr_schedule="cosine")
    pc = pca_check(vaelab.load_run(w.train("linear-ae", "ae", cfg, tc)), w.gray)
    return {
        "pca_k": pc["k"],
        "lin_mse": f"{pc['ae_train_mse']:.5f}",
        "pca_mse": f"{pc['pca_train_mse']:.5f}",
        "pca_ratio": f"{pc['train_mse_ratio']:.4f}",
        "pca_angle": f"{pc['max_angle_deg']:.1f}",
        "pca_explained": f"{100 * pc['explained_variance']:.1f}",
    }


def section_two_d(w: Work) -> dict:
    """A 2-D VAE: the whole latent space in one picture."""
    two = w.train("vae-2d", "vae", {"latent_dim": 2})
    all_figures(two)
    copy_figure(two, "manifold.png", "vae2d-manifold.png")
    copy_figure(two, "latents.png", "vae2d-latents.png")
    return {}


def section_likelihood(w: Work) -> dict:
    """Section 3: a VAE on dynamically binarized MNIST, the importance-sampled bound against
    K, why an encoder (the prior as proposal), why samples are blurry."""
    binv = w.train("vae-binarized", "vae", {}, data=DataConfig(binarize="dynamic"))
    rb = w.evaluate(binv)
    v: dict[str, object] = {"bin_elbo": f"{rb['neg_elbo']:.2f}", "bin_active": rb["active_units"]}
    model = vaelab.load_run(binv)
    x = w.binary["test"].x[:1000]
    torch.manual_seed(0)
    with torch.no_grad():
        sub_elbo = model.terms(x, w.binary["test"].y[:1000])["neg_elbo"].mean().item()
    rows = []
    for k in (1, 10, 100, 1000):
        torch.manual_seed(0)
        nll = -log_likelihood_estimates(model, x, k, progress=False).mean().item()
        rows.append(f"| {k} | {nll:.2f} |")
        if k == 1:
            v["k1_diff"] = f"{nll - sub_elbo:+.2f}"
    v["iwae_table"] = "\n".join(rows)
    v["sub_elbo"] = f"{sub_elbo:.2f}"
    return v


def section_beta(w: Work) -> dict:
    """beta > 1 switches latent units off."""
    rbeta = w.evaluate(w.train("vae-beta4", "vae", {"beta": 4.0}))
    return {
        "beta_active": rbeta["active_units"],
        "beta_kl": f"{rbeta['kl']:.1f}",
        "beta_recon": f"{rbeta['recon']:.1f}",
    }


def section_encoder_and_blur(w: Work) -> dict:
    """Why an encoder at all (the prior as proposal against q(z|x), on the binarized VAE), and
    why samples are blurry (decoder means beside draws from p(x|z))."""
    model = vaelab.load_run(w.folder / "vae-binarized")
    pc = proposal_comparison(model, w.binary["test"].x[:100], 1000)
    means_and_draws(model, FIGURES / "vae-means-draws.png", n=10, draws=3)
    return {
        "prop_prior": f"{pc['nll_prior']:.1f}",
        "prop_q": f"{pc['nll_q']:.1f}",
        "ess_prior": f"{pc['ess_prior']:.2f}",
        "ess_q": f"{pc['ess_q']:.0f}",
    }


COLLAPSE_IMAGES = 1000  # the first test images of the collapse table and its figure


def section_collapse(w: Work) -> dict:
    """Posterior collapse on the paper's net: KL per unit, and what warm-up and free bits
    change."""
    paper = resolve_settings({"protocol": "paper"})  # as `vaelab train --protocol paper`
    burda, paper_data = paper.model_config, paper.data
    collapse = {}
    warm = max(1, w.epochs // 2)
    variants = {
        "plain": ({}, {}),
        f"KL warm-up ({warm} epochs)": ({}, {"kl_warmup": warm}),
        "free bits (0.25 nats per unit)": ({"free_bits": 0.25}, {}),
    }
    for i, (name, (mcfg, tcfg)) in enumerate(variants.items()):
        cfg = TrainConfig(epochs=w.epochs, batch_size=100, lr=3e-3, lr_schedule="cosine",
                          **tcfg)  # fmt: skip
        out = w.train(f"collapse-{i}", "vae", burda | mcfg, cfg, paper_data)
        r = w.evaluate(out, nll_samples=1000, limit=COLLAPSE_IMAGES)
        collapse[name] = (vaelab.load_run(out), r)
    x = w.binary["test"].x[:COLLAPSE_IMAGES]  # the table's images: its KL and the legend's agree
    kl_per_unit({n: m for n, (m, _) in collapse.items()}, x, FIGURES / "kl-per-unit.png")
    table = "\n".join(
        f"| {n} | {r['active_units']} of 50 | {r['kl']:.1f} | {r['neg_elbo']:.2f} | "
        f"{r['nll']:.2f} |"
        for n, (_, r) in collapse.items()
    )
    return {"collapse_table": table, "kl_legend_images": f"{len(x):,}"}


def section_generators(w: Work) -> dict:
    """AE and VAE as generators: sample quality."""
    ae_q = w.evaluate(w.folder / "example-ae", quality=True)["sample_quality"]
    vae_q = w.evaluate(w.folder / "example-vae", quality=True)["sample_quality"]
    v = {f"ae_{k}": f"{ae_q[k]:.2f}" for k in ("fd", "precision", "recall")}
    v |= {f"vae_{k}": f"{vae_q[k]:.2f}" for k in ("fd", "precision", "recall")}
    v["generators_sentence"] = generators_sentence(ae_q, vae_q)
    return v


def section_latent_pictures(w: Work) -> dict:
    """Latent traversals of the 20-D VAE; the 2-D VAE's codes against its prior."""
    gray = w.gray["test"]
    ex = vaelab.load_run(w.folder / "example-vae")
    traversal_grid(ex, gray.x[:2000], FIGURES / "vae-traversals.png", units=8)
    two_model = vaelab.load_run(w.folder / "vae-2d")
    codes = flat_codes(two_model, gray.x)
    latent_scatter(codes, gray.y, FIGURES / "vae2d-latents.png",
                   title_extra="dashed: circles of the N(0, I) prior",
                   prior_circles=True)  # fmt: skip
    manifold_grid(two_model, FIGURES / "vae2d-manifold-codes.png", codes=codes)
    radius = codes.norm(dim=1)
    return {
        "codes_outside2": f"{100 * (radius > 2).float().mean().item():.0f}",
        "codes_sd": ", ".join(f"{s:.2f}" for s in codes.std(0).tolist()),
    }


def section_cvae(w: Work) -> dict:
    """Section 6: the conditional VAE (Doersch section 4)."""
    cv = w.train("cvae", "cvae", {})
    cvm = vaelab.load_run(cv)
    sample_grid(cvm, FIGURES / "cvae-samples.png", ncol=10)
    style_grid(cvm, w.gray["test"].x, w.gray["test"].y, FIGURES / "cvae-styles.png")
    return {"cvae_elbo": f"{w.evaluate(cv)['neg_elbo']:.1f}", "cvae_dim": cvm.latent_dim}


def section_scale(w: Work) -> dict:
    """The Gaussian decoder's scale, and the continuous Bernoulli."""
    test = w.gray["test"].x
    rows = []
    for sigma in (0.05, 0.2, 1.0):
        out = w.train(f"gauss-{sigma:g}", "vae", {"likelihood": "gaussian", "sigma": sigma})
        r = w.evaluate(out)
        mse = mse_per_pixel(vaelab.load_run(out).reconstruct, test)
        rows.append(f"| Gaussian, σ = {sigma:g} (fixed) | {mse:.4f} | "
                    f"{r['kl']:.1f} | {r['active_units']} of 20 |")  # fmt: skip
    cb = w.train("cbernoulli", "vae", {"likelihood": "cbernoulli"})
    r = w.evaluate(cb)
    mse = mse_per_pixel(vaelab.load_run(cb).reconstruct, test)
    rows.append(f"| continuous Bernoulli | {mse:.4f} | {r['kl']:.1f} | "
                f"{r['active_units']} of 20 |")  # fmt: skip
    return {"scale_table": "\n".join(rows), "cb_elbo": f"{r['neg_elbo']:.1f}"}


# In this order (later sections read the runs of earlier ones).
SECTIONS = [
    section_examples,
    section_conv_ae,
    section_architectures,
    section_two_d,
    section_likelihood,
    section_beta,
    section_encoder_and_blur,
    section_collapse,
    section_generators,
    section_latent_pictures,
    section_cvae,
    section_scale,
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work", default=str(ROOT / "runs" / "docs"))
    ap.add_argument("--out", help="write tutorial.md and figures/ here instead of docs/")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="refill the template from the saved values (tutorial.values.json); run nothing",
    )
    args = ap.parse_args()
    global FIGURES
    if args.out:
        FIGURES = Path(args.out) / "figures"
    if args.render_only:
        saved = FIGURES.parent / "tutorial.values.json"
        if not saved.exists():
            sys.exit(f"error: {saved} does not exist: run make_docs.py without --render-only first")
        render(json.loads(saved.read_text()), FIGURES.parent)
        print(f"wrote {FIGURES.parent / 'tutorial.md'} from {saved}")
        return
    shutil.rmtree(args.work, ignore_errors=True)
    t0 = time.perf_counter()
    vaelab_log = logging.getLogger("vaelab")
    if not vaelab_log.handlers:  # messages while loading the data (a download, if any)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        vaelab_log.addHandler(handler)
        vaelab_log.propagate = False
    vaelab_log.setLevel(logging.INFO)
    gray = load_splits(DataConfig())
    binary = load_splits(DataConfig(binarize="dynamic"))
    vaelab_log.setLevel(logging.ERROR)  # the runs below are quiet
    w = Work(Path(args.work), args.epochs, gray, binary)

    draw_all(FIGURES)  # the AE and VAE diagrams
    v: dict[str, object] = {"epochs": args.epochs}
    for section in SECTIONS:
        t = time.perf_counter()
        v |= section(w)
        print(f"{section.__name__}: {time.perf_counter() - t:.0f} s", flush=True)

    minutes = (time.perf_counter() - t0) / 60
    v["machine"] = f"{cpu_name()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    v["minutes"] = f"{math.ceil(minutes)}"
    values = FIGURES.parent / "tutorial.values.json"
    values.write_text(json.dumps({k: str(x) for k, x in v.items()}, indent=1, ensure_ascii=False))
    render(v, FIGURES.parent)
    print(f"wrote {FIGURES.parent / 'tutorial.md'} and {FIGURES}/ in {minutes:.1f} minutes")


if __name__ == "__main__":
    main()
