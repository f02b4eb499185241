"""disentanglement_lib's conv encoder and decoder (``dlconv``): shapes, size, refusals, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import run

from vaelab.errors import VaelabError
from vaelab.nets import build_decoder, build_encoder


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out  # weights + one bias per output channel


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_of_64x64_images(channels):
    shape = (channels, 64, 64)
    enc = build_encoder("dlconv", 20, [], "relu", shape)
    dec = build_decoder("dlconv", 10, [], "relu", shape)
    x = torch.rand(5, channels * 64 * 64)
    assert enc(x).shape == (5, 20)
    assert dec(torch.randn(5, 10)).shape == (5, channels * 64 * 64)
    # the feature map before the dense layers is 64 x 4 x 4, as in disentanglement_lib
    assert enc.features(x.reshape(5, *shape)).shape == (5, 64 * 4 * 4)


@pytest.mark.parametrize("channels", [1, 3])
def test_parameter_count_is_that_of_the_layer_list(channels):
    # disentanglement_lib conv_encoder: conv 4x4 32, 4x4 32, 2x2 64, 2x2 64, dense 256, output
    enc = conv(channels, 32, 4) + conv(32, 32, 4) + conv(32, 64, 2) + conv(64, 64, 2)
    enc += dense(4 * 4 * 64, 256) + dense(256, 2 * 10)
    # deconv_decoder: dense 256, dense 1024, transposed conv 4x4 64, 32, 32, C
    dec = dense(10, 256) + dense(256, 1024)
    dec += conv(64, 64, 4) + conv(64, 32, 4) + conv(32, 32, 4) + 32 * channels * 16 + channels
    shape = (channels, 64, 64)
    assert count(build_encoder("dlconv", 20, [], "relu", shape)) == enc
    assert count(build_decoder("dlconv", 10, [], "relu", shape)) == dec


@pytest.mark.parametrize("build", [build_encoder, build_decoder])
def test_28x28_images_are_refused_in_one_line(build):
    with pytest.raises(VaelabError, match="multiples of 16") as e:
        build("dlconv", 4, [], "relu", (1, 28, 28))
    assert "\n" not in str(e.value)


def test_vaelab_train_takes_dlconv_for_encoder_and_decoder(tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 256, size=(40, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "blobs.npy", images)
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--model", "vae", "--encoder", "dlconv",
                            "--decoder", "dlconv", "--latent-dim", 3, "--data",
                            tmp_path / "blobs.npy", "--epochs", 1, "--batch-size", 16, "--out",
                            out, "--no-progress", "--no-figures")  # fmt: skip
    assert code == 0, err
    assert "done" in stdout
    config = json.loads((out / "config.json").read_text())
    assert (config["model_config"]["encoder"], config["model_config"]["decoder"]) == (
        "dlconv",
        "dlconv",
    )
