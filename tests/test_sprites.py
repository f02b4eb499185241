"""``sprites``: vaelab's rendering of the dSprites grid, its splits and its catalogue entry.

The SHA-256 constants pin the bytes (the same on every machine: the pixels are decided by
float64 +, -, *, / and Python's math.cos / math.sin); the other tests check properties that
hold independently of them (area grows with scale, a turn of 2 pi changes nothing, the heart
is mirror-symmetric, a position step is a one-pixel shift, no sprite touches the border).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vaelab.cli import main
from vaelab.config import DataConfig
from vaelab.data import (
    GRID_TEST_SIZE,
    DataError,
    data_facts,
    grid_split,
    ground_truth,
    load_splits,
)
from vaelab.data import colour_sprites as cs
from vaelab.data import sprites as sp

GRID = sp.SpritesGrid()
COLOUR = cs.ColourSpritesGrid()
COLOUR_SAMPLE_SHA256 = "1b6a217d43a0b02965789ceebb3121335a625f9527863d7f47e816eec113e085"
MASKS_SHA256 = "9d5dfd2587a06418e804417be5c2f338e9071eeec4013f86562b454777127c61"
SAMPLE_SHA256 = "8687872e2239a791cdab6d0bb7fd3f6dbb70db4249afd6727cee849f9d316b26"


def sample_index(n: int = 256) -> np.ndarray:
    """A fixed spread of grid positions (integer arithmetic: no generator's version matters)."""
    return (np.arange(n, dtype=np.int64) * 2_879 + 1_013) % len(GRID)


def masks_bool() -> np.ndarray:
    return sp.centred_masks().reshape(3, 6, 40, sp.PATCH, sp.PATCH) > 0


def test_the_grid_has_dsprites_factors_in_its_order():
    assert GRID.names == ("shape", "scale", "orientation", "x", "y")
    assert GRID.sizes == (3, 6, 40, 32, 32) and len(GRID) == 737_280
    np.testing.assert_allclose(GRID.values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], atol=1e-12)
    assert GRID.values[2][0] == 0 and abs(GRID.values[2][-1] - 2 * np.pi) < 1e-12
    assert GRID.classes == ("square", "ellipse", "heart") and GRID.shape == (1, 64, 64)
    i = 123_457
    np.testing.assert_array_equal(GRID.factors_of([i])[0], np.unravel_index(i, GRID.sizes))


def test_masks_and_a_sample_have_their_pinned_bytes():
    assert hashlib.sha256(sp.centred_masks().tobytes()).hexdigest() == MASKS_SHA256
    images = GRID.images(GRID.factors_of(sample_index()))
    assert images.shape == (256, 4096) and images.dtype == np.uint8
    assert hashlib.sha256(images.tobytes()).hexdigest() == SAMPLE_SHA256


def test_pixels_are_0_or_255_so_unit_pixels_are_exactly_0_or_1():
    images = GRID.images(GRID.factors_of(sample_index()))
    assert set(np.unique(images).tolist()) == {0, 255}


def test_each_mask_grows_with_scale_and_a_turn_of_two_pi_changes_nothing():
    area = masks_bool().sum(axis=(3, 4))  # (shape, scale, orientation)
    assert (np.diff(area, axis=1) > 0).all()
    np.testing.assert_array_equal(masks_bool()[:, :, 0], masks_bool()[:, :, -1])
    # the square at scale 1, unturned: pixel centres within 9.5 px of its centre, 19 x 19
    assert area[0, 5, 0] == 19 * 19
    # turning changes the ellipse (not a circle) but keeps its area within 10 %
    ellipse = area[1, 5]
    assert (masks_bool()[1, 5, 0] != masks_bool()[1, 5, 5]).any()
    assert ellipse.max() <= 1.1 * ellipse.min()


def test_the_unturned_heart_is_mirror_symmetric_about_its_centre_column():
    heart = masks_bool()[2, :, 0]  # (scale, row, column), centre column sp.CENTRE
    left = heart[:, :, 1 : sp.CENTRE]
    right = heart[:, :, sp.CENTRE + 1 : 2 * sp.CENTRE][:, :, ::-1]
    np.testing.assert_array_equal(left, right)
    assert heart.any(axis=(1, 2)).all()


def test_a_position_step_moves_the_sprite_by_exactly_one_pixel():
    rng = np.random.default_rng(3)
    for _ in range(20):
        f = GRID.sample_factors(1, rng)[0]
        base = f.copy()
        base[3:] = 0
        img = GRID.images(f[None]).reshape(64, 64)
        origin = GRID.images(base[None]).reshape(64, 64)
        np.testing.assert_array_equal(img, np.roll(origin, (f[4], f[3]), axis=(0, 1)))


def test_no_sprite_touches_the_border():
    corners = []
    for x, y in [(0, 0), (31, 31), (0, 31), (31, 0)]:
        f = GRID.factors_of(np.arange(720) * 1024)  # every mask at x = y = 0
        f[:, 3], f[:, 4] = x, y
        corners.append(GRID.images(f).reshape(-1, 64, 64))
    images = np.concatenate(corners)
    assert images[:, :, [0, -1]].max() == 0 and images[:, [0, -1], :].max() == 0


def test_splits_are_disjoint_fixed_and_their_train_limit_a_prefix():
    parts = grid_split(len(GRID), 500)
    assert len(parts["test"]) == GRID_TEST_SIZE and len(parts["val"]) == 500
    assert len(parts["train"]) == len(GRID) - GRID_TEST_SIZE - 500
    joined = np.concatenate(list(parts.values()))
    assert len(np.unique(joined)) == len(GRID)
    limited = grid_split(len(GRID), 500, train_limit=50)
    np.testing.assert_array_equal(limited["train"], parts["train"][:50])
    np.testing.assert_array_equal(limited["test"], parts["test"])
    with pytest.raises(Exception, match="val_size"):
        grid_split(len(GRID), len(GRID))


def test_loaded_splits_carry_factors_that_make_their_images():
    cfg = DataConfig(dataset="sprites", train_limit=64, val_size=32)
    splits = load_splits(cfg)
    other = load_splits(DataConfig(dataset="sprites", train_limit=64, val_size=32, binarize_seed=5))
    seen = []
    for name, s in splits.items():
        assert s.has_factors and s.factor_names == GRID.names and s.factors.dtype == torch.int64
        assert torch.equal(s.y, s.factors[:, 0]) and s.classes == GRID.classes
        assert torch.equal(s.factors, other[name].factors)  # not drawn from binarize_seed
        again = GRID.images(s.factors[:8].numpy())
        np.testing.assert_array_equal(s.pixels[:8].numpy(), again)
        seen.append(GRID.index_of(s.factors.numpy()))
    assert [len(i) for i in seen] == [64, 32, GRID_TEST_SIZE]
    assert len(np.unique(np.concatenate(seen))) == sum(len(i) for i in seen)
    assert cfg.binary and "binary" in cfg.describe()


def test_facts_come_without_rendering_and_other_data_have_no_grid(monkeypatch):
    def refuse(self, factors):
        raise AssertionError("rendered")

    monkeypatch.setattr(sp.SpritesGrid, "render", refuse)
    facts = data_facts(DataConfig(dataset="sprites"))
    assert facts == {"image_shape": [1, 64, 64], "num_classes": 3}
    assert isinstance(ground_truth(DataConfig(dataset="sprites")), sp.SpritesGrid)
    assert ground_truth(DataConfig()) is None


def test_a_split_over_the_data_budget_is_refused_before_rendering(monkeypatch):
    monkeypatch.setenv("VAELAB_MAX_DATA_BYTES", str(4096 * 5_000))
    with pytest.raises(DataError, match="--train-limit"):
        load_splits(DataConfig(dataset="sprites", train_limit=100, val_size=7))


def test_fetch_says_sprites_are_rendered_when_used(capsys):
    assert main(["data", "fetch", "sprites"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "nothing to fetch" in out[0] and "not DeepMind's file" in out[0]


# sprites-colour: the same masks in 4 colours on a hashed noise background


def test_splitmix64_matches_its_published_outputs():
    # SplitMix64 seeded with 0 gives 0xE220A8397B1DCDAF, then 0x6E789E6AA1B965F4 (Vigna's
    # splitmix64.c); our function of counter c is the generator's output at state c + golden
    got = cs.splitmix64(np.array([0, 0x9E3779B97F4A7C15], dtype=np.uint64))
    assert got.tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_colour_sprites_have_their_pinned_bytes_and_render_alone_as_in_a_batch():
    index = (np.arange(128, dtype=np.int64) * 23_039 + 5) % len(COLOUR)
    images = COLOUR.images(COLOUR.factors_of(index))
    assert images.shape == (128, 3 * 64 * 64) and len(COLOUR) == 4 * 737_280
    assert hashlib.sha256(images.tobytes()).hexdigest() == COLOUR_SAMPLE_SHA256
    for k in (0, 77, 127):  # one image alone: the same bytes, nothing else generated
        np.testing.assert_array_equal(COLOUR.images(COLOUR.factors_of(index[[k]]))[0], images[k])


def test_colour_sprites_are_the_masks_in_their_colour_on_low_contrast_noise():
    rng = np.random.default_rng(7)
    f = COLOUR.sample_factors(200, rng)
    images = COLOUR.images(f).reshape(200, 3, 64, 64).astype(np.int64)
    masks = GRID.images(f[:, 1:]).reshape(200, 64, 64) > 0  # the sprites grid's masks
    for k in range(200):
        on = images[k][:, masks[k]]  # (3, pixels)
        assert (on == cs.RGB[f[k, 0]][:, None]).all()
        off = images[k][:, ~masks[k]]
        assert (off[0] == off[1]).all() and (off[0] == off[2]).all()  # grey
        assert off.max() < cs.NOISE_LEVELS
    noise = images[:, 0][~masks]
    counts = np.bincount(noise, minlength=cs.NOISE_LEVELS)
    expected = len(noise) / cs.NOISE_LEVELS  # uniform levels; 5 sigma of a binomial count
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)


def test_the_noise_depends_on_the_grid_index_not_on_the_factors_alone():
    a, b, a_again = cs.background(np.array([10, 11, 10]))
    np.testing.assert_array_equal(a, a_again)
    np.testing.assert_array_equal(a, cs.background(np.array([10]))[0])
    assert (a != b).mean() > 0.9  # two images' noise: independent levels differ 31/32 of the time


def test_colour_splits_label_the_shape_and_refuse_a_full_train_split():
    cfg = DataConfig(dataset="sprites-colour", train_limit=16, val_size=8)
    train = load_splits(cfg)["train"]
    assert train.shape == (3, 64, 64) and train.factor_names[:2] == ("colour", "shape")
    assert torch.equal(train.y, train.factors[:, 1]) and not cfg.binary
    assert data_facts(cfg) == {"image_shape": [3, 64, 64], "num_classes": 3}
    with pytest.raises(DataError, match="--train-limit"):
        load_splits(DataConfig(dataset="sprites-colour"))
