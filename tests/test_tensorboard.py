"""--tensorboard: each epoch's metrics as TensorBoard scalars, read back with TensorBoard's own
event reader; off by default."""

import pytest

from vaelab.config import DataConfig, TrainConfig
from vaelab.data import use_splits
from vaelab.runs import Run
from vaelab.train import fit, resolve_run

pytest.importorskip("tensorboard")


def train(tmp_path, tiny_splits, name, **cfg):
    data = DataConfig()
    with use_splits(data, tiny_splits):
        run = resolve_run(tmp_path / name, "vae", {"hidden": [16], "latent_dim": 2},
                          TrainConfig(epochs=3, batch_size=128, **cfg), data)  # fmt: skip
        fit(run, progress=False)
    return tmp_path / name


def test_metrics_are_logged_per_epoch_and_match_metrics_jsonl(tmp_path, tiny_splits):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tmp_path, tiny_splits, "tb", tensorboard=True)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    rows = Run.load(run).metrics()
    for key in ("train_loss", "val_loss", "val_kl", "lr"):
        logged = events.Scalars(key)
        assert [e.step for e in logged] == [1, 2, 3]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in rows], rel=1e-6)
    assert not (train(tmp_path, tiny_splits, "plain") / "tensorboard").exists()
