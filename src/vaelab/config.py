"""Typed settings of a run: what data it sees (``DataConfig``) and how it is optimised
(``TrainConfig``).  The model's settings are its own config class (``models/``).

This module imports neither torch nor numpy, so the command line can read and check settings
without loading them.
"""

from __future__ import annotations

import collections.abc
import functools
import math
import os
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .data import DEFAULT_DATASET, MNIST_DATASET, dataset_entry
from .errors import VaelabError
from .registry import check_choice

BINARIZE = ("none", "dynamic")
SCHEDULES = ("none", "cosine", "step", "burda")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")  # the networks' products (precision.py)
TRAIN_PRECISIONS = ("fp32", "tf32", "bf16")  # fp16 training needs loss scaling: not offered
BURDA_STAGES = 8  # Burda et al. 2016: stage i = 0..7 lasts 3^i epochs at lr * 10^(-i/7)
BURDA_EPOCHS = sum(3**i for i in range(BURDA_STAGES))  # 3,280
INT_MAX = 2**63 - 1  # the largest integer setting (a seed: what torch's generators take)
SIZE_MAX = 65_536  # the largest layer width, latent size or image side
EPOCHS_MAX = 1_000_000
K_MAX = 1_000_000  # importance samples per image
BATCH_MAX = 1_048_576
# The training step's largest tensor, k * batch_size * width elements, is refused above this
# before anything is allocated: 2^31 float32 numbers are 8 GiB.
STEP_BUDGET = 2**31


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    choices: tuple[str, ...] | str | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """A configuration field with the facts the command line is generated from.

    ``help`` is one line (the default is added by the command line, never written here);
    ``choices`` a tuple of names or a registry's kind (``"architecture"``, ``"likelihood"``
    ...: ``registry.names``); ``flag`` the option's name when it is not ``--field-name``
    (``--no-verify`` for ``verify``); ``cli=False`` keeps a field that the data decide
    (``image_shape``) off the command line.  ``low`` and ``high``: the range a number (or
    every number of a list) must lie in, both included (``field_problems`` checks it; an
    integer without ``high`` stops at ``INT_MAX``).  A list default is copied for every
    instance."""
    metadata = {"help": help, "choices": choices, "flag": flag, "metavar": metavar, "cli": cli}
    metadata |= {"low": low, "high": high}
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
    ``fashion-mnist``, ``kmnist``), verified against its published checksums; or data made
    from known factors (``sprites``, ``sprites-colour``: rendered; ``dsprites``: DeepMind's
    file from ``data_dir``), split by a fixed permutation of the grid (``data/factors.py``).
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
        "a data set vaelab knows by name; fashion-mnist and kmnist are fetched first with "
        "`vaelab data fetch NAME --data-dir DIR` from their published .gz files; sprites and "
        "sprites-colour are rendered; dsprites is read from --data-dir",
        choices="dataset",
    )
    binarize: str = setting(
        "none",
        "none: pixels byte/255 in [0, 1]; dynamic: each training image resampled as 0/1 "
        "pixels every time it is used",
        choices=BINARIZE,
    )
    binarize_seed: int = setting(
        0, "seed of the one-off binarization of val and test images", low=0, high=INT_MAX - 1
    )
    data_dir: str | None = setting(
        None, "read the data set from this folder (IDX files) or .npz instead of the cache"
    )
    verify: bool = setting(
        True,
        "check the files against the data set's published checksums (--no-verify accepts "
        "any 28x28 data)",
        flag="--no-verify",
    )
    train_limit: int | None = setting(
        None, "use only the first N training images", metavar="N", low=1
    )
    val_size: int | None = setting(
        None,
        f"N training images validate: the last N (of a factor grid: N after its test images; "
        f"unset: {MNIST_DATASET.val_size:,} for MNIST's {MNIST_DATASET.train_size:,}; the "
        "paper protocol: 400)",
        metavar="N",
        low=1,
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
        low=4,
        high=1024,
    )

    def __post_init__(self) -> None:
        problems = field_problems(self)
        if problems:
            raise VaelabError("; ".join(problems))
        problem = check_choice("dataset", self.dataset)
        if problem:
            raise VaelabError(problem)
        if self.data is not None:
            if self.dataset != DEFAULT_DATASET or self.data_dir is not None:
                raise VaelabError("give --data PATH (your images) or a --dataset, not both")
            object.__setattr__(self, "data", os.path.abspath(os.path.expanduser(self.data)))
        elif self.image_size is not None:
            raise VaelabError("--image-size resizes your images: it goes with --data PATH")
        if self.binarize not in BINARIZE:
            raise VaelabError(
                f"unknown binarization {self.binarize!r}; choose from {', '.join(BINARIZE)}"
            )

    @property
    def binary(self) -> bool:
        """Whether every pixel the model is scored on is 0 or 1 (so a Bernoulli is a likelihood)."""
        return self.binarize != "none" or self.binary_data

    @property
    def binary_data(self) -> bool:
        """Whether the data set's own pixels are 0 or 1 (rendered binary sprites)."""
        return self.data is None and dataset_entry(self.dataset).binary

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
            if self.data is None and dataset_entry(self.dataset).image_shape[0] == 3:
                pixels = "RGB pixels"
            if self.binary_data:
                return f"{data}binary pixels (0 or 1){split}"
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
    many epochs (Bowman et al. 2016; Sonderby et al. 2016); 0 = no warm-up.  Refused with k > 1
    (``warmup_problems``): the importance-weighted bound has no separate KL term to weight.
    ``on_nan``: what a NaN or infinite loss or gradient does: ``stop`` (the default; the last
    good checkpoint is kept) or ``skip`` (the batch's update is dropped and counted; checked
    every step, and training still stops when more than a tenth of an epoch's steps go bad).
    ``tensorboard``: also write each epoch's metrics as TensorBoard event files into
    ``RUN/tensorboard/`` (needs the ``tensorboard`` package: ``vaelab[tensorboard]``).
    ``precision``: the format of the networks' products in training steps (``fp32``, ``tf32``
    on a CUDA GPU, ``bf16``; see ``precision.py``); loss terms stay float32.
    """

    epochs: int = setting(10, "total epochs", low=0, high=EPOCHS_MAX)
    batch_size: int = setting(128, "images per training step", low=1, high=BATCH_MAX)
    lr: float = setting(1e-3, "Adam's learning rate (its peak, under a schedule)")
    lr_schedule: str = setting(
        "none",
        "none, cosine (to 0), step (times --lr-gamma every --lr-step epochs), burda (8 stages "
        "of 3^i epochs at lr 10^(-i/7), scaled to --epochs; 3280 is the paper's)",
        choices=SCHEDULES,
    )
    lr_step: int = setting(10, "epochs between steps (step schedule)", low=1, high=EPOCHS_MAX)
    lr_gamma: float = setting(0.5, "factor per step (step schedule)", low=0.0)
    weight_decay: float = setting(0.0, "Adam's L2 penalty on the weights", low=0.0)
    adam_eps: float = setting(1e-8, "Adam's epsilon (Burda et al. used 1e-4)")
    kl_warmup: int = setting(
        0,
        "epochs over which the KL weight rises from 0 (0: none; k = 1 only)",
        low=0,
        high=EPOCHS_MAX,
    )
    seed: int = setting(0, "seed of the weights, the batches and the draws", low=0, high=INT_MAX)
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
        problems = field_problems(self)
        if problems:
            raise VaelabError("; ".join(problems))
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in SCHEDULES:
            problems.append(
                f"unknown lr_schedule {self.lr_schedule!r} (choose from {', '.join(SCHEDULES)})"
            )
        if not self.adam_eps > 0:
            problems.append(f"adam_eps must be > 0, got {self.adam_eps}")
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


def step_problems(model_config: dict[str, Any], train: TrainConfig) -> list[str]:
    """The training step's largest tensor, about ``k * batch_size * width`` numbers (width:
    the widest of the image's pixels, the layers, the latent sizes and, under a VampPrior, its
    components), against ``STEP_BUDGET``: a size that cannot fit is refused in one line before
    anything is allocated or written."""
    shape = model_config.get("image_shape") or [1, 28, 28]
    widths = [math.prod(shape), model_config.get("latent_dim", 1), model_config.get("z1_dim", 1)]
    for key, value in model_config.items():
        if isinstance(value, list | tuple) and key != "image_shape":
            widths += value
    if model_config.get("prior") == "vamp":
        widths.append(model_config.get("pseudo_inputs", 1))
    width, k, batch = max(widths), model_config.get("k", 1), train.batch_size
    if k * batch * width <= STEP_BUDGET:
        return []
    most = max(STEP_BUDGET // (batch * width), 0)
    return [
        f"k * batch_size * width = {k:,} * {batch:,} * {width:,} numbers in one training step, "
        f"over the budget of {STEP_BUDGET:,} (8 GiB of float32): at this batch_size and width "
        f"k must be <= {most:,}; lower k, batch_size or the sizes"
    ]


def warmup_problems(model_config: dict[str, Any], train: TrainConfig) -> list[str]:
    """KL warm-up weights the KL term of the ELBO; the k-sample bound (k > 1) has no separate
    KL term (its KL-like part sits inside a log-sum-exp, which no paper weights), so warm-up
    with k > 1 is refused, as beta != 1 with k > 1 is (``VAEConfig.problems``)."""
    if train.kl_warmup > 0 and model_config.get("k", 1) > 1:
        return [
            f"kl_warmup has no meaning in the importance-weighted bound (k = "
            f"{model_config['k']} > 1): use kl_warmup 0, or k = 1 for the ELBO"
        ]
    return []


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
    hints = _hints(cls)
    problems = []
    for key, value in values.items():
        hint = hints.get(key)
        if hint is not None and not _fits(value, hint):
            problems.append(
                f"{key} must be {_describe(hint)}, got {type(value).__name__} {preview(value)}"
            )
    return problems


def field_problems(obj) -> list[str]:
    """Everything wrong with the fields of the config dataclass ``obj`` that their
    declarations say: a wrong type (``type_problems``), else a number that is not finite or
    lies outside its field's ``low`` .. ``high`` (an integer's ``high`` defaults to
    ``INT_MAX``), one phrase each naming the setting and its range."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    problems = type_problems(type(obj), values)
    if problems:
        return problems
    for f in fields(obj):
        problem = _range_problem(f.name, values[f.name], f.metadata)
        if problem:
            problems.append(problem)
    return problems


def _range_problem(name: str, value: Any, meta: Any) -> str:
    """A phrase when a number of ``value`` (or of the list ``value``) is not finite or lies
    outside ``low`` .. ``high`` of the field's ``meta``; an integer field without ``high``
    stops at ``INT_MAX`` (said only to a value above it)."""
    numbers = value if isinstance(value, list | tuple) else [value]
    numbers = [v for v in numbers if isinstance(v, int | float) and not isinstance(v, bool)]
    low, high = meta.get("low"), meta.get("high")
    implicit = high is None and all(isinstance(v, int) for v in numbers)
    top = INT_MAX if implicit else high
    bad = [
        v
        for v in numbers
        if (isinstance(v, float) and not math.isfinite(v))
        or (low is not None and v < low)
        or (top is not None and v > top)
    ]
    if not bad:
        return ""
    shown = top if not implicit or bad[0] > INT_MAX else None
    bounds = [f"{sign} {_number(b)}" for sign, b in ((">=", low), ("<=", shown)) if b is not None]
    if any(isinstance(v, float) for v in numbers):
        bounds.append("finite")
    limits = " and ".join(bounds)
    what = f"each of {name}" if isinstance(value, list | tuple) else name
    return f"{what} must be {limits}, got {preview(bad[0])}"


def range_text(meta: Any) -> str:
    """A field's declared range for ``--help``: ``1 to 65,536``, ``>= 0`` or ``""``."""
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        return f"{_number(low)} to {_number(high)}"
    if low is not None or high is not None:
        return f">= {_number(low)}" if low is not None else f"<= {_number(high)}"
    return ""


def _number(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def preview(value: Any, limit: int = 40) -> str:
    """About ``limit`` characters of ``value``'s repr, rendered without rendering all of a
    large or deep value (a settings file's alias bomb, a huge integer)."""
    if limit <= 0:
        return "..."
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length():,} bits"
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, list | tuple | dict):
        text = _preview_items(value, limit)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _preview_items(value: list | tuple | dict, limit: int) -> str:
    ends = "{}" if isinstance(value, dict) else "()" if isinstance(value, tuple) else "[]"
    text = ends[0]
    items = value.items() if isinstance(value, dict) else value
    for i, item in enumerate(items):
        if len(text) >= limit:
            return text + "..."
        text += ", " * (i > 0)
        if isinstance(value, dict):
            text += preview(item[0], limit - len(text)) + ": "
            item = item[1]
        text += preview(item, limit - len(text))
    return text + ends[1]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


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
