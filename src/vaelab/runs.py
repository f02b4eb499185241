"""The run folder: config.json, weights (safetensors), checkpoints, metrics.jsonl, figures.

Layout of ``runs/x``::

    config.json          everything needed to rebuild and retrain (model, training, data)
    best.safetensors     weights with the lowest validation loss
    last.safetensors     weights after the last finished epoch
    checkpoint.pt        last epoch's weights + optimizer + scheduler + epoch + RNG states
                         (plain tensors and numbers: loads with ``torch.load(weights_only=True)``)
    metrics.jsonl        one JSON object per epoch
    figures/*.png

Every file is written to a temporary file in the same folder and renamed into place, so an
interruption never leaves a half-written file where a good one stood.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import VaelabError

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
EVALUATION = "evaluation.json"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def save_weights(
    model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Model state (parameters and buffers) as safetensors."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata=metadata))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise VaelabError(f"cannot read weights {path}: {e}") from None
    load_state(model, state, path)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load a state dict, turning a shape or key mismatch into a one-line error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        detail = "; ".join(
            part
            for part in [
                f"missing {', '.join(missing[:3])}" if missing else "",
                f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
                ", ".join(
                    f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3]
                ),
            ]
            if part
        )
        raise VaelabError(f"{source} does not fit this model's configuration ({detail})")
    model.load_state_dict(state)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda p: torch.save(state, p))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not Path(path).exists():
        raise VaelabError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt or foreign file: never unpickle arbitrary objects
        raise VaelabError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, or a one-line error when ``run_dir`` is not a run folder."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise VaelabError(f"{run_dir} is not a vaelab run folder (no such directory)")
    if not path.exists():
        raise VaelabError(f"{run_dir} is not a vaelab run folder (no {CONFIG})")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise VaelabError(f"{path} is not valid JSON: {e}") from None
    for key in ("model", "model_config", "train", "data"):
        if key not in cfg:
            raise VaelabError(f"{path} lacks the {key!r} entry; not a vaelab run config")
    return cfg


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(Path(run_dir) / METRICS, lambda p: p.write_text(text))


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """The trained model of a run folder, in eval mode.

    ``which`` is ``"best"`` (lowest validation loss) or ``"last"``.  The run's configuration is
    attached as ``model.run_config`` and its folder as ``model.run_dir``.
    """
    from .models import build_model

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    if which not in ("best", "last"):
        raise VaelabError(f"which must be 'best' or 'last', got {which!r}")
    weights = run_dir / f"{which}.safetensors"
    if not weights.exists():
        raise VaelabError(f"{run_dir} has no {weights.name} (did training finish an epoch?)")
    model = build_model(cfg["model"], **cfg["model_config"])
    load_weights(model, weights)
    model.run_config = cfg
    model.run_dir = run_dir
    return model.to(device).eval()
