"""The settings of an evaluation (``EvalConfig``): which weights, which images, and which
numbers beyond the loss terms.  ``vaelab evaluate``'s flags are generated from its fields, and
``evaluate.evaluate_run`` takes it.

Like ``config.py`` this module imports neither torch nor numpy, so the command line can build
its flags and check them without loading them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import BATCH_MAX, INT_MAX, K_MAX, PRECISIONS, field_problems, setting
from .disentangle.settings import PRESETS
from .errors import VaelabError

SPLITS = ("train", "val", "test")
PROTOCOLS = ("paper",)
COMPILE = {"auto": None, "on": True, "off": False}
DISENTANGLEMENT_PRESETS = tuple(PRESETS)
PAPER_K = 5000  # importance samples of the paper protocol (Burda et al. 2016)


@dataclass(frozen=True)
class EvalConfig:
    """What ``evaluate_run`` computes on a run.

    Always: the loss terms on ``split`` (its first ``limit`` images), one z per image drawn
    with ``seed``, and the active units.  ``nll_samples``: the importance-sampled likelihood
    with K samples per image; ``protocol="paper"`` requires a run trained under the paper
    protocol and makes K 5000 unless given.  ``probes``: linear-probe and k-NN accuracy of
    the latent means; ``quality``: sample quality in the features of a digit classifier;
    ``disentanglement``: the six metrics of ``vaelab.disentangle`` on the data's known
    factors, with the sample counts of ``disentanglement_preset`` and seed ``seed``;
    ``gaps``: the inference gap split into amortisation and approximation gaps
    (``gaps.GapSettings`` from the ``gap_*`` fields).
    ``compile`` and ``precision`` say how the likelihood estimate is computed
    (``nll.EstimateSettings``).  ``ais``: the AIS lower bound on log p(x) of every image
    (``vaelab.ais``, settings ``ais_*`` and ``seed``); ``bdmc``: the forward and reverse AIS
    bounds on that many images simulated from the model, and their gap."""

    split: str = setting("test", "the split to evaluate", choices=SPLITS)
    which: str = setting(
        "best", "weights: best (lowest validation loss) or last", choices=("best", "last")
    )
    device: str = setting("auto", "auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    seed: int = setting(0, "seed of the z draws", low=0, high=INT_MAX)
    nll_samples: int | None = setting(
        None,
        "add the importance-sampled log-likelihood with K samples per image",
        metavar="K",
        low=1,
        high=K_MAX,
    )
    protocol: str | None = setting(
        None,
        f"paper: require a binarized-MNIST Bernoulli VAE and use K={PAPER_K}",
        choices=PROTOCOLS,
    )
    gaps: bool = setting(
        False,
        "the amortisation and approximation gaps (Cremer et al. 2018); needs --nll-samples",
    )
    gap_steps: int = setting(500, "Adam steps of each image's q*(z|x) (--gaps)", low=0, high=10**6)
    gap_lr: float = setting(0.01, "Adam's learning rate for q*(z|x) (--gaps)", low=1e-8, high=10.0)
    gap_samples: int = setting(10, "draws of z per step for q*(z|x) (--gaps)", low=1, high=10**5)
    gap_eval_samples: int = setting(
        1000, "draws of z for each image's two ELBOs (--gaps)", low=1, high=K_MAX
    )
    probes: bool = setting(False, "linear-probe and k-NN accuracy of the latent means")
    quality: bool = setting(False, "sample quality (digit features)")
    disentanglement: bool = setting(
        False,
        "the six disentanglement metrics on the data's known factors (docs/disentanglement.md)",
    )
    disentanglement_preset: str = setting(
        "quick",
        "their sample counts: quick, paper (disentanglement_lib's, much slower), check (a "
        "few: pipeline checks, not to report)",
        choices=DISENTANGLEMENT_PRESETS,
    )
    limit: int | None = setting(None, "the first N images of the split only", metavar="N", low=1)
    batch_size: int = setting(1000, "images per batch of the loss terms", low=1, high=BATCH_MAX)
    compile: str = setting(
        "auto",
        "the likelihood estimate through torch.compile (auto: on a CPU, for large estimates, "
        "when a C++ compiler is found; docs/performance.md)",
        choices=tuple(COMPILE),
    )
    ais: bool = setting(
        False, "add annealed importance sampling, a second lower bound on log p(x) (docs/ais.md)"
    )
    ais_steps: int = setting(500, "AIS: intermediate distributions T (sigmoid schedule)", low=1)
    ais_chains: int = setting(16, "AIS: independent chains per image", low=1, high=K_MAX)
    ais_leapfrog: int = setting(10, "AIS: leapfrog steps per HMC transition", low=1, high=1000)
    ais_step_size: float = setting(0.05, "AIS: initial leapfrog step size", low=1e-4, high=1.0)
    ais_accept: float = setting(
        0.65, "AIS: acceptance rate the step size is adapted towards", low=0.01, high=0.99
    )
    bdmc: int | None = setting(
        None,
        "add the BDMC gap: forward and reverse AIS on N images simulated from the model",
        metavar="N",
        low=1,
        high=K_MAX,
    )
    precision: str = setting(
        "fp32",
        "the format of the estimate's network products (tf32: CUDA only; what each does to "
        "the estimate: docs/performance.md)",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        problems = field_problems(self)
        if problems:
            raise VaelabError("; ".join(problems))
        if self.split not in SPLITS:
            raise VaelabError(f"unknown split {self.split!r}; choose from {', '.join(SPLITS)}")
        if self.which not in ("best", "last"):
            raise VaelabError(f"unknown weights {self.which!r}; choose from best, last")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise VaelabError(f"unknown protocol {self.protocol!r}; the only one is 'paper'")
        if self.compile not in COMPILE:
            raise VaelabError(f"unknown compile {self.compile!r}; choose from auto, on, off")
        if self.disentanglement_preset not in DISENTANGLEMENT_PRESETS:
            raise VaelabError(
                f"unknown disentanglement preset {self.disentanglement_preset!r}; choose from "
                + ", ".join(DISENTANGLEMENT_PRESETS)
            )
        if self.precision not in PRECISIONS:
            raise VaelabError(
                f"unknown precision {self.precision!r}: choose from {', '.join(PRECISIONS)}"
            )
        if self.gaps and self.samples is None:
            raise VaelabError(
                "--gaps needs log p(x) for the approximation gap: add --nll-samples K"
            )
        if self.protocol == "paper" and self.precision == "bf16":
            raise VaelabError(
                "--protocol paper needs an estimate within 0.01 nats of fp32's: bf16 products "
                "move it by 0.05 to 0.08 (use fp32, tf32 or fp16)"
            )

    @property
    def samples(self) -> int | None:
        """K, the importance samples per image (None: no likelihood estimate)."""
        if self.nll_samples is None and self.protocol == "paper":
            return PAPER_K
        return self.nll_samples

    @property
    def compile_choice(self) -> bool | None:
        """``compile`` as ``nll.weights_function`` takes it (None: where it pays)."""
        return COMPILE[self.compile]
