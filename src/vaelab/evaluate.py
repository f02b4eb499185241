"""Evaluation of a trained run on a data split, every number with its unit and meaning.

Results are printed and also kept in ``RUN/evaluation.json`` (one entry per split; an evaluation
of the first N images only, ``--limit N``, under ``split[:N]`` beside it), which
``vaelab report`` shows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from . import data as data_layer
from . import distributed, gaps
from .ais import AISSettings, ais_log_likelihood, bdmc
from .analysis import active_units, mse_per_pixel, pca_probes
from .analysis import probes as latent_probes
from .config import DataConfig
from .data import Split, binarize_once, dataset_entry
from .devices import pick_device
from .disentangle import DisentangleSettings
from .disentangle.suite import disentanglement
from .errors import VaelabError
from .eval_config import PAPER_K, SPLITS, EvalConfig  # noqa: F401  (re-exported)
from .gaps import GapSettings
from .models.abilities import Conditional, Diagnostics, HasBound
from .nll import EstimateSettings, diagnose, importance_sampled
from .paired import fingerprint, save_per_image
from .precision import check_precision
from .quality import sample_quality
from .runs import Run
from .scores import evaluate_loss, split_diagnostics

logger = logging.getLogger(__name__)

# Where the importance-sampled estimate is saved, by what kind of number it is.
ESTIMATE_KEYS = {"likelihood": "nll", "density": "nll_density", "loss": "importance_sampled_loss"}


# The error bars of the estimate that an evaluation keeps (``nll.error_bar_summary``).
ERROR_BARS = (
    *("nll_mc_se_groups", "nll_mc_se_image", "nll_mc_se_mean", "nll_bias_k_gap"),
    *("nll_jackknife", "khat_median", "khat_max", "khat_limit", "khat_share_over"),
)


def data_protocol(model, data: DataConfig) -> dict[str, Any]:
    """What the reported numbers mean, given the model and the pixels it was scored on."""
    return {"pixels": data.describe(), **model.numbers_mean(data.binary)}


def check_paper_protocol(model, data: DataConfig, run_dir) -> None:
    """Published MNIST likelihoods: an unconditional latent-variable model whose numbers are
    log-probabilities of dynamically binarized pixels."""
    problems = []
    if not isinstance(model, HasBound):
        problems.append(f"a {model.about.label} has no likelihood")
    elif isinstance(model, Conditional):
        problems.append(f"a {model.about.label} models p(x|y), not p(x)")
    if not dataset_entry(data.dataset).digits:
        problems.append(f"its data set is {data.dataset}, not MNIST")
    if data.binarize != "dynamic":
        problems.append("pixels are grayscale, not dynamically binarized")
    elif model.numbers_mean(True)["kind"] != "likelihood":
        problems.append(f"its {model.cfg.likelihood} decoder gives no probability of binary pixels")
    if problems:
        raise VaelabError(
            f"{run_dir} was not trained under the paper protocol ({'; '.join(problems)}); "
            "train with `vaelab train --protocol paper`"
        )


def evaluate_run(
    run_dir: str | Path,
    cfg: EvalConfig | None = None,
    *,
    progress: bool = True,
    save: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Evaluate a run as ``cfg`` says (an :class:`EvalConfig`; ``settings`` are its fields,
    alone or over ``cfg``: ``evaluate_run(run, nll_samples=100, limit=500)``): the loss terms
    and active units, and on request the importance-sampled likelihood, the latent probes and
    sample quality.  ``progress``: a progress bar for the likelihood estimate; ``save``: keep
    the result in RUN/evaluation.json (rank 0 of a group)."""
    if cfg is not None and not isinstance(cfg, EvalConfig):
        raise TypeError(f"cfg must be an EvalConfig, got {cfg!r} (a split is split=...)")
    cfg = replace(cfg, **settings) if cfg is not None else EvalConfig(**settings)
    dev = distributed.current().device(pick_device(cfg.device))
    check_precision(cfg.precision, dev)
    run = Run.load(run_dir)
    model = run.model(cfg.which, dev)
    if cfg.protocol == "paper":
        check_paper_protocol(model, run.data, run_dir)
    grid = known_factors(model, run.data, run_dir) if cfg.disentanglement else None
    splits = run.splits()
    data = splits[cfg.split].head(cfg.limit)
    torch.manual_seed(cfg.seed)
    terms = evaluate_loss(model, data, batch_size=cfg.batch_size, share=False)
    meaning = data_protocol(model, run.data)
    result = _header(str(run_dir), run, model, data, cfg) | meaning
    result |= {"seed": cfg.seed, "has_elbo": isinstance(model, HasBound)}
    x, y = data.x.to(dev), data.y.to(dev)
    result |= _loss_terms(model, terms, x, y, cfg.batch_size)
    if isinstance(model, Diagnostics):
        result["diagnostics"] = split_diagnostics(model, data)
        result["diagnostics_about"] = dict(model.diagnostics_about)
    est = None
    if cfg.samples is not None:
        part, est = _likelihood(model, x, y, cfg, meaning["kind"], progress)
        result |= part
    if cfg.gaps:
        result |= _gaps(model, x, y if isinstance(model, Conditional) else None, cfg, est)
    if cfg.ais or cfg.bdmc:
        result |= _annealed(model, x, cfg, meaning["kind"])
    if cfg.probes:
        result |= _probes(model, splits, run.data)
    if cfg.quality:
        result |= _quality(model, splits, run.data, cfg.seed)
    if grid is not None:
        result["disentanglement"] = disentanglement_scores(model, grid, cfg, dev)
    if save and distributed.current().is_main:
        whole = len(data) == len(splits[cfg.split])
        key = evaluation_key(cfg, None if whole else len(data))
        run.save_evaluation(result, key)
        if est is not None:
            meta = {"images": fingerprint(x), "kind": meaning["kind"], "k": est.k}
            save_per_image(run, key, est.per_image(), meta)
    return result


def known_factors(model, data: DataConfig, run_dir):
    """The factor grid of the run's data, or a one-line refusal: data without known factors,
    a model whose code needs labels, or images of another shape than the model's."""
    grid = data_layer.ground_truth(data)
    if grid is None:
        raise VaelabError(
            f"{run_dir}: its data ({data.describe()}) have no known factors; --disentanglement "
            "needs data made from a factor grid (docs/disentanglement.md)"
        )
    if isinstance(model, Conditional):
        raise VaelabError(f"{run_dir}: a {model.about.label}'s code needs labels; the "
                          "disentanglement metrics encode images alone")  # fmt: skip
    if tuple(grid.shape) != tuple(model.cfg.image_shape):
        raise VaelabError(
            f"{run_dir}: the factor grid's images are {tuple(grid.shape)}, the model's "
            f"{tuple(model.cfg.image_shape)}"
        )
    return grid


def disentanglement_scores(model, grid, cfg: EvalConfig, dev) -> dict[str, Any]:
    """The six metrics of the model's codes (``Model.code``: the mean of q(z|x) for the VAEs)
    of the grid's images, encoded ``batch_size`` at a time without gradients."""

    @torch.no_grad()
    def represent(images):
        x = torch.from_numpy(images).to(dev).to(torch.float32) / 255.0
        return model.code(x).reshape(len(x), -1).double().cpu().numpy()

    preset = cfg.disentanglement_preset
    settings = DisentangleSettings.preset(preset, seed=cfg.seed, batch=cfg.batch_size)
    model.eval()
    out = disentanglement(grid, represent, settings)
    return out | {"preset": cfg.disentanglement_preset, "grid": grid.title or type(grid).__name__}


def evaluation_key(cfg: EvalConfig, images: int | None = None) -> str:
    """Where an evaluation is kept in RUN/evaluation.json: under its split, or, for the first
    ``images`` of it only (``--limit``) or with 16-bit or tf32 products, beside the whole
    split's fp32 one (``test[:500]``, ``test@bf16``), never over it."""
    key = cfg.split if images is None else f"{cfg.split}[:{images}]"
    return key if cfg.precision == "fp32" else f"{key}@{cfg.precision}"


def _header(run_dir: str, run: Run, model, data: Split, cfg: EvalConfig) -> dict[str, Any]:
    """What was evaluated: the run, its model and weights, the images."""
    return {
        "run": run_dir,
        "model": run.model_name,
        "label": model.about.label,
        "describe": model.about.summary,
        "weights": cfg.which,
        "split": cfg.split,
        "n_images": len(data),
        "latent_dim": model.latent_dim,
        "unit": model.about.loss_unit + ", mean over images",
    }


def _loss_terms(model, terms: dict, x, y, batch_size: int) -> dict[str, Any]:
    """The loss terms to report, and active units (a model with an ELBO) or the mean squared
    error per pixel (one without)."""
    if not isinstance(model, HasBound):
        return {
            "recon": terms["recon"],
            "mse_per_pixel": mse_per_pixel(model.reconstruct, x, batch_size),
        }
    out = {"neg_elbo": terms["neg_elbo"], "recon": terms["recon"], "kl": terms["kl"]}
    if abs(terms["loss"] - terms["neg_elbo"]) > 1e-9:
        out["training_loss"] = terms["loss"]
    shown = {"loss", "neg_elbo", "recon", "kl"}
    about = dict(model.about.loss_parts)
    other = {k: v for k, v in terms.items() if k not in shown and k in about}
    if other:  # the model's own parts (a total correlation, an MMD), with what they are
        out |= {"other_terms": other, "other_terms_about": {k: about[k] for k in other}}
    au = active_units(model, x, y)
    return out | {"active_units": au["active_units"], "active_threshold": au["threshold"]}


def _probes(model, splits: dict[str, Split], data: DataConfig) -> dict[str, Any]:
    """Linear-probe and k-NN accuracy of the latent means and of PCA codes; skipped, with the
    reason, when the images have no labels."""
    if not splits["train"].labelled:
        why = "the probes predict labels, and these images have none"
        logger.warning(f"probes skipped: {why}")
        return {"probes_skipped": why}
    fit_on = probe_splits(splits, data)
    return {
        "probes": latent_probes(model, fit_on),
        "probes_pca": pca_probes(fit_on, model.latent_dim),
    }


def _quality(model, splits: dict[str, Split], data: DataConfig, seed: int) -> dict[str, Any]:
    """Sample quality in the features of a classifier of MNIST digits; skipped, with the
    reason, on other data."""
    why = None
    if data.data is not None:
        why = f"scored by a classifier of MNIST digits; this run's images are {data.data}"
    elif not dataset_entry(data.dataset).digits:
        why = f"scored by a classifier of MNIST digits; this run's data set is {data.dataset}"
    if why:
        logger.warning(f"sample quality skipped: {why}")
        return {"sample_quality_skipped": why}
    return {"sample_quality": sample_quality(model, splits["test"].x, seed=seed)}


def probe_splits(splits: dict[str, Split], data: DataConfig) -> dict[str, Split]:
    """The splits the probes fit and score on: pixels of one kind.  With binarized data the
    training images (kept grayscale for dynamic binarization) are binarized once, with seed
    ``binarize_seed + 1``, like the test images they are scored against."""
    if not data.binary:
        return splits
    train = splits["train"]
    return splits | {"train": replace(train, pixels=binarize_once(train.x, data.binarize_seed + 1))}


def _likelihood(model, x, y, cfg: EvalConfig, kind: str, progress: bool):
    """The K-sample estimate on ``x``: its summary and the per-image ``nll.Estimates``; in a
    group of processes (torchrun) each scores its share of the images and the per-image
    estimates are gathered (the same numbers)."""
    t0 = time.perf_counter()
    how = EstimateSettings(compile=cfg.compile_choice, precision=cfg.precision)
    k = cfg.samples
    est = importance_sampled(model, x, k, y=y, seed=cfg.seed, progress=progress, settings=how)
    s = diagnose(est, dims=x.shape[1])
    seconds = time.perf_counter() - t0
    if kind == "loss":
        logger.warning(
            "warning: a Bernoulli decoder on grayscale pixels has no likelihood; the "
            "importance-sampled number is reported as a loss ('importance_sampled_loss')"
        )
    key = ESTIMATE_KEYS[kind]
    out = {key: s["nll"], f"{key}_sem": s["nll_sem"], "nll_k": k, "nll_seconds": seconds}
    out["nll_processes"] = distributed.current().world
    out["nll_precision"] = cfg.precision
    out |= {n: s[n] for n in ("nll_k_sub", "nll_k_gap", "ess_median", "ess_p5")}
    out |= {n: v for n, v in s.items() if n in ERROR_BARS}
    if kind in ("likelihood", "density"):
        out["bits_per_dim"] = s["bits_per_dim"]
    return out, est


def _gaps(model, x, y, cfg: EvalConfig, est) -> dict[str, Any]:
    """The amortisation and approximation gaps (``gaps.py``) on ``x``, with how q* was found,
    the seconds they took, and the per-image ELBOs added to ``est`` (kept in per_image.npz)."""
    t0 = time.perf_counter()
    how = GapSettings(cfg.gap_steps, cfg.gap_lr, cfg.gap_samples, cfg.gap_eval_samples,
                      seed=cfg.seed)  # fmt: skip
    elbo_phi, elbo_star = gaps.elbos(model, x, y, how)
    est.elbo_q_phi, est.elbo_q_star = elbo_phi, elbo_star
    out = gaps.summary(est.log_px, elbo_phi, elbo_star)
    settings = {"steps": how.steps, "lr": how.lr, "samples": how.samples}
    return {"gaps": out | {"q_star": settings, "eval_samples": how.eval_samples,
                           "seconds": time.perf_counter() - t0}}  # fmt: skip


def gap_lines(r: dict[str, Any]) -> list[str]:
    """The inference gap and its two parts, mean +- s.d. over images, each said for what it is."""
    g = r.get("gaps")
    if not isinstance(g, dict):
        return []
    q = g["q_star"]
    lines = [
        f"  inference gaps (Cremer et al. 2018), nats per image, mean +- s.d. over images "
        f"(s.e. of the mean); q*(z|x): a Gaussian per image, {q['steps']} Adam steps at lr "
        f"{q['lr']:g} from the encoder's, {q['samples']} draws per step; ELBOs with "
        f"{g['eval_samples']} draws; {g['seconds']:.1f} s",
        f"    ELBO(q_phi) {g['elbo_q_phi']:.3f}, ELBO(q*) {g['elbo_q_star']:.3f} (means over "
        "images)",
    ]
    about = {
        "gap_amortisation": "amortisation  ELBO(q*) - ELBO(q_phi): what the encoder misses",
        "gap_approximation": "approximation log p(x) - ELBO(q*): what a Gaussian q costs "
        "(log p(x): the IS estimate, a lower bound, so this is understated)",
        "gap_inference": "inference     log p(x) - ELBO(q_phi): the two together",
    }
    for name, what in about.items():
        lines.append(
            f"    {g[name]:8.3f} +- {g[name + '_sd']:.3f} ({g[name + '_sem']:.3f})  {what}"
        )
    return lines


def ais_settings(cfg: EvalConfig) -> AISSettings:
    """The AIS settings of an evaluation (its ``ais_*`` fields and seed)."""
    return AISSettings(
        steps=cfg.ais_steps,
        chains=cfg.ais_chains,
        leapfrog=cfg.ais_leapfrog,
        step_size=cfg.ais_step_size,
        target_accept=cfg.ais_accept,
        seed=cfg.seed,
    )


def _annealed(model, x, cfg: EvalConfig, kind: str) -> dict[str, Any]:
    """The AIS lower bound on the images (``ais``) and the BDMC bounds on ``bdmc`` images
    simulated from the model, nats per image, with the settings and times."""
    if kind == "loss":
        raise VaelabError(
            "AIS bounds a log-likelihood or log-density; a Bernoulli decoder on grayscale "
            "pixels has neither"
        )
    s = ais_settings(cfg)
    out: dict[str, Any] = {
        "ais_settings": {
            "steps": s.steps, "chains": s.chains, "leapfrog": s.leapfrog,
            "step_size": s.step_size, "target_accept": s.target_accept, "seed": s.seed,
            "schedule": "sigmoid", "start": "prior",
        }
    }  # fmt: skip
    if cfg.ais:
        r = ais_log_likelihood(model, x, s)
        key = ESTIMATE_KEYS[kind] + "_ais"  # nll_ais, or nll_density_ais for a density
        out |= {
            key: -r.log_px.mean().item(),
            "nll_ais_sem": (r.log_px.std().item() / len(x) ** 0.5) if len(x) > 1 else None,
            "ais_seconds": r.seconds,
            "ais_acceptance": r.acceptance,
        }
    if cfg.bdmc:
        out["bdmc"] = bdmc(model, cfg.bdmc, s)
    return out


def format_result(r: dict[str, Any]) -> str:
    """The evaluation ``r`` as lines of text, each number with its unit and meaning."""
    lines = [
        f"run {r['run']}: {r['model']} ({r['weights']} weights), {r['split']} split, "
        f"{r['n_images']} images, {r['pixels']}",
    ]
    if r.get("has_elbo", "neg_elbo" in r):
        lines += _elbo_lines(r) + _estimate_lines(r) + ais_lines(r)
        lines.append(
            f"  active units     {r['active_units']:>6d} of {r['latent_dim']}"
            f"  (Var_x E[z_u|x] > {r['active_threshold']})"
        )
    else:
        lines += [
            f"  reconstruction   {r['recon']:10.3f}  {r['unit']}",
            f"  mean squared error per pixel {r['mse_per_pixel']:.5f}",
        ]
    lines += (
        gap_lines(r) + _diagnostic_lines(r) + _probe_and_quality_lines(r) + disentanglement_lines(r)
    )
    lines.append(f"  meaning: {r['meaning']}")
    return "\n".join(lines)


def _elbo_lines(r: dict[str, Any]) -> list[str]:
    if r["is_likelihood"]:
        total, recon = "negative ELBO", "-log p(x|z), one z ~ q(z|x) per image"
    else:  # grayscale Bernoulli or continuous Gaussian: say what is summed, claim no NLL
        total, recon = "loss (recon + KL)", "reconstruction term, one z ~ q(z|x) per image"
    lines = [
        f"  {total:<17}{r['neg_elbo']:10.3f}  nats per image (summed over pixels)",
        f"    reconstruction {r['recon']:10.3f}  {recon}",
        f"    KL             {r['kl']:10.3f}  KL(q(z|x) || p(z))",
    ]
    if "training_loss" in r:
        lines.append(
            f"  training loss    {r['training_loss']:10.3f}  what training minimised (the "
            "-ELBO reweighted or with other terms)"
        )
    about = r.get("other_terms_about", {})
    lines += [
        f"    {name:<15}{value:10.3f}  {about.get(name, '')}".rstrip()
        for name, value in r.get("other_terms", {}).items()
    ]
    return lines


def _estimate_lines(r: dict[str, Any]) -> list[str]:
    """The importance-sampled number (an NLL, a density's NLL or a loss) and its diagnostics."""
    k, lines = r.get("nll_k"), []
    if "nll" in r:
        lines.append(
            f"  NLL (K={k})      {r['nll']:10.3f}  nats per image (+- {r['nll_sem']:.3f} "
            f"s.e.), {r['bits_per_dim']:.4f} bits/dim: importance-sampled -log p(x)"
        )
    if "nll_density" in r:
        lines.append(
            f"  NLL (K={k})      {r['nll_density']:10.3f}  nats per image, "
            f"{r['bits_per_dim']:.4f} bits/dim: -log density of pixels in [0, 1], not "
            "comparable to binarized-MNIST NLLs or 8-bit bits/dim"
        )
    if "importance_sampled_loss" in r:
        lines.append(
            f"  IS loss (K={k})  {r['importance_sampled_loss']:10.3f}  per image: the "
            "importance-sampled bound on grayscale pixels, a loss, not an NLL"
        )
    if "nll_k_gap" in r:
        lines += [
            f"    s.e. is the spread over images / sqrt(N), not Monte Carlo error; with the "
            f"first {r['nll_k_sub']} samples the estimate is {r['nll_k_gap']:+.3f} nats "
            f"higher (convergence in K)",
            f"    effective sample size of the {k} weights: median {r['ess_median']:.1f}, "
            f"5th percentile {r['ess_p5']:.1f} over images",
        ]
    lines += error_bar_lines(r)
    if r.get("nll_precision", "fp32") != "fp32":
        lines.append(f"    the networks' products in {r['nll_precision']} (log-probs in fp32)")
    return lines


def error_bar_lines(r: dict[str, Any]) -> list[str]:
    """The Monte Carlo error, the bias estimates and the Pareto k-hat, each said for what it
    is; a warning line when images have k-hat above the limit."""
    if "nll_mc_se_image" not in r:
        return []
    lines = [
        f"    Monte Carlo s.e. of one image's estimate {r['nll_mc_se_image']:.4f} nats (mean "
        f"over images; from {r['nll_mc_se_groups']} independent groups of the draws), of the "
        f"mean {r['nll_mc_se_mean']:.4f} nats",
        f"    bias of the NLL estimate from the K/5-vs-K gap (if bias ~ 1/K): "
        f"{r['nll_bias_k_gap']:+.4f} nats (the NLL is too high by about this)",
        f"    jackknife-corrected NLL (Nowozin 2018, removes the 1/K bias; not a bound) "
        f"{r['nll_jackknife']:.3f} nats per image",
        f"    Pareto k-hat of the weights (PSIS): median {r['khat_median']:.2f}, largest "
        f"{r['khat_max']:.2f}; {100 * r['khat_share_over']:.1f}% of images above "
        f"{r['khat_limit']}",
    ]
    if r["khat_share_over"] > 0:
        lines.append(
            f"    WARNING: {100 * r['khat_share_over']:.1f}% of images have k-hat > "
            f"{r['khat_limit']}: their weights are too heavy-tailed for the estimate (its ESS "
            "and Monte Carlo s.e. too) to be trusted (Vehtari et al.)"
        )
    return lines


def ais_lines(r: dict[str, Any]) -> list[str]:
    """The AIS bound and the BDMC bounds, each with its unit and meaning."""
    if "ais_settings" not in r:
        return []
    a = r["ais_settings"]
    how = (
        f"T={a['steps']} sigmoid schedule from the prior, {a['chains']} chains, "
        f"{a['leapfrog']} leapfrog steps"
    )
    lines = []
    for key, what in (("nll", "log p(x)"), ("nll_density", "log density of [0, 1] pixels")):
        if f"{key}_ais" not in r:
            continue
        value, sem = r[f"{key}_ais"], r.get("nll_ais_sem")
        sem_text = f" (+- {sem:.3f} s.e.)" if sem is not None else ""
        lines.append(
            f"  NLL (AIS)        {value:10.3f}  nats per image{sem_text}: minus the AIS lower "
            f"bound on {what} ({how}; {r['ais_seconds']:.1f} s, HMC acceptance "
            f"{r['ais_acceptance']:.2f})"
        )
        if key in r:
            lines.append(
                f"    IS - AIS       {r[key] - value:+10.3f}  nats per image: how much tighter "
                "AIS is than the importance-sampled estimate"
            )
    if "bdmc" in r:
        b = r["bdmc"]
        lines.append(
            f"  BDMC gap         {b['bdmc_gap']:10.3f}  nats per image (+- {b['bdmc_gap_sem']:.3f}"
            f" s.e.): reverse minus forward AIS on {b['bdmc_images']} images simulated from "
            f"the model (upper {b['bdmc_upper']:.3f}, lower {b['bdmc_lower']:.3f} log p(x); "
            f"{b['bdmc_seconds_forward'] + b['bdmc_seconds_reverse']:.1f} s)"
        )
    return lines


def _diagnostic_lines(r: dict[str, Any]) -> list[str]:
    """A model's own numbers about the split (``abilities.Diagnostics``), each with its
    meaning."""
    about = r.get("diagnostics_about", {})
    return [
        f"  {name:<17}{value:10.3f}  {about.get(name, '')}".rstrip()
        for name, value in r.get("diagnostics", {}).items()
    ]


def _probe_and_quality_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("probes", "probes_pca"):
        if name in r:
            p = r[name]
            who = "latent means" if name == "probes" else "PCA codes (same size)"
            lines.append(
                f"  {who}: linear probe accuracy {p['linear_probe_acc']:.4f}, "
                f"{p['k']}-NN accuracy {p['knn_acc']:.4f} (test labels)"
            )
    for name in ("probes_skipped", "sample_quality_skipped"):
        if name in r:
            lines.append(f"  {name.split('_skipped')[0].replace('_', ' ')} skipped: {r[name]}")
    if "sample_quality" in r:
        q = r["sample_quality"]
        lines.append(
            f"  samples: digit-feature Frechet distance {q['fd']:.3f}, precision "
            f"{q['precision']:.3f}, recall {q['recall']:.3f} (n={q['n']}; not FID)"
        )
    return lines


def disentanglement_lines(r: dict[str, Any]) -> list[str]:
    """The disentanglement metrics, each in [0, 1] with what 1 and 0 mean, and their time."""
    d = r.get("disentanglement")
    if not isinstance(d, dict):
        return []
    seconds = d.get("seconds", {})
    lines = [
        f"  disentanglement on {d.get('grid', 'the known factors')} ({d.get('preset', '')} "
        f"preset; every number in [0, 1], higher is better; "
        f"{sum(seconds.values()):.1f} s in all: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
        + ")"
    ]
    meaning = d.get("meaning", {})
    lines += [
        f"    {name:<26}{value:6.3f}  {meaning.get(name, '')}".rstrip()
        for name, value in d.get("values", {}).items()
    ]
    return lines
