"""Training speed: vaelab's epoch against the hardware floor and three other ways to train.

One process, one model (784-400-20 ReLU VAE, Bernoulli decoder on logits, Adam 1e-3, batch
128), 50,000 training images held in memory (random pixels in [0, 1]: the same products and
element-wise work as MNIST), epochs interleaved round by round so that a drift of the machine
hits every contender alike.  Contenders:

- **floor**: the epoch's matrix products alone, each timed at its shape (see tools/bench/floor.py);
- **vaelab**: ``vaelab.train.train_epoch``, the loop ``vaelab train`` runs (its batches, its
  fused Adam), without the validation pass and checkpoint that ``fit`` adds per epoch;
- **bare loop**: a plain PyTorch loop over index batches of an in-memory tensor, with
  ``torch.optim.Adam`` at its defaults and ``F.binary_cross_entropy_with_logits``;
- **DataLoader**: the pipeline of the pytorch/examples VAE: a map-style dataset turning one
  uint8 image at a time into floats, ``DataLoader(batch_size=128, shuffle=True)``;
- **pythae**: ``pythae``'s ``BaseTrainer`` on the same nets, when pythae is importable
  (never a dependency of vaelab: ``bash tools/bench/setup_pythae.sh`` makes ``.venv-bench``);
- **vaelab, compiled** (``--compile``): ``train_step`` with the model's loss through
  ``torch.compile``; its compile time is reported apart;
- **vaelab, bf16 products** (``--bf16``): ``vaelab train --precision bf16``'s epoch, beside
  the floor of the same products in bf16.

Prints each contender's best epoch time over the rounds (on a shared machine, other work only
ever adds time, so the best is the steadiest estimate), its multiple of the floor and its ratio
to the bare loop.

    python -m tools.bench.train_speed [--rounds 3] [--threads N] [--compile] [--bf16]
    .venv-bench/bin/python -m tools.bench.train_speed      # with pythae
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tools.bench.floor import BareVAE, floor_seconds, step_products
from vaelab.config import TrainConfig
from vaelab.data import Split
from vaelab.models import build_model
from vaelab.runs import Run
from vaelab.settings import preset_config
from vaelab.train import make_optimizer, train_epoch, train_step

BATCH = 128


def bare_epoch(model, opt, x) -> None:
    for idx in torch.randperm(len(x)).split(BATCH):
        loss = model.loss(x[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


class Images(torch.utils.data.Dataset):
    """One uint8 image at a time, scaled to floats: what ``transforms.ToTensor()`` does."""

    def __init__(self, images_u8: torch.Tensor):
        self.images = images_u8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i].float().div(255).view(-1), 0


def loader_epoch(model, opt, loader) -> None:
    for xb, _ in loader:
        loss = model.loss(xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def pythae_trainer(x: torch.Tensor, out: str):
    """pythae's VAE on the same 784-400-20 nets, and a function that trains one epoch with
    pythae's ``BaseTrainer`` (which also writes its final model and logs into ``out``).  pythae
    is no dependency of vaelab: imported here, so that without it the other contenders run."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.fc, self.head = nn.Linear(784, 400), nn.Linear(400, 40)

        def forward(self, x):
            mu, logvar = self.head(F.relu(self.fc(x.reshape(len(x), -1)))).chunk(2, -1)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, z):
            out = torch.sigmoid(self.fc2(F.relu(self.fc1(z))))
            return ModelOutput(reconstruction=out.reshape(len(z), 1, 28, 28))

    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(cfg, encoder=Encoder(), decoder=Decoder())
    data = BaseDataset(x.reshape(-1, 1, 28, 28), torch.zeros(len(x)))
    logging.getLogger("pythae").setLevel(logging.ERROR)

    def epoch() -> None:
        tcfg = BaseTrainerConfig(
            output_dir=out,
            num_epochs=1,
            learning_rate=1e-3,
            per_device_train_batch_size=BATCH,
            no_cuda=True,
            steps_saving=None,
        )
        BaseTrainer(model=model, train_dataset=data, training_config=tcfg).train()

    return epoch


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5, help="epochs of each contender")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--compile", action="store_true", help="also vaelab through torch.compile")
    ap.add_argument(
        "--bf16", action="store_true", help="also vaelab with bf16 products, and their floor"
    )
    return ap.parse_args()


@dataclass
class Bench:
    """What every contender trains on: the images, vaelab's split of them and its settings, and
    a folder for pythae's files (and vaelab's runs, which write nothing)."""

    x: torch.Tensor  # (N, 784) in [0, 1]
    split: Split
    cfg: TrainConfig
    tmp: Path


class VaelabEpoch:
    """A fresh 784-400-20 VAE; each call trains it one epoch with ``train_epoch``, as ``vaelab
    train`` runs it (in ``cfg``'s precision; with ``compile``, the loss through
    torch.compile)."""

    def __init__(self, b: Bench, cfg: TrainConfig, compile: bool = False):
        self.b, self.cfg = b, cfg
        self.model = build_model("vae", **preset_config("pytorch-examples")).train()
        self.opt = make_optimizer(self.model, cfg, torch.device("cpu"))
        model = self.model
        self.loss_fn = (
            torch.compile(lambda xb, yb, w: model.loss(xb, yb, kl_weight=w)) if compile else None
        )
        self.gen = torch.Generator().manual_seed(0)
        # a run of its own, so that train_epoch reads this epoch's settings (writes nothing)
        self.run = Run.create(b.tmp / f"run-{cfg.precision}-{compile}", "vae", model.config, cfg)

    def __call__(self) -> None:
        train_epoch(self.model, self.opt, self.b.split, self.run, self.gen, 0, progress=False,
                    loss_fn=self.loss_fn)  # fmt: skip


def plain_contenders(b: Bench) -> dict:
    """The bare loop, the DataLoader pipeline and, when importable, pythae's trainer."""
    bare = BareVAE().train()
    opt_bare = torch.optim.Adam(bare.parameters(), lr=1e-3)
    loader_model = BareVAE().train()
    opt_loader = torch.optim.Adam(loader_model.parameters(), lr=1e-3)
    x_u8 = (b.x * 255).round().to(torch.uint8)
    loader = torch.utils.data.DataLoader(Images(x_u8), batch_size=BATCH, shuffle=True)
    contenders = {
        "bare loop": lambda: bare_epoch(bare, opt_bare, b.x),
        "DataLoader (pytorch/examples)": lambda: loader_epoch(loader_model, opt_loader, loader),
    }
    try:
        contenders["pythae BaseTrainer"] = pythae_trainer(b.x, str(b.tmp / "pythae"))
    except ImportError:
        print("pythae not importable: skipped (bash tools/bench/setup_pythae.sh, then run with "
              ".venv-bench/bin/python)")  # fmt: skip
    return contenders


def compiled_contender(b: Bench) -> tuple[VaelabEpoch, float]:
    """vaelab's epoch with the model's loss through torch.compile, compiled first (both batch
    sizes of an epoch), and the seconds the compiling took."""
    epoch = VaelabEpoch(b, b.cfg, compile=True)
    t0 = time.perf_counter()
    train_step(epoch.model, epoch.opt, b.x[:BATCH], None, loss_fn=epoch.loss_fn)  # compiles
    train_step(epoch.model, epoch.opt, b.x[BATCH : 2 * BATCH], None, loss_fn=epoch.loss_fn)
    tail = len(b.x) % BATCH  # the epoch's last, smaller batch compiles too
    if tail:
        train_step(epoch.model, epoch.opt, b.x[:tail], None, loss_fn=epoch.loss_fn)
    return epoch, time.perf_counter() - t0  # with a few steps' work: negligible


def timed_rounds(contenders: dict, products, steps: int, rounds: int, bf16: bool) -> dict:
    """Each contender's epoch times, round by round, beside the floor's (and the bf16 floor's)."""
    floors = ["floor"] + (["floor, bf16 products"] if bf16 else [])
    times: dict[str, list[float]] = {name: [] for name in [*floors, *contenders]}
    for _ in range(rounds):
        times["floor"].append(floor_seconds(products)[0] * steps)
        if bf16:
            bf16_floor = floor_seconds(products, torch.bfloat16)[0] * steps
            times["floor, bf16 products"].append(bf16_floor)
        for name, epoch in contenders.items():
            t0 = time.perf_counter()
            epoch()
            times[name].append(time.perf_counter() - t0)
    return times


def print_table(times: dict, model, steps: int, rounds: int) -> None:
    med = {name: min(t) for name, t in times.items()}
    floor, bare_t = med["floor"], med["bare loop"]
    print(f"model: {model.describe()}")
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}; one epoch = {steps} "
          f"steps of batch {BATCH}; best of {rounds} interleaved epochs")  # fmt: skip
    print()
    print("| contender | s per epoch | x the floor | x the bare loop |")
    print("|---|---|---|---|")
    for name, t in med.items():
        print(f"| {name} | {t:.2f} | {t / floor:.2f} | {t / bare_t:.2f} |")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("vaelab").setLevel(logging.ERROR)
    torch.manual_seed(0)
    x = torch.rand(args.images, 784)
    steps = -(-args.images // BATCH)
    cfg = TrainConfig(lr=1e-3, batch_size=BATCH, epochs=1)
    tmp = Path(tempfile.mkdtemp(prefix="vaelab-bench-"))
    b = Bench(x, Split(x, torch.zeros(args.images, dtype=torch.long)), cfg, tmp)
    vaelab_epoch = VaelabEpoch(b, cfg)
    contenders = {"vaelab": vaelab_epoch, **plain_contenders(b)}
    if args.compile:
        contenders["vaelab, torch.compile"], compile_s = compiled_contender(b)
    if args.bf16:
        bcfg = TrainConfig(lr=1e-3, batch_size=BATCH, epochs=1, precision="bf16")
        contenders["vaelab, bf16 products"] = VaelabEpoch(b, bcfg)
    model = vaelab_epoch.model
    times = timed_rounds(contenders, step_products(model, BATCH), steps, args.rounds, args.bf16)
    print_table(times, model, steps, args.rounds)
    if args.compile:
        print(f"\ntorch.compile: {compile_s:.1f} s to compile (the first steps, both batch "
              "sizes), apart")  # fmt: skip


if __name__ == "__main__":
    main()
