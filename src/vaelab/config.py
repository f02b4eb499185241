"""Typed settings of a run: what data it sees (``DataConfig``) and how it is optimised
(``TrainConfig``).  The model's settings are its own config class (``models/``).

This module imports neither torch nor numpy, so the command line can read and check settings
without loading them.
"""

from __future__ import annotations

import collections.abc
import math
import os
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any

from .data import DEFAULT_DATASET, MNIST_DATASET
from .errors import VaelabError
from .registry import check_choice

BINARIZE = ("none", "dynamic")
SCHEDULES = ("none", "cosine", "step", "burda")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # the networks' products (precision.py)
TRAIN_PRECISIONS = ("fp32", "tf32", "bf16")  # fp16 training needs loss scaling: not offered
BURDA_STAGES = 8  # Burda et al. 2016: stage i = 0..7 lasts 3^i epochs at lr * 10^(-i/7)
BURDA_EPOCHS = sum(3**i for i in range(BURDA_STAGES))  # 3,280


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    choices: tuple[str, ...] | str | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
) -> Any:
    """A configuration field with the facts the command line is generated from.

    ``help`` is one line (the default is added by the command line, never written here);
    ``choices`` a tuple of names or a registry's kind (``"architecture"``, ``"likelihood"``
    ...: ``registry.names``); ``flag`` the option's name when it is not ``--field-name``
    (``--no-verify`` for ``verify``); ``cli=False`` keeps a field that the data decide
    (``image_shape``) off the command line.  A list default is copied for every instance."""
    metadata = {"help": help, "choices": choices, "flag": flag, "metavar": metavar, "cli": cli}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class DataConfig:
    """Which data and how it is presented.

    ``binarize="none"``: grayscale pixels byte/255 in [0, 1] (a Bernoulli loss on them is a
    loss, not a likelihood).  ``"dynamic"``: each training image is re-binarized every time it
    is used (pixel = 1 when a uniform draw falls below its intensity, Burda et al. 2016);
    validation and test images are binarized once with ``binarize_seed``.
    ``dataset``: ``mnist``, or another data set vaelab knows by name (``registry.DATASETS``:
    ``fashion-mnist``, ``kmnist``), verified against its published checksums.
    ``data_dir`` reads the data set from a folder or .npz instead of the cache; ``verify=False``
    accepts files that are not the named data set (any 28x28 data).
    ``data``: your own images instead (a folder of image files, optionally one subfolder per
    class; a .npy / .npz array; IDX files: see ``data/images.py``), resized to ``image_size`` x
    ``image_size`` when given; kept as an absolute path.
    ``train_limit`` keeps the first N training images (quick runs, tests).  ``val_size``: the
    last N of the 60,000 training images validate (default 10,000: 50,000 / 10,000; Burda et
    al.'s code: 400, so 59,600 train).
    Frozen: loaded splits are cached per configuration (``vaelab.data.load_splits``).
    """

    dataset: str = setting(
        DEFAULT_DATASET,
        "a data set vaelab knows by name; others than MNIST are fetched first with "
        "`vaelab data fetch NAME --data-dir DIR` from their published .gz files",
        choices="dataset",
    )
    binarize: str = setting(
        "none",
        "none: pixels byte/255 in [0, 1]; dynamic: each training image resampled as 0/1 "
        "pixels every time it is used",
        choices=BINARIZE,
    )
    binarize_seed: int = setting(0, "seed of the one-off binarization of val and test images")
    data_dir: str | None = setting(
        None, "read the data set from this folder (IDX files) or .npz instead of the cache"
    )
    verify: bool = setting(
        True,
        "check the files against the data set's published checksums (--no-verify accepts "
        "any 28x28 data)",
        flag="--no-verify",
    )
    train_limit: int | None = setting(None, "use only the first N training images", metavar="N")
    val_size: int | None = setting(
        None,
        f"the last N training images validate (unset: {MNIST_DATASET.val_size:,} for MNIST's "
        f"{MNIST_DATASET.train_size:,}; the paper protocol: 400)",
        metavar="N",
    )
    data: str | None = setting(
        None,
        "your own images instead: a folder of PNG/JPEG files (one subfolder per class gives "
        "labels; train/ and test/ subfolders give the split), a .npy/.npz array (N, H, W) or "
        "(N, H, W, C), or a folder of IDX files",
        metavar="PATH",
    )
    image_size: int | None = setting(
        None,
        "with --data: resize every image to N x N once (cached); conv nets need N a multiple of 4",
        metavar="N",
    )

    def __post_init__(self) -> None:
        problem = check_choice("dataset", self.dataset)
        if problem:
            raise VaelabError(problem)
        if self.data is not None:
            if self.dataset != DEFAULT_DATASET or self.data_dir is not None:
                raise VaelabError("give --data PATH (your images) or a --dataset, not both")
            object.__setattr__(self, "data", os.path.abspath(os.path.expanduser(self.data)))
        elif self.image_size is not None:
            raise VaelabError("--image-size resizes your images: it goes with --data PATH")
        if self.image_size is not None and not 4 <= self.image_size <= 1024:
            raise VaelabError(f"image_size must be between 4 and 1024, got {self.image_size}")
        if self.binarize not in BINARIZE:
            raise VaelabError(
                f"unknown binarization {self.binarize!r}; choose from {', '.join(BINARIZE)}"
            )
        if self.train_limit is not None and self.train_limit < 1:
            raise VaelabError(f"train_limit must be >= 1, got {self.train_limit}")
        if self.val_size is not None and self.val_size < 1:
            raise VaelabError(f"val_size must be >= 1, got {self.val_size}")

    @property
    def binary(self) -> bool:
        """Whether every pixel the model is scored on is 0 or 1 (so a Bernoulli is a likelihood)."""
        return self.binarize != "none"

    def describe(self) -> str:
        split = (
            ""
            if self.val_size is None
            else f", the last {self.val_size:,} training images validate"
        )
        data = "" if self.dataset == DEFAULT_DATASET else f"{self.dataset}, "
        if self.data is not None:
            size = "" if self.image_size is None else f" at {self.image_size}x{self.image_size}"
            data = f"images from {self.data}{size}, "
        if self.binarize == "none":
            pixels = "pixels" if self.data is not None else "grayscale pixels"
            return f"{data}{pixels} in [0, 1]{split}"
        return (
            f"{data}dynamically binarized (val/test binarized once with seed "
            f"{self.binarize_seed}){split}"
        )


@dataclass
class TrainConfig:
    """Optimisation settings.  Adam; ``lr_schedule``:

    - ``none``: constant ``lr``;
    - ``cosine``: from ``lr`` to 0 over ``epochs``;
    - ``step``: times ``lr_gamma`` every ``lr_step`` epochs;
    - ``burda``: Burda et al. (2016): 8 stages, stage i = 0..7 at ``lr * 10^(-i/7)``, stage i
      lasting 3^i / 3,280 of ``epochs`` (``epochs=3280`` is the paper's schedule; fewer epochs
      give the same schedule shortened in proportion).

    ``adam_eps``: Adam's epsilon (PyTorch's default 1e-8; Burda et al. used 1e-4).
    ``kl_warmup``: the KL term's weight rises linearly from 0 to the model's ``beta`` over this
    many epochs (Bowman et al. 2016; Sonderby et al. 2016); 0 = no warm-up.
    ``on_nan``: what a NaN or infinite loss or gradient does: ``stop`` (the default; the last
    good checkpoint is kept) or ``skip`` (the batch's update is dropped and counted; checked
    every step, and training still stops when more than a tenth of an epoch's steps go bad).
    ``tensorboard``: also write each epoch's metrics as TensorBoard event files into
    ``RUN/tensorboard/`` (needs the ``tensorboard`` package: ``vaelab[tensorboard]``).
    ``precision``: the format of the networks' products in training steps (``fp32``, ``tf32``
    on a CUDA GPU, ``bf16``; see ``precision.py``); loss terms stay float32.
    """

    epochs: int = setting(10, "total epochs")
    batch_size: int = setting(128, "images per training step")
    lr: float = setting(1e-3, "Adam's learning rate (its peak, under a schedule)")
    lr_schedule: str = setting(
        "none",
        "none, cosine (to 0), step (times --lr-gamma every --lr-step epochs), burda (8 stages "
        "of 3^i epochs at lr 10^(-i/7), scaled to --epochs; 3280 is the paper's)",
        choices=SCHEDULES,
    )
    lr_step: int = setting(10, "epochs between steps (step schedule)")
    lr_gamma: float = setting(0.5, "factor per step (step schedule)")
    weight_decay: float = setting(0.0, "Adam's L2 penalty on the weights")
    adam_eps: float = setting(1e-8, "Adam's epsilon (Burda et al. used 1e-4)")
    kl_warmup: int = setting(0, "epochs over which the KL weight rises from 0 (0: none)")
    seed: int = setting(0, "seed of the weights, the batches and the draws")
    device: str = setting("auto", "auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    on_nan: str = setting(
        "stop",
        "a NaN or infinite loss or gradient: stop (the last good checkpoint is kept) or skip "
        "the batch (counted; checked every step)",
        choices=("stop", "skip"),
    )
    tensorboard: bool = setting(
        False, "also log each epoch's metrics to RUN/tensorboard/ (needs vaelab[tensorboard])"
    )
    precision: str = setting(
        "fp32",
        "the format of the networks' products: fp32, tf32 (CUDA), bf16 (docs/performance.md)",
        choices=TRAIN_PRECISIONS,
    )

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 0:
            problems.append(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in SCHEDULES:
            problems.append(
                f"unknown lr_schedule {self.lr_schedule!r} (choose from {', '.join(SCHEDULES)})"
            )
        if self.lr_step < 1:
            problems.append(f"lr_step must be >= 1, got {self.lr_step}")
        if not self.adam_eps > 0:
            problems.append(f"adam_eps must be > 0, got {self.adam_eps}")
        if self.kl_warmup < 0:
            problems.append(f"kl_warmup must be >= 0, got {self.kl_warmup}")
        if self.on_nan not in ("stop", "skip"):
            problems.append(f"on_nan must be 'stop' or 'skip', got {self.on_nan!r}")
        if self.precision not in TRAIN_PRECISIONS:
            fp16 = " (fp16 training needs loss scaling; use bf16)" * (self.precision == "fp16")
            problems.append(
                f"unknown training precision {self.precision!r} (choose from "
                f"{', '.join(TRAIN_PRECISIONS)}){fp16}"
            )
        if problems:
            raise VaelabError("; ".join(problems))

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` during (0-based) ``epoch``."""
        if self.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        if self.lr_schedule == "step":
            return self.lr_gamma ** (epoch // self.lr_step)
        if self.lr_schedule == "burda":
            return 10 ** (-burda_stage(epoch, self.epochs) / 7)
        return 1.0

    def kl_weight(self, epoch: int, step: int = 0, steps: int = 1) -> float:
        """Factor on the KL term at ``step`` of ``steps`` in (0-based) ``epoch``: linear warm-up."""
        if self.kl_warmup <= 0:
            return 1.0
        return min(1.0, (epoch + step / max(steps, 1)) / self.kl_warmup)


def burda_stage(epoch: int, epochs: int) -> int:
    """Stage 0..7 of Burda's schedule that (0-based) ``epoch`` of ``epochs`` falls in."""
    position = (epoch + 0.5) / max(epochs, 1) * BURDA_EPOCHS  # the epoch's centre, paper scale
    done = 0
    for i in range(BURDA_STAGES):
        done += 3**i
        if position < done:
            return i
    return BURDA_STAGES - 1


def type_problems(cls: type, values: dict) -> list[str]:
    """Settings of the dataclass ``cls`` whose values have the wrong type, one phrase each:
    what a hand-edited or hostile config.json gets told before anything is built.  Checks
    ``int``, ``float`` (an int is fine), ``str``, ``bool``, ``X | None`` and sequences of
    ``int``; other hints are left to the class."""
    hints = typing.get_type_hints(cls)
    problems = []
    for key, value in values.items():
        hint = hints.get(key)
        if hint is not None and not _fits(value, hint):
            problems.append(
                f"{key} must be {_describe(hint)}, got {type(value).__name__} {value!r:.40}"
            )
    return problems


def _describe(hint, plural: bool = False) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "null"
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_describe(args[0], plural=True)}" if args else "a list"
    names = {int: "integer", float: "number", str: "string", bool: "true or false"}
    name = names.get(hint, getattr(hint, "__name__", str(hint)))
    if hint is bool:
        return name
    return f"{name}s" if plural else f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _fits(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        item = args[0] if args else None
        return isinstance(value, list | tuple) and all(
            item is None or _fits(v, item) for v in value
        )
    return True
