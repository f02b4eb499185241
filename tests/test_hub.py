"""The Hugging Face convention (config.json + model.safetensors through huggingface_hub's
mixin), with local folders only: no test contacts the Hub."""

import json

import pytest
import torch

import vaelab
from vaelab.cli import main
from vaelab.config import DataConfig, TrainConfig
from vaelab.data import use_splits
from vaelab.errors import VaelabError
from vaelab.train import fit, resolve_run

pytest.importorskip("huggingface_hub")


@pytest.fixture
def run(tmp_path, tiny_splits):
    data = DataConfig(binarize="dynamic")
    with use_splits(data, tiny_splits):
        r = resolve_run(tmp_path / "run", "vae", {"hidden": [32], "latent_dim": 3},
                        TrainConfig(epochs=1, batch_size=64), data)  # fmt: skip
        fit(r, progress=False)
    return tmp_path / "run"


def test_save_then_load_gives_the_same_model(run, tmp_path):
    out = vaelab.save_pretrained(run, tmp_path / "export")
    files = sorted(p.name for p in out.iterdir())
    assert "config.json" in files and "model.safetensors" in files
    assert not [f for f in files if f.endswith((".pt", ".pkl", ".bin"))]  # nothing pickled
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "vae" and config["model_config"]["latent_dim"] == 3
    assert "dynamically binarized" in config["data"]["pixels"]
    loaded = vaelab.from_pretrained(out)
    trained = vaelab.load_run(run)
    assert not loaded.training and type(loaded) is type(trained)
    x = torch.rand(5, 784)
    torch.testing.assert_close(loaded.encode(x).mean, trained.encode(x).mean, rtol=0, atol=0)
    z = torch.randn(5, 3)
    torch.testing.assert_close(loaded.decode(z).mean, trained.decode(z).mean, rtol=0, atol=0)


def test_the_command_line_exports(run, tmp_path, capsys):
    assert main(["export", str(run), str(tmp_path / "e"), "--which", "last"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    loaded = vaelab.from_pretrained(tmp_path / "e")
    last = vaelab.load_run(run, "last")
    for a, b in zip(loaded.state_dict().values(), last.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_hostile_saved_config_is_refused_before_allocation(run, tmp_path):
    out = vaelab.save_pretrained(run, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    config["model_config"]["hidden"] = [60_000, 60_000]  # in range, too many weights
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(VaelabError, match="parameters"):
        vaelab.from_pretrained(out)
    config["model_config"]["hidden"] = "many"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(VaelabError, match="hidden must be a list of integers"):
        vaelab.from_pretrained(out)
