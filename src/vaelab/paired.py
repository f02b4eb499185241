"""Per-image estimates kept beside evaluation.json, and paired comparisons of two runs.

``vaelab evaluate --nll-samples K`` keeps each image's numbers (log p(x) estimate, its K/5
estimate, ESS, Monte Carlo s.e., jackknife estimate, Pareto k-hat) in ``RUN/per_image.npz``,
one group of arrays per evaluation key (``test``, ``test[:500]``), with a SHA-256 of the
scored pixels so that two runs can be checked to have scored the same images.

Two runs scored on the same images differ image by image far less than their means' s.e.
over images suggest, because most of the spread over images is shared (a hard digit is hard
for both).  The paired standard error of the mean difference, sd(d_i) / sqrt(N) with
d_i = NLL_A(x_i) - NLL_B(x_i), is the one that answers "is A better than B on this test set";
a difference counts as resolved when |mean d| > 2 paired s.e. (about 95% two-sided, for a
normal mean).
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import VaelabError
from .runs import EVALUATION_LOCK, Run, RunLock, atomic_write, file_in, read_in

PER_IMAGE = "per_image.npz"
RESOLVED_AT = 2.0  # |mean difference| / paired s.e. above which a difference is resolved


def fingerprint(x: torch.Tensor) -> str:
    """SHA-256 of the pixels as float32, in image order: the same images give the same one."""
    return hashlib.sha256(x.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def read_per_image(run_dir: str | Path) -> dict[str, np.ndarray]:
    """All arrays of ``RUN/per_image.npz`` by "key/name" ({} when there is none)."""
    folder = Path(run_dir)
    if not file_in(folder, PER_IMAGE).exists():
        return {}
    try:
        with np.load(io.BytesIO(read_in(folder, PER_IMAGE)), allow_pickle=False) as f:
            return {name: f[name] for name in f.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise VaelabError(f"cannot read {folder / PER_IMAGE}: {e}") from None


def save_per_image(run: Run, key: str, arrays: dict[str, torch.Tensor], meta: dict) -> None:
    """Keep ``arrays`` (per image, float64) and ``meta`` (text: kind, the images' fingerprint)
    under ``key`` in RUN/per_image.npz, replacing that key's old ones; the file is written
    atomically under the evaluation lock."""
    with RunLock(run.path, EVALUATION_LOCK).acquire(wait=True):
        saved = {k: v for k, v in read_per_image(run.path).items() if not k.startswith(f"{key}/")}
        saved |= {f"{key}/{n}": v.double().cpu().numpy() for n, v in arrays.items()}
        saved |= {f"{key}/{n}": np.array(str(v)) for n, v in meta.items()}

        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.savez(f, **saved)

        atomic_write(file_in(run.path, PER_IMAGE), write)


@dataclass
class Paired:
    """A - B on the same images: the mean and paired s.e. of d_i = NLL_A - NLL_B (nats per
    image), each run's own s.e. over images, and whether the difference is resolved."""

    key: str
    n_images: int
    k: tuple[str, str]
    mean: float
    paired_se: float
    se_a: float
    se_b: float

    @property
    def resolved(self) -> bool:
        return abs(self.mean) > RESOLVED_AT * self.paired_se

    def lines(self, a: str, b: str) -> list[str]:
        verdict = "resolved" if self.resolved else "not resolved"
        better = a if self.mean < 0 else b
        return [
            f"paired comparison on the same {self.n_images} images ({self.key}; K = "
            f"{self.k[0]} and {self.k[1]}):",
            f"  NLL({a}) - NLL({b}) = {self.mean:+.4f} nats per image, paired s.e. "
            f"{self.paired_se:.4f} (spread of the per-image differences / sqrt(N)); each "
            f"run's s.e. over images {self.se_a:.4f} and {self.se_b:.4f}",
            f"  {verdict}: |difference| {'>' if self.resolved else '<='} {RESOLVED_AT:g} "
            f"paired s.e." + (f"; {better} has the lower NLL" if self.resolved else ""),
        ]


def _keys(saved: dict[str, np.ndarray], split: str) -> set[str]:
    """Evaluation keys of ``split`` with per-image estimates (fp32 products only)."""
    keys = {name.rsplit("/", 1)[0] for name in saved if name.endswith("/log_px")}
    return {k for k in keys if (k == split or k.startswith(f"{split}[:")) and "@" not in k}


def paired(run_a: str | Path, run_b: str | Path, split: str = "test") -> Paired | str:
    """The paired comparison of two runs' per-image estimates on ``split``, or why none can
    be made (a sentence)."""
    a, b = read_per_image(run_a), read_per_image(run_b)
    common = _keys(a, split) & _keys(b, split)
    if not common:
        return (
            f"no paired comparison: both runs need per-image estimates of the {split} split "
            "on the same images (vaelab evaluate RUN --nll-samples K, with the same --limit)"
        )
    key = max(common, key=lambda k: len(a[f"{k}/log_px"]))
    needed = [f"{key}/{n}" for n in ("images", "kind", "k")]
    if any(n not in a or n not in b for n in needed):
        return f"no paired comparison: a run's {PER_IMAGE} lacks what {key} was scored on"
    for name in ("images", "kind"):
        if str(a[f"{key}/{name}"]) != str(b[f"{key}/{name}"]):
            what = "images" if name == "images" else "kinds of number"
            return f"no paired comparison: the runs' {key} estimates are on different {what}"
    d = -(a[f"{key}/log_px"] - b[f"{key}/log_px"])
    n = len(d)
    se = (lambda v: float(np.std(v, ddof=1)) / math.sqrt(n)) if n > 1 else (lambda v: math.nan)
    return Paired(
        key=key,
        n_images=n,
        k=(str(a[f"{key}/k"]), str(b[f"{key}/k"])),
        mean=float(d.mean()),
        paired_se=se(d),
        se_a=se(a[f"{key}/log_px"]),
        se_b=se(b[f"{key}/log_px"]),
    )
