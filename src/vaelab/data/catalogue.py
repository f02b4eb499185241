"""Data sets in MNIST's format that vaelab knows by name, with their published checksums.

MNIST itself is fetched and verified by ``data.fetch_mnist`` (from PyPI, or your files).  The
others here are read from files you have: the four gzipped IDX files as their authors publish
them, whose MD5s are the published ones below.  Once verified they are cached uncompressed in
``<cache>/<name>/`` with a ``checksums.json`` of the uncompressed files, which every later read
checks, so a file changed on disk after caching is refused.  Splits follow MNIST's convention:
the last 10,000 of the 60,000 training images validate.

A new data set is one entry here plus one line in ``registry.DATASETS``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownDataset:
    name: str
    title: str
    homepage: str
    classes: tuple[str, ...]
    gz_md5: dict[str, str]  # published MD5s of the four .gz files, by file name (no .gz)
    reference: str = ""

    def describe(self) -> str:
        return f"{self.title} ({len(self.classes)} classes: {', '.join(self.classes)})"


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
