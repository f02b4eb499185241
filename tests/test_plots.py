"""Figures and the HTML report: valid PNGs, the right cells, the right files, a safe page."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_run

from vaelab import plots
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.report import write_report
from vaelab.runs import Run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL = {"reconstructions.png", "samples.png", "latents.png", "interpolation.png", "curves.png",
       "traversals.png", "means-draws.png", "kl-per-unit.png"}  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def small_model(name: str = "vae", latent_dim: int = 2):
    torch.manual_seed(0)
    return build_model(name, hidden=[16], latent_dim=latent_dim).eval()


def trained_run(path: Path, splits, latent_dim: int = 2) -> Path:
    return tiny_run(path, splits, hidden=[16], latent_dim=latent_dim)


class DecodeRecorder:
    """Wraps ``model.decode`` and keeps every z it is called with."""

    def __init__(self, model):
        self.zs: list[torch.Tensor] = []
        self.decode = model.decode
        model.decode = self

    def __call__(self, z, y=None):
        self.zs.append(z.detach().clone())
        return self.decode(z, y)


def test_tile_puts_image_i_in_row_i_div_ncol_column_i_mod_ncol():
    images = np.stack([np.full(784, i / 10) for i in range(5)])  # image i: every pixel i/10
    mosaic = plots.tile(images, ncol=3, pad=1)
    assert mosaic.shape == (2 * 29 + 1, 3 * 29 + 1)
    for i in range(5):
        r, c = divmod(i, 3)
        cell = mosaic[1 + 29 * r : 1 + 29 * r + 28, 1 + 29 * c : 1 + 29 * c + 28]
        np.testing.assert_allclose(cell, i / 10)
    assert (mosaic[0] == 1).all() and (mosaic[:, 29] == 1).all()  # white gaps
    np.testing.assert_allclose(mosaic[30:, 59:], 1)  # the empty sixth cell stays white


def test_tile_keeps_pixel_layout_row_major():
    img = np.arange(784, dtype=np.float32) / 784
    mosaic = plots.tile(torch.from_numpy(img)[None], ncol=1, pad=0)
    np.testing.assert_array_equal(mosaic, img.reshape(28, 28))


@pytest.mark.parametrize("d", [1, 2, 5])
def test_latent_scatter_writes_png_for_any_latent_dim(tmp_path, d):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    z = rng.normal(size=(300, d)) + labels[:, None]
    path = plots.latent_scatter(torch.from_numpy(z), labels, tmp_path / "z.png", "extra words")
    w, h = png_size(path)
    assert 500 < w < 1500 and 400 < h < 1200


def test_latent_scatter_refuses_mismatched_labels(tmp_path):
    with pytest.raises(VaelabError):
        plots.latent_scatter(np.zeros((5, 2)), np.zeros(4), tmp_path / "z.png")


def test_manifold_grid_vae_uses_prior_quantiles_top_left_is_low_z1_high_z2(tmp_path):
    model = small_model("vae")
    rec = DecodeRecorder(model)
    path = plots.manifold_grid(model, tmp_path / "m.png", n=6)
    (z,) = rec.zs
    assert z.shape == (36, 2)
    q = torch.special.ndtri(torch.tensor(0.95)).item()  # 1.645
    assert torch.allclose(z[0], torch.tensor([-q, q]), atol=1e-5)  # top-left cell
    assert torch.allclose(z[-1], torch.tensor([q, -q]), atol=1e-5)  # bottom-right cell
    assert torch.allclose(z[:6, 1], z[0, 1].expand(6))  # a row has one z2, growing z1
    assert (z[1:6, 0] > z[:5, 0]).all()
    w, h = png_size(path)
    assert w > 500 and h > 500


def test_manifold_grid_ae_spans_the_fitted_code_gaussian(tmp_path):
    model = small_model("ae")
    torch.manual_seed(1)
    model.fit_latent_gaussian(torch.randn(500, 2) * torch.tensor([1.0, 3.0]) + 5)
    rec = DecodeRecorder(model)
    plots.manifold_grid(model, tmp_path / "m.png", n=4)
    z = rec.zs[0]
    std = (model.code_chol @ model.code_chol.T).diagonal().sqrt()
    lo, hi = model.code_mean - 2.3263 * std, model.code_mean + 2.3263 * std
    assert torch.allclose(z.min(0).values, lo, atol=1e-3)
    assert torch.allclose(z.max(0).values, hi, atol=1e-3)
    png_size(tmp_path / "m.png")


@pytest.mark.parametrize("d", [1, 3, 20])
def test_manifold_grid_refuses_latent_dim_other_than_two(tmp_path, d):
    with pytest.raises(VaelabError, match="2-D"):
        plots.manifold_grid(small_model("vae", d), tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


def test_interpolation_grid_decodes_the_line_between_codes(tmp_path, tiny_splits):
    model = small_model("vae", latent_dim=3)
    x = tiny_splits["test"].x
    x_a, x_b = x[:3], x[3:6]
    rec = DecodeRecorder(model)
    path = plots.interpolation_grid(model, x_a, x_b, tmp_path / "i.png", steps=5)
    z = rec.zs[0].reshape(3, 5, 3)  # (pairs, steps, D)
    with torch.no_grad():
        za, zb = model.code(x_a), model.code(x_b)
    torch.testing.assert_close(z[:, 0], za)  # endpoints included
    torch.testing.assert_close(z[:, -1], zb)
    torch.testing.assert_close(z[:, 2], (za + zb) / 2)
    w, h = png_size(path)
    assert w > h > 150  # 7 columns, 3 rows


def test_interpolation_grid_refuses_unpaired_inputs(tmp_path, tiny_splits):
    x = tiny_splits["test"].x
    with pytest.raises(VaelabError):
        plots.interpolation_grid(small_model(), x[:3], x[3:5], tmp_path / "i.png")


def test_interpolation_pairs_are_deterministic_and_join_different_digits():
    y = np.array([3, 3, 1, 7, 1, 3, 7])
    pairs = plots.interpolation_pairs(y)
    assert pairs == [(2, 0), (0, 3), (3, 2)]  # first 1 -> first 3 -> first 7 -> first 1
    assert all(y[a] != y[b] for a, b in pairs)
    assert plots.interpolation_pairs(np.zeros(5, dtype=int)) == [(0, 1), (2, 3)]


def test_training_curves_vae_and_ae(tmp_path):
    vae_rows = [
        {"epoch": e, "train_loss": 200 / e, "val_loss": 190 / e, "train_recon": 180 / e,
         "val_recon": 170 / e, "train_kl": 20.0, "val_kl": 20.0, "seconds": 1.0}
        for e in (1, 2, 3)
    ]  # fmt: skip
    ae_rows = [{"epoch": e, "train_loss": 9 / e, "val_loss": 8 / e} for e in (1, 2)]
    parts = build_model("vae", hidden=[8], latent_dim=2).about.loss_parts  # asked of the model
    w_vae, _ = png_size(plots.training_curves(vae_rows, tmp_path / "v.png", parts=parts))
    w_ae, _ = png_size(plots.training_curves(ae_rows, tmp_path / "a.png", unit="BCE per image"))
    assert w_vae > w_ae > 400  # the VAE has a second panel for recon and KL
    # parts the metrics do not hold are not drawn: no empty panels
    w_none, _ = png_size(plots.training_curves(ae_rows, tmp_path / "n.png", parts=parts))
    assert w_none == w_ae
    with pytest.raises(VaelabError):
        plots.training_curves([], tmp_path / "e.png")


@pytest.mark.parametrize(
    "d, expected", [(2, ALL | {"manifold.png", "manifold-codes.png"}), (3, ALL)]
)
def test_all_figures_writes_the_expected_files(tmp_path, tiny_splits, d, expected):
    run = trained_run(tmp_path / "run", tiny_splits, latent_dim=d)
    paths = plots.all_figures(run)
    assert {p.name for p in paths} == expected
    assert {p.name for p in (run / "figures").iterdir()} == expected  # no stray temp files
    for p in paths:
        w, h = png_size(p)
        assert w > 200 and h > 150  # a 2-D traversal is two rows


class Attributes(HTMLParser):
    """Every src / href attribute value of a page."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]


def test_report_is_one_self_contained_escaped_page(tmp_path, tiny_splits):
    run = trained_run(tmp_path / "run", tiny_splits, latent_dim=2)
    plots.all_figures(run)
    evaluation = {
        "test": {
            "neg_elbo": 123.456,
            "unit": "nats per image",
            "meaning": "a <script>alert('x')</script> & more",
            "probe": {"accuracy": 0.875, "detail": {"unit": "fraction of images"}},
        }
    }
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    before = set(run.iterdir())
    out = write_report(run)
    assert out == run / "report.html"
    assert set(run.iterdir()) - before == {out}  # one file, no temporary left behind
    html = out.read_text(encoding="utf-8")

    parser = Attributes()
    parser.feed(html)
    images = [r for r in parser.refs if r.startswith("data:image/png;base64,")]
    assert parser.refs == images  # nothing but embedded PNGs is referenced
    pngs = sorted((run / "figures").glob("*.png"))
    assert len(images) == len(pngs) == len(ALL) + 2  # a 2-D run: both manifolds too
    embedded = {base64.b64decode(r.split(",", 1)[1]) for r in images}
    assert embedded == {p.read_bytes() for p in pngs}
    for bad in ("http://", "https://", 'src="/', "<link", "@import", "<script"):
        assert bad not in html

    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "latent_dim" in html and "[16]" in html and "batch_size" in html
    val_loss = Run.load(run).metrics()[0]["val_loss"]
    assert f"{val_loss:.2f}" in html
    assert "123.456" in html and "probe.accuracy" in html and "probe.detail.unit" in html
    assert "fraction of images" in html and str(run) in html


def test_report_without_evaluation_or_figures_and_custom_out(tmp_path, tiny_splits):
    run = trained_run(tmp_path / "run", tiny_splits, latent_dim=2)
    out = write_report(run, tmp_path / "elsewhere" / "r.html")
    html = out.read_text()
    assert out.parent.name == "elsewhere" and not (run / "report.html").exists()
    assert "Evaluation" not in html and "data:image" not in html
    assert "No figures" in html


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(VaelabError):
        write_report(tmp_path)


def test_traversal_grid_moves_one_unit_per_row_most_varying_first(tmp_path):
    torch.manual_seed(0)
    model = small_model(latent_dim=4)
    x = torch.rand(50, 784)
    rec = DecodeRecorder(model)
    path = plots.traversal_grid(model, x, tmp_path / "t.png", units=3, steps=5, index=2)
    assert path.stat().st_size > 1000
    (z,) = rec.zs
    with torch.no_grad():
        means = model.code(x)
    order = torch.argsort(means.var(0), descending=True)[:3]
    assert z.shape == (15, 4)
    for row, u in enumerate(order.tolist()):
        block = z[row * 5 : (row + 1) * 5]
        others = [d for d in range(4) if d != u]
        assert torch.allclose(block[:, others], means[2, others].expand(5, 3))
        expected = means[:, u].mean() + torch.linspace(-2.5, 2.5, 5) * means[:, u].std()
        assert torch.allclose(block[:, u], expected, atol=1e-5)


def test_means_and_draws_shows_the_mean_above_binary_draws(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = small_model(latent_dim=2)
    grids = []
    monkeypatch.setattr(plots, "save_grid", lambda path, images, *a, **k: grids.append(images))
    plots.means_and_draws(model, tmp_path / "m.png", n=6, draws=2)
    (images,) = grids
    assert images.shape == (18, 784)
    means, draws = images[:6], images[6:]
    assert ((means > 0) & (means < 1)).all()  # probabilities
    assert set(draws.unique().tolist()) <= {0.0, 1.0}  # binary images drawn from p(x|z)


def test_kl_per_unit_needs_a_per_unit_kl_in_closed_form(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(30, 784)
    path = plots.kl_per_unit({"vae": small_model(latent_dim=3)}, x, tmp_path / "k.png")
    assert path.stat().st_size > 1000
    with pytest.raises(VaelabError, match="needs a KL per latent unit; model 'ae' has none"):
        plots.kl_per_unit({"ae": small_model("ae", latent_dim=3)}, x, tmp_path / "a.png")
    vamp = build_model("vae", hidden=[16], latent_dim=3, prior="vamp", pseudo_inputs=4)
    with pytest.raises(VaelabError, match="no per-unit KL in closed form"):
        plots.kl_per_unit({"vamp": vamp}, x, tmp_path / "v.png")


def test_manifold_grid_over_codes_spans_their_percentiles(tmp_path):
    torch.manual_seed(0)
    model = small_model(latent_dim=2)
    codes = torch.randn(500, 2) * torch.tensor([0.2, 3.0]) + torch.tensor([1.0, 0.0])
    rec = DecodeRecorder(model)
    plots.manifold_grid(model, tmp_path / "m.png", n=5, codes=codes)
    (z,) = rec.zs
    lo, hi = torch.quantile(codes, 0.01, dim=0), torch.quantile(codes, 0.99, dim=0)
    assert torch.allclose(z.min(0).values, lo, atol=1e-5)
    assert torch.allclose(z.max(0).values, hi, atol=1e-5)
