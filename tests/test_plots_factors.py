"""Data made from known factors in the figures and in ``vaelab encode``: latent scatters
coloured by a factor, traversal rows named and grouped by the factor each unit follows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import run, tiny_run

from vaelab import plots
from vaelab.data import Split
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.models.helpers import flat_codes

NAMES = ("shape", "scale", "x-position")
SIZES = (3, 4, 6)
SHAPES = ("square", "ellipse", "heart")


def factor_split(n: int, seed: int) -> Split:
    """28x28 images whose pixel 0, 1, 2 hold factor 0, 1, 2 (index / (size - 1)); the other
    pixels are noise.  The labels are the first factor, as in dSprites."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, s, n) for s in SIZES], 1)
    x = rng.uniform(0, 1, size=(n, 784))
    x[:, :3] = factors / (np.array(SIZES) - 1)
    pixels = torch.from_numpy(np.round(255 * x).astype(np.uint8))
    labels = torch.from_numpy(factors[:, 0].copy())
    return Split(pixels, labels, (1, 28, 28), SHAPES, torch.from_numpy(factors), NAMES)


@pytest.fixture
def factor_splits() -> dict[str, Split]:
    return {"train": factor_split(256, 1), "val": factor_split(64, 2), "test": factor_split(400, 3)}


def wired_vae():
    """A VAE whose linear encoder's means read the factor pixels: unit 0 = 3 x-position,
    unit 1 = 2 shape, unit 2 = scale, unit 3 = half x-position, half a noise pixel."""
    torch.manual_seed(0)
    model = build_model("vae", encoder="linear", hidden=[16], latent_dim=4).eval()
    w = torch.zeros(8, 784)  # rows 0..3: the means; 4..7: log-variances (left at 0)
    w[0, 2], w[1, 0], w[2, 1], w[3, 2], w[3, 5] = 3.0, 2.0, 1.0, 0.5, 0.5
    with torch.no_grad():
        model.encoder.weight.copy_(w)
        model.encoder.bias.zero_()
    return model


def test_traversal_rows_name_the_factor_each_unit_was_built_from():
    split = factor_split(2000, 0)
    model = wired_vae()
    means = flat_codes(model, split.x)
    order, labels = plots.traversal_rows(means, split, units=4, order_by="variance")
    assert order == [0, 1, 2, 3]  # variances about 1.05, 0.67, 0.14, 0.05
    assert labels[:3] == [
        "unit 0: x-position (1.00)",
        "unit 1: shape (1.00)",
        "unit 2: scale (1.00)",
    ]
    assert labels[3].startswith("unit 3: x-position (")
    assert 0.1 < float(labels[3].split("(")[1].rstrip(")")) < 0.9  # half noise: partly
    # by factor: shape, scale, then both x-position units, the stronger first
    order, labels = plots.traversal_rows(means, split, units=4, order_by="factor")
    assert order == [1, 2, 0, 3]
    assert [lab.split(": ")[1].split(" (")[0] for lab in labels] == [
        "shape",
        "scale",
        "x-position",
        "x-position",
    ]


def test_traversal_grid_of_a_split_with_factors_and_its_refusals(tmp_path):
    split = factor_split(300, 0)
    model = wired_vae()
    path = plots.traversal_grid(model, split, tmp_path / "t.png", units=4, steps=5,
                                order_by="factor")  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
    plain = Split(split.pixels, split.y, split.shape, split.classes)
    with pytest.raises(VaelabError, match="known factors"):
        plots.traversal_grid(model, plain, tmp_path / "u.png", order_by="factor")
    with pytest.raises(VaelabError, match="order_by must be one of variance, factor"):
        plots.traversal_grid(model, split, tmp_path / "u.png", order_by="size")
    assert not (tmp_path / "u.png").exists()


def test_factor_colours_tell_categorical_from_ordered_and_name_the_factors():
    split = factor_split(50, 0)
    shape = plots.factor_colours(split, "shape")
    assert shape.classes == SHAPES and np.array_equal(shape.index, split.factors[:, 0].numpy())
    scale = plots.factor_colours(split, "scale")
    assert scale.classes is None and np.array_equal(scale.index, split.factors[:, 1].numpy())
    with pytest.raises(VaelabError, match="unknown factor 'colour'.*shape, scale, x-position"):
        plots.factor_colours(split, "colour")
    with pytest.raises(VaelabError, match="not made from known factors"):
        plots.factor_colours(Split(split.pixels, split.y), "scale")


def test_latent_scatter_by_an_ordered_factor_draws_a_colour_bar(tmp_path, monkeypatch):
    split = factor_split(200, 0)
    z = np.random.default_rng(0).normal(size=(200, 3))
    bars = []
    original = plots.Figure.colorbar

    def colorbar(self, *args, **kwargs):
        bars.append(original(self, *args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(plots.Figure, "colorbar", colorbar)
    plots.latent_scatter(
        z, split.y, tmp_path / "a.png", factor=plots.factor_colours(split, "scale")
    )
    assert len(bars) == 1 and bars[0].vmin == 0 and bars[0].vmax == 3
    assert "scale" in bars[0].ax.get_ylabel()
    plots.latent_scatter(
        z, split.y, tmp_path / "b.png", factor=plots.factor_colours(split, "shape")
    )
    assert len(bars) == 1  # the categorical shape: a legend, no colour bar
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_a_run_on_factor_data_draws_one_scatter_per_factor(tmp_path, factor_splits):
    out = tiny_run(tmp_path / "run", factor_splits, hidden=[16], latent_dim=3)
    names = {p.name for p in plots.all_figures(out, colour_by="x-position")}
    assert {"latents.png", "latents-shape.png", "latents-scale.png",
            "latents-x-position.png", "traversals.png"} <= names  # fmt: skip
    with pytest.raises(VaelabError, match="unknown factor 'size'"):
        plots.all_figures(out, colour_by="size")


def test_plot_colour_by_and_encode_on_factor_data(tmp_path, factor_splits, capsys):
    out = tiny_run(tmp_path / "run", factor_splits, hidden=[16], latent_dim=2)
    capsys.readouterr()  # the training's own notes
    code, stdout, err = run(capsys, "plot", out, "--colour-by", "nope")
    assert code == 1 and err.count("\n") == 1
    assert "unknown factor 'nope'; this run's data have: shape, scale, x-position" in err
    code, stdout, err = run(capsys, "plot", out, "--colour-by", "scale")
    assert code == 0, err
    assert "latents-scale.png" in stdout
    code, stdout, err = run(capsys, "encode", out, "-o", tmp_path / "z.npz")
    assert code == 0, err
    saved = np.load(tmp_path / "z.npz")
    test = factor_splits["test"]
    assert saved["z"].shape == (400, 2)
    assert np.array_equal(saved["factors"], test.factors.numpy())
    assert tuple(saved["factor_names"]) == NAMES
    assert np.array_equal(saved["labels"], test.y.numpy())


def test_report_captions_name_the_factor_of_each_scatter(tmp_path):
    """The report says which factor colours each per-factor scatter, not "by label"."""
    from PIL import Image

    from vaelab.report import _figures_section

    Image.new("L", (4, 4)).save(tmp_path / "latents-scale.png")
    html = _figures_section(tmp_path)
    assert "coloured by the factor scale" in html and "coloured by label" not in html


def test_a_split_moves_its_factors_with_its_images():
    """``Split.to`` keeps pixels, labels and factors together (on the same device)."""
    import torch

    from vaelab.data import Split

    split = Split(torch.zeros(4, 16, dtype=torch.uint8), torch.arange(4), (1, 4, 4), None,
                  factors=torch.arange(8).reshape(4, 2), factor_names=("a", "b"))  # fmt: skip
    moved = split.to("meta")
    assert moved.pixels.device.type == moved.factors.device.type == "meta"
    assert moved.factor_names == ("a", "b")
