"""The latent explorer page: self-contained, exact weights, and (in headless Chromium) pixels
that match the Python decoder.

The browser tests need ``/usr/bin/chromium``, ``/usr/bin/chromedriver`` and selenium
(``bash scripts/install_browser.sh``; other paths via ``VAELAB_CHROMIUM`` and
``VAELAB_CHROMEDRIVER``).  Without them they are skipped, unless ``VAELAB_REQUIRE_BROWSER=1``,
which turns a missing browser into a failure.  ``-k "not browser"`` deselects them.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import string
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import console_problems, tiny_run
from torch import nn

from vaelab import explore
from vaelab.errors import VaelabError
from vaelab.explore import CONV_REFUSED, DATA_ID, PLANE_CANVAS, explorer_html, write_explorer
from vaelab.models import build_model
from vaelab.nets import ACTIVATIONS
from vaelab.runs import load_run, save_weights, write_json

PIXEL_TOL = 0.5 / 255 + 1e-4  # a gray level is round(255 p); float32 vs float64 adds ~1e-6


def page_data(page: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def f32(b64: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4").reshape(shape)


def numpy_decode(data: dict, z: np.ndarray) -> np.ndarray:
    """The exported decoder run in float64 numpy, with torch's activation formulas."""
    h = np.asarray(z, dtype=np.float64)
    erf = np.vectorize(math.erf)
    for la in data["layers"]:
        t = la["type"]
        if t == "linear":
            h = f32(la["weight"], la["shape"]) @ h + (
                f32(la["bias"], la["shape"][0]) if la["bias"] else 0
            )
        elif t == "relu":
            h = np.maximum(h, 0)
        elif t == "tanh":
            h = np.tanh(h)
        elif t == "elu":
            h = np.where(h > 0, h, la["alpha"] * np.expm1(np.minimum(h, 0)))
        elif t == "leaky_relu":
            h = np.where(h > 0, h, la["slope"] * h)
        elif t == "softplus":
            bx = la["beta"] * h
            h = np.where(bx > la["threshold"], h, np.log1p(np.exp(np.minimum(bx, 50))) / la["beta"])
        elif t == "gelu":
            assert la["approximate"] == "none"
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        else:
            raise AssertionError(t)
    return 1 / (1 + np.exp(-h)) if data["output"] == "sigmoid" else h


def torch_mean(model, z) -> np.ndarray:
    with torch.no_grad():
        return model.decode(torch.tensor([z], dtype=torch.float32)).mean[0].double().numpy()


# ---------------------------------------------------------------- the page, without a browser


def test_page_is_self_contained(tmp_path, tiny_splits):
    run = tiny_run(tmp_path / "run", tiny_splits)
    out = write_explorer(run)
    assert out == run / "explorer.html"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page and "url(" not in page
    for target in re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page):
        assert target.startswith(("data:", "#")), target
    assert re.findall(r"<script[^>]*>", page) == [
        f'<script type="application/json" id="{DATA_ID}">',
        "<script>",
    ]
    assert "<link" not in page.replace('<link rel="icon" href="data:,">', "")
    assert not list(run.glob(".explorer.html.*"))  # written atomically, nothing left over


ASSET_NAMES = ["explorer.html", "explorer.css", "explorer.js"]


def test_page_is_made_of_package_files(tmp_path, tiny_splits):
    assets = {}
    for name in ASSET_NAMES:
        resource = files("vaelab") / "assets" / name
        assert resource.is_file(), name
        assets[name] = resource.read_text(encoding="utf-8")
        assert assets[name].strip(), name
        assert explore.asset_text(name) == assets[name]
    css, js = assets["explorer.css"], assets["explorer.js"]
    assert "</style" not in css.lower() and "</script" not in js.lower()  # inserted verbatim
    fields = {f for _, f, _, _ in string.Formatter().parse(assets["explorer.html"]) if f}
    assert fields == {
        "title", "name", "describe", "explain", "plane_text", "legend", "prior_button",
        "css", "data_id", "data", "js",
    }  # fmt: skip
    run = tiny_run(tmp_path / "run", tiny_splits)
    page = write_explorer(run).read_text(encoding="utf-8")
    assert f"<style>\n{css}</style>" in page and f"<script>\n{js}</script>" in page


def test_page_files_are_read_when_a_page_is_made(tmp_path, monkeypatch, tiny_splits):
    """Each page reads the files anew through importlib.resources, not once at import."""
    model = build_model("vae", hidden=[16], latent_dim=2).eval()
    package = tmp_path / "vaelab"
    (package / "assets").mkdir(parents=True)
    template = explore.asset_text("explorer.html").replace("</body>", "<!-- {{x}} -->\n</body>")
    edited = {
        "explorer.html": template,  # a literal brace in the template is doubled
        "explorer.css": "body { color: red; }\n",
        "explorer.js": 'console.log("{js} {0} }{");\n',  # braces here are never formatted
    }
    for name, text in edited.items():
        (package / "assets" / name).write_text(text, encoding="utf-8")
    asked = []

    def fake_files(anchor):
        asked.append(anchor)
        return package

    assert explore.files is files
    monkeypatch.setattr(explore, "files", fake_files)
    page = explorer_html(model, tiny_splits["test"])
    assert asked == ["vaelab"] * 3
    assert "<style>\nbody { color: red; }\n</style>" in page
    assert '<script>\nconsole.log("{js} {0} }{");\n</script>' in page
    assert "<!-- {x} -->\n</body>" in page
    assert page_data(page)["latent_dim"] == 2


def test_weights_are_embedded_bit_exactly(tmp_path, tiny_splits):
    run = tiny_run(tmp_path / "run", tiny_splits, hidden=[24, 16], latent_dim=3)
    model = load_run(run)
    data = page_data(write_explorer(run).read_text())
    linears = [m for m in model.decoder if isinstance(m, nn.Linear)]
    exported = [la for la in data["layers"] if la["type"] == "linear"]
    assert [la["shape"] for la in exported] == [[16, 3], [24, 16], [784, 24]]
    for m, la in zip(linears, exported, strict=True):
        w, b = f32(la["weight"], la["shape"]), f32(la["bias"], la["shape"][0])
        assert np.array_equal(w.view("<u4"), m.weight.detach().numpy().astype("<f4").view("<u4"))
        assert np.array_equal(b.view("<u4"), m.bias.detach().numpy().astype("<f4").view("<u4"))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_exports_and_decodes_like_torch(activation, tiny_splits):
    torch.manual_seed(0)
    model = build_model("vae", hidden=[16, 12], latent_dim=2, activation=activation).eval()
    data = page_data(explorer_html(model, tiny_splits["test"]))
    assert [la["type"] for la in data["layers"]] == [
        "linear", activation, "linear", activation, "linear"
    ]  # fmt: skip
    for z in ([0.0, 0.0], [2.5, -1.5], [-3.0, 3.0]):
        np.testing.assert_allclose(numpy_decode(data, z), torch_mean(model, z), atol=1e-5)


def test_linear_gaussian_decoder_exports(tiny_splits):
    model = build_model("ae", latent_dim=4, decoder="linear", likelihood="gaussian").eval()
    data = page_data(explorer_html(model, tiny_splits["test"]))
    assert [la["type"] for la in data["layers"]] == ["linear"] and data["output"] == "identity"
    z = [1.0, -2.0, 0.5, 3.0]
    np.testing.assert_allclose(numpy_decode(data, z), torch_mean(model, z), atol=1e-5)
    empty = page_data(explorer_html(model, tiny_splits["test"], n_points=0))
    assert empty["points"]["n"] == 0 and empty["plane"]["extent"] == [-3, 3, -3, 3]


def test_conv_decoder_is_refused_before_any_data_is_read(tmp_path):
    model = build_model("vae", latent_dim=2, hidden=[16], decoder="conv")
    run = tmp_path / "conv"
    config = {"model": "vae", "model_config": model.config, "train": {}, "data": {}}
    write_json(run / "config.json", config)
    save_weights(model, run / "best.safetensors")
    with pytest.raises(VaelabError) as err:
        write_explorer(run)  # no splits: it would have to fetch MNIST, and must not get there
    assert str(err.value) == CONV_REFUSED
    assert not (run / "explorer.html").exists()


def test_unknown_decoder_modules_are_refused(tiny_splits):
    model = build_model("vae", latent_dim=2, hidden=[16])
    model.decoder = nn.Sequential(nn.Linear(2, 784), nn.Sigmoid())
    with pytest.raises(VaelabError, match="cannot export decoder module Sigmoid"):
        explorer_html(model, tiny_splits["test"])
    with pytest.raises(VaelabError, match="2 or more dimensions"):
        explorer_html(build_model("vae", latent_dim=1, hidden=[8]), tiny_splits["test"])


def test_2d_plane_is_z_itself(tmp_path, tiny_splits):
    run = tiny_run(tmp_path / "run", tiny_splits)
    out = write_explorer(run, tmp_path / "elsewhere" / "x.html", n_points=50, seed=3)
    data = page_data(out.read_text())
    assert not (run / "explorer.html").exists()
    plane = data["plane"]
    assert plane["origin"] == [0, 0] and plane["axes"] == [[1, 0], [0, 1]]
    x0, x1, y0, y1 = plane["extent"]
    xy = f32(data["points"]["xy"], (-1, 2))
    pick = torch.randperm(128, generator=torch.Generator().manual_seed(3))[:50]
    model = load_run(run)
    with torch.no_grad():
        means = model.code(tiny_splits["test"].x[pick]).numpy()
    np.testing.assert_allclose(xy, means, atol=1e-6)
    labels = np.frombuffer(base64.b64decode(data["points"]["labels"]), dtype=np.uint8)
    assert labels.tolist() == tiny_splits["test"].y[pick].tolist()
    assert x0 <= xy[:, 0].min() and xy[:, 0].max() <= x1
    assert y0 <= xy[:, 1].min() and xy[:, 1].max() <= y1
    assert math.isclose(x1 - x0, y1 - y0)  # one scale on both axes


def test_higher_d_plane_spans_the_principal_directions(tmp_path, tiny_splits):
    run = tiny_run(tmp_path / "run", tiny_splits, latent_dim=5)
    data = page_data(write_explorer(run).read_text())
    assert data["points"]["n"] == data["points"]["total"] == 128  # fewer images than n_points
    model = load_run(run)
    with torch.no_grad():
        codes = model.code(tiny_splits["test"].x).double()
    origin, axes = np.array(data["plane"]["origin"]), np.array(data["plane"]["axes"])
    np.testing.assert_allclose(origin, codes.mean(0).numpy(), atol=1e-9)
    np.testing.assert_allclose(axes @ axes.T, np.eye(2), atol=1e-9)
    centred = (codes - codes.mean(0)).numpy()
    top2 = np.linalg.svd(centred, full_matrices=False)[2][:2]  # the top two right singular vectors
    np.testing.assert_allclose(np.abs(axes @ top2.T), np.eye(2), atol=1e-6)
    assert len(data["sliders"]["lo"]) == 5 and data["start"] == data["plane"]["origin"]
    assert min(data["sliders"]["hi"]) >= 3 and max(data["sliders"]["lo"]) <= -3


def test_text_is_escaped_and_output_is_deterministic(tmp_path, tiny_splits):
    run = tiny_run(tmp_path / "</script><b>&'\"run", tiny_splits)
    a = write_explorer(run, tmp_path / "a.html").read_text()
    b = write_explorer(run, tmp_path / "b.html").read_text()
    c = write_explorer(run, tmp_path / "c.html", seed=1).read_text()
    assert a == b and page_data(a)["points"] != page_data(c)["points"]
    assert html.escape(run.name) in a and run.name not in a
    assert a.count("</script>") == 2 and "<b>" not in a


# ---------------------------------------------------------------- in headless Chromium


def open_page(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + 10
    while not driver.execute_script("return !!window.vaelab"):
        assert time.monotonic() < deadline, "window.vaelab never appeared"
        time.sleep(0.05)
    assert console_problems(driver) == []


READ_PIXELS = """
const c = document.getElementById(window.vaelab.digitCanvas);
const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
const out = [];
let uniform = c.width === 280 && c.height === 280;
for (let r = 0; r < 28; r++) for (let col = 0; col < 28; col++) {
  const k = 4 * ((10 * r + 5) * 280 + 10 * col + 5);
  out.push(px[k]);
  for (let dy = 0; dy < 10; dy++) for (let dx = 0; dx < 10; dx++) {
    const j = 4 * ((10 * r + dy) * 280 + 10 * col + dx);
    if (px[j] !== px[k] || px[j + 1] !== px[k] || px[j + 2] !== px[k] || px[j + 3] !== 255)
      uniform = false;
  }
}
return [out, uniform];
"""


def assert_digit_matches(driver, model) -> list[float]:
    """The digit canvas shows model.decode(z).mean at the z the page reports; returns z."""
    z = driver.execute_script("return window.vaelab.getLatent()")
    pixels, uniform = driver.execute_script(READ_PIXELS)
    assert uniform, "every pixel must be a uniform 10x10 gray block"
    expected = np.clip(torch_mean(model, z), 0, 1)
    err = np.abs(np.array(pixels) / 255 - expected).max()
    assert err <= PIXEL_TOL, f"digit canvas differs from the Python decoder by {err * 255:.2f}/255"
    return z


@pytest.mark.parametrize(
    "config",
    [
        {"activation": "relu", "latent_dim": 2},
        {"activation": "tanh", "latent_dim": 3},
        {"activation": "gelu", "latent_dim": 4, "hidden": [32, 24]},
        {"activation": "elu", "latent_dim": 2},
        {"activation": "softplus", "latent_dim": 2},
        {"activation": "leaky_relu", "latent_dim": 3},
        {"decoder": "linear", "likelihood": "gaussian", "latent_dim": 3},
        {"activation": "tanh", "likelihood": "cbernoulli", "latent_dim": 2},
    ],
    ids=lambda c: "-".join(str(v) for v in c.values()),
)
def test_browser_decodes_like_torch(browser, tmp_path, tiny_splits, config):
    run = tiny_run(tmp_path / "run", tiny_splits, **config)
    model = load_run(run)
    open_page(browser, write_explorer(run, n_points=300))
    d = model.latent_dim
    assert browser.execute_script("return window.vaelab.latentDim") == d
    start = assert_digit_matches(browser, model)  # as loaded: the mean of the latent means
    assert np.allclose(start, page_data((run / "explorer.html").read_text())["start"])
    rng = np.random.default_rng(0)
    for z in [np.zeros(d), rng.normal(size=d), 3 * rng.normal(size=d), np.full(d, -4.0)]:
        z = z.tolist()
        browser.execute_script("window.vaelab.setLatent(arguments[0])", z)
        assert browser.execute_script("return window.vaelab.getLatent()") == pytest.approx(z)
        assert_digit_matches(browser, model)
        js = browser.execute_script("return Array.from(window.vaelab.decode(arguments[0]))", z)
        assert np.abs(np.array(js) - torch_mean(model, z)).max() < 1e-4
    assert console_problems(browser) == []


def activation_probe(activation: str, n: int = 196) -> nn.Module:
    """A Gaussian AE whose decoder mean at z = (s, 0) is ``act(s * t)`` on a grid t of [-10, 10].

    Hidden unit k computes ``t_k z1``; output pixel i copies hidden unit ``i % n``.  Any
    approximation of an activation (GELU's tanh form, say) shows up at ~1e-4.
    """
    model = build_model(
        "ae", latent_dim=2, hidden=[n], activation=activation, likelihood="gaussian"
    ).eval()
    first, last = model.decoder[0], model.decoder[2]
    with torch.no_grad():
        first.weight.zero_()
        first.weight[:, 0] = torch.linspace(-10, 10, n)
        first.bias.zero_()
        last.weight.copy_(torch.eye(n).repeat(784 // n + 1, 1)[:784])
        last.bias.zero_()
    return model


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_browser_activations_match_torch(browser, tmp_path, tiny_splits, activation):
    model = activation_probe(activation)
    out = tmp_path / "probe.html"
    out.write_text(explorer_html(model, tiny_splits["test"], n_points=10))
    open_page(browser, out)
    for s in (0.05, 1.0, 3.0):  # pre-activations in [-0.5, 0.5], [-10, 10], [-30, 30]
        z = [s, 0.0]
        js = browser.execute_script("return Array.from(window.vaelab.decode(arguments[0]))", z)
        want = torch_mean(model, z)
        assert (np.abs(np.array(js) - want) <= 1e-6 * (1 + np.abs(want))).all()
    assert console_problems(browser) == []


def test_browser_sliders_and_plane_follow_real_mouse_events(browser, tmp_path, tiny_splits):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = tiny_run(tmp_path / "run", tiny_splits, activation="gelu", latent_dim=4)
    model = load_run(run)
    out = write_explorer(run, n_points=300)
    data = page_data(out.read_text())
    origin, axes = np.array(data["plane"]["origin"]), np.array(data["plane"]["axes"])
    x0, x1, y0, y1 = data["plane"]["extent"]
    open_page(browser, out)

    def latent() -> np.ndarray:
        return np.array(browser.execute_script("return window.vaelab.getLatent()"))

    def sliders() -> list:
        return [browser.find_element(By.ID, f"z{k + 1}") for k in range(4)]

    # a slider: click on it, then two arrow keys; only its coordinate moves
    before = latent()
    s = sliders()[2]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", s)
    ActionChains(browser).move_to_element_with_offset(s, 40, 0).click().perform()
    moved = latent()
    assert moved[2] == pytest.approx(float(s.get_property("value"))) and moved[2] > before[2]
    assert np.array_equal(np.delete(moved, 2), np.delete(before, 2))
    s.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    stepped = latent()
    assert stepped[2] == pytest.approx(moved[2] + 0.02)
    assert_digit_matches(browser, model)

    # the plane: a click, then a drag; z lands on the plane where the pointer was released
    plane = browser.find_element(By.ID, PLANE_CANVAS)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", plane)
    size = browser.execute_script("return arguments[0].clientWidth", plane)

    def expected_z(dx: float, dy: float) -> tuple[np.ndarray, float]:
        """z under the pointer at (dx, dy) CSS px from the plane's centre, and 1 px in z units."""
        a = x0 + (size / 2 + dx) / size * (x1 - x0)
        b = y1 - (size / 2 + dy) / size * (y1 - y0)
        return origin + a * axes[0] + b * axes[1], (x1 - x0) / size

    for path in ([(-120, 80)], [(-100, 50), (60, -30), (60, -30)]):
        chain = ActionChains(browser).move_to_element_with_offset(plane, *path[0])
        if len(path) == 1:
            chain.click()
        else:
            chain.click_and_hold()
            for step in path[1:]:
                chain.move_by_offset(*step)
            chain.release()
        chain.perform()
        dx, dy = np.sum(path, axis=0)
        want, px = expected_z(dx, dy)
        z = latent()
        assert np.abs(z - want).max() < 1.5 * px * np.sqrt(2), (z, want)
        off_plane = z - origin - (z - origin) @ axes.T @ axes
        assert np.abs(off_plane).max() < 1e-9  # a click on the plane puts z on it
        for k, slider in enumerate(sliders()):  # the sliders follow the plane
            lo, hi = data["sliders"]["lo"][k], data["sliders"]["hi"][k]
            assert float(slider.get_property("value")) == pytest.approx(
                min(max(z[k], lo), hi), abs=0.0051
            )
        assert_digit_matches(browser, model)
    assert console_problems(browser) == []
