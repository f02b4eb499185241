"""The run folder: config.json, weights (safetensors), checkpoints, metrics.jsonl, figures.

Layout of ``runs/x``::

    config.json          everything needed to rebuild and retrain (model, training, data)
    best.safetensors     weights with the lowest validation loss
    last.safetensors     weights after the last finished epoch
    checkpoint.pt        last epoch's weights + optimizer + scheduler + epoch + RNG states
                         (plain tensors and numbers: loads with ``torch.load(weights_only=True)``)
    metrics.jsonl        one JSON object per epoch
    figures/*.png
    tensorboard/         event files, with --tensorboard
    .lock                locked (flock) by the process training into the folder; a second
                         trainer is refused, and the lock ends with its holder

Every file is written to a temporary file in the same folder and renamed into place, so an
interruption never leaves a half-written file where a good one stood.  A folder may be shared
with others who can write to it: its files and its figures/ and tensorboard/ folders are used
only when they are what they seem (``file_in``, ``folder_in``); a symbolic link planted in it is
refused in one line, never followed, so nothing outside the folder is read into it or written.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import logging
import math
import os
import pickle
import socket
import stat
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file

from . import __version__
from .config import DataConfig, TrainConfig, step_problems, type_problems, warmup_problems
from .data import data_facts, load_splits
from .errors import VaelabError
from .models import build_model, model_class
from .models.abilities import Conditional

logger = logging.getLogger(__name__)

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
EVALUATION = "evaluation.json"
FIGURES = "figures"
TENSORBOARD = "tensorboard"
WEIGHTS = ("best", "last")
LOCK = ".lock"  # held (flock) by the process training into the folder
EVALUATION_LOCK = ".evaluation.lock"  # held while evaluation.json is read, merged and written

try:
    import fcntl
except ImportError:  # not POSIX: no locks (a second writer is not detected)
    fcntl = None

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # open(2) fails on a symbolic link (ELOOP)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted under a file's name never blocks


@functools.cache
def _umask() -> int:
    """The process's umask, read once on first use (no change at import)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then rename it onto ``path``.

    A failure anywhere (a full disk, a folder that cannot be written, an interruption) leaves
    ``path`` as it was and no temporary file; an OSError becomes a one-line VaelabError that
    names the file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            kept = "; the previous file is kept" if path.exists() else ""
            raise VaelabError(f"cannot write {path}: {e.strerror or e}{kept}") from e
        raise


def _refused(path: Path, why: str) -> VaelabError:
    return VaelabError(f"{path} {why}; refused, not followed (a run folder holds regular files "
                       "and real folders only: remove it)")  # fmt: skip


def _checked(folder: Path, name: str | Path, is_kind: Callable[[Path], bool], kind: str) -> Path:
    folder = Path(folder)
    path = folder / name
    if path.is_symlink():
        raise _refused(path, "is a symbolic link")
    if path.exists() and not is_kind(path):
        raise _refused(path, f"is not a {kind}")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise _refused(path, f"lies outside {folder} (through a linked folder)")
    return path


def file_in(folder: Path, name: str | Path) -> Path:
    """``folder / name``, checked before vaelab reads or replaces it: absent, or a regular file
    that is no symbolic link and lies inside ``folder`` (no linked folder on the way).  Anything
    else is refused with a one-line VaelabError that names it."""
    return _checked(folder, name, Path.is_file, "regular file")


def folder_in(folder: Path, name: str | Path) -> Path:
    """``folder / name`` as a subfolder to read or write (``figures``, ``tensorboard``): absent,
    or a real folder inside ``folder``; a symbolic link or anything else is refused."""
    return _checked(folder, name, Path.is_dir, "folder")


def _open_regular(path: Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that never follows a link at ``path`` and keeps only a regular file."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, mode)
    except OSError as e:
        if Path(path).is_symlink():
            raise _refused(path, "is a symbolic link") from None
        raise VaelabError(f"cannot open {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refused(path, "is not a regular file")
    return fd


def read_in(folder: Path, name: str | Path) -> bytes:
    """The bytes of ``folder / name``, a regular file inside ``folder`` (``file_in``), opened
    without following a link."""
    path = file_in(folder, name)
    with os.fdopen(_open_regular(path, os.O_RDONLY), "rb") as f:
        return f.read()


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that training's ``atomic_write`` left behind when it was
    killed mid-write (call it only while holding the folder's lock); returns them."""
    names = (CONFIG, CHECKPOINT, METRICS, *(f"{w}.safetensors" for w in WEIGHTS))
    stale = sorted(p for name in names for p in Path(folder).glob(f".{name}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def fit_to_data(model_name: str, model_config: dict[str, Any], data: DataConfig) -> dict:
    """``model_config`` completed with what the data ``data`` decide: the images' shape and,
    for a model that takes it, the number of classes.  A conditional model on unlabelled data,
    or a given shape that is not the data's, is refused in one line."""
    cls = model_class(model_name)
    facts = data_facts(data)
    shape = facts["image_shape"]
    if "image_shape" in model_config and list(model_config["image_shape"]) != shape:
        raise VaelabError(
            f"image_shape {list(model_config['image_shape'])} is not the data's {shape}"
        )
    out = {"image_shape": shape} | model_config
    takes = {f.name for f in fields(cls.config_class)}
    if issubclass(cls, Conditional) and not facts["num_classes"]:
        raise VaelabError(
            f"a {model_name} model needs labels; {data.data} has none (put the images in one "
            "subfolder per class, or give labels y in the .npz)"
        )
    if "num_classes" in takes and facts["num_classes"] and "num_classes" not in model_config:
        out["num_classes"] = facts["num_classes"]
    return out


class RunLock:
    """The exclusive right to write a run folder: ``RUN/.lock`` held with ``flock``, so that the
    kernel releases it when the holder ends, however it ends (a crash or SIGKILL leaves no lock
    that blocks).  The file records the holder's pid and host for the refusal message."""

    def __init__(self, folder: Path, name: str = LOCK):
        self.path = Path(folder) / name
        self.fd: int | None = None

    def acquire(self, *, wait: bool = False) -> RunLock:
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written in place, so never through a link: not a symbolic one (O_NOFOLLOW), nor a
        # hard one that would make the lock another name of someone's file.
        fd = _open_regular(file_in(self.path.parent, self.path.name), os.O_RDWR | os.O_CREAT,
                           0o666 & ~_umask())  # fmt: skip
        if os.fstat(fd).st_nlink > 1:
            os.close(fd)
            raise _refused(self.path, "has other hard links")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").split()
            os.close(fd)
            who = f" (pid {holder[0]} on {holder[1]})" if len(holder) >= 2 else ""
            raise VaelabError(
                f"{self.path.parent} is being trained by another process{who}; wait for it to "
                "finish or stop it, or train into another --out"
            ) from None
        except OSError as e:  # a file system without locks: go on, unprotected
            os.close(fd)
            logger.warning(f"cannot lock {self.path} ({e.strerror}); a second writer would not "
                           "be detected")  # fmt: skip
            return self
        if not wait:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2) + "\n"))


def save_weights(
    model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Model state (parameters and buffers) as safetensors."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata=metadata))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    path = Path(path)
    data = read_in(path.parent, path.name)  # never through a link
    try:
        state = safetensors_load(data)
    except (SafetensorError, OSError) as e:
        raise VaelabError(f"cannot read weights {path}: {e}") from None
    load_state(model, state, path)


# Weights saved by vaelab 0.1.0 under names that have moved since.
_RENAMED = {"log_sigma": "likelihood.log_sigma"}


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load a state dict, turning a shape or key mismatch into a one-line error."""
    own = model.state_dict()
    state = {(_RENAMED.get(k, k) if k not in own else k): v for k, v in state.items()}
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
    data = io.BytesIO(read_in(Path(path).parent, Path(path).name))  # never through a link
    try:
        return torch.load(data, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # objects beyond plain tensors: never built
        why = [line for line in str(e).splitlines() if "GLOBAL" in line or "nsupported" in line]
        raise VaelabError(
            f"cannot read checkpoint {path}: it holds more than plain tensors and numbers; "
            f"refused without running it{f' ({why[0].strip()[:160]})' if why else ''}"
        ) from None
    except Exception as e:  # corrupt or foreign file: never unpickle arbitrary objects
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise VaelabError(f"cannot read checkpoint {path}: {type(e).__name__}: {first}") from None


MAX_JSON_BYTES = 16 * 2**20  # a config.json or evaluation.json this large is refused unread
MAX_JSON_DEPTH = 32  # lists and objects nested deeper than this are not a vaelab file


def read_json(path: Path, what: str) -> Any:
    """The JSON value in ``path``, or a one-line VaelabError naming the file: over
    ``MAX_JSON_BYTES`` (refused before reading), not UTF-8, not JSON, or nested deeper than
    ``MAX_JSON_DEPTH`` (so that no reader of it ever recurses without bound)."""
    path = Path(path)
    size = path.lstat().st_size  # a link is refused by read_in, never followed
    if size > MAX_JSON_BYTES:
        raise VaelabError(
            f"{path} is {size} bytes, over the {MAX_JSON_BYTES // 2**20} MiB a vaelab {what} "
            "may have; refused unread"
        )
    return parse_json(read_in(path.parent, path.name), str(path), what)


def parse_json(data: bytes, where: str, what: str) -> Any:
    """``data`` (UTF-8 JSON) as a value; a one-line VaelabError that names ``where``."""
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise VaelabError(f"{where} is not UTF-8 text; not a vaelab {what}") from None
    except RecursionError:
        raise VaelabError(f"{where} nests too deeply to be a vaelab {what}") from None
    except ValueError as e:  # JSONDecodeError, or an integer too long to convert
        raise VaelabError(f"{where} is not valid JSON: {e}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise VaelabError(
            f"{where} nests lists or objects over {MAX_JSON_DEPTH} deep; not a vaelab {what}"
        )
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


ENTRIES = {"model", "model_config", "train", "data", "vaelab_version", "units"}


def _typed(cls: type, values: Any, path: Path, key: str):
    if not isinstance(values, dict):
        raise VaelabError(f"{path}: {key!r} must be a mapping of settings")
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise VaelabError(f"{path}: unknown {key} setting(s) {', '.join(unknown)}")
    problems = type_problems(cls, values)
    if problems:
        raise VaelabError(f"{path}: {key}: {'; '.join(problems)}")
    try:
        return cls(**values)
    except VaelabError as e:
        raise VaelabError(f"{path}: {key}: {e}") from None


def _metrics_problem(row: Any) -> str | None:
    """What keeps ``row`` from being a row of metrics (a phrase), or None."""
    if not isinstance(row, dict):
        return "is not a JSON object"
    epoch = row.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        return f"has epoch {str(epoch)[:40]!r}, not a whole number >= 1"
    for key, value in row.items():
        real = isinstance(value, int | float) and not isinstance(value, bool)
        if not real or not math.isfinite(value):
            return f"has {key[:40]!r} = {str(value)[:40]!r}, not a finite number"
    return None


@dataclass
class Run:
    """A run folder and its typed configuration: the one place that knows the layout.

    ``Run.create`` starts a new run (refusing a folder that holds one), ``Run.load`` reads
    one; ``model()`` rebuilds the trained model, ``splits()`` its data, and the ``*_path``
    properties name its files, each checked by ``file_in`` (a symbolic link is refused).
    ``config.json`` holds ``model`` (registry name), ``model_config`` (the model's constructor
    arguments), ``train``, ``data``, the vaelab version and the loss unit.
    """

    path: Path
    model_name: str
    model_config: dict[str, Any]
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    version: str = __version__
    units: str = ""

    # --- files -----------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return file_in(self.path, CONFIG)

    @property
    def checkpoint_path(self) -> Path:
        return file_in(self.path, CHECKPOINT)

    @property
    def metrics_path(self) -> Path:
        return file_in(self.path, METRICS)

    @property
    def evaluation_path(self) -> Path:
        return file_in(self.path, EVALUATION)

    @property
    def figures_dir(self) -> Path:
        return folder_in(self.path, FIGURES)

    def weights_path(self, which: str = "best") -> Path:
        if which not in WEIGHTS:
            raise VaelabError(f"which must be 'best' or 'last', got {which!r}")
        return file_in(self.path, f"{which}.safetensors")

    # --- config.json -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        model_name: str,
        model_config: dict[str, Any] | None = None,
        train: TrainConfig | None = None,
        data: DataConfig | None = None,
    ) -> Run:
        """A new run in ``path`` (nothing written yet); the model's settings are checked and
        completed with its defaults.  Refuses a folder that already holds a run."""
        path = Path(path)
        if (path / CONFIG).exists():
            raise VaelabError(
                f"{path} already holds a run; use --resume {path} to continue it "
                "or pick a new --out"
            )
        if path.exists() and not path.is_dir():
            raise VaelabError(f"{path} exists and is not a folder")
        data = data or DataConfig()
        model_config = fit_to_data(model_name, dict(model_config or {}), data)
        model = build_model(model_name, **model_config)
        train = train or TrainConfig()
        for problem in warmup_problems(model.config, train) + step_problems(model.config, train):
            raise VaelabError(problem)  # before anything is allocated
        return cls(
            path,
            model_name,
            model.config,
            train or TrainConfig(),
            data,
            units=f"losses: {model.about.loss_unit}, averaged over images",
        )

    @classmethod
    def load(cls, path: str | Path) -> Run:
        """The run in ``path``, or a one-line error when it is not a run folder."""
        path = Path(path)
        if not path.is_dir():
            raise VaelabError(f"{path} is not a vaelab run folder (no such directory)")
        if not (path / CONFIG).exists():
            raise VaelabError(f"{path} is not a vaelab run folder (no {CONFIG})")
        cfg = read_json(path / CONFIG, "run config")
        if not isinstance(cfg, dict):
            raise VaelabError(f"{path / CONFIG} must hold a JSON object")
        if set(cfg) - ENTRIES:  # a misspelt or foreign entry is refused, never ignored
            raise VaelabError(
                f"{path / CONFIG}: unknown entries {sorted(set(cfg) - ENTRIES)!r:.200}"
            )
        for key in ("model", "model_config", "train", "data"):
            if key not in cfg:
                raise VaelabError(f"{path / CONFIG} lacks the {key!r} entry; not a vaelab run")
        if not isinstance(cfg["model_config"], dict):
            raise VaelabError(f"{path / CONFIG}: 'model_config' must be a mapping of settings")
        return cls(
            path,
            str(cfg["model"]),
            cfg["model_config"],
            _typed(TrainConfig, cfg["train"], path / CONFIG, "train"),
            _typed(DataConfig, cfg["data"], path / CONFIG, "data"),
            str(cfg.get("vaelab_version", "")),
            str(cfg.get("units", "")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "vaelab_version": __version__,
            "model": self.model_name,
            "model_config": self.model_config,
            "train": asdict(self.train),
            "data": asdict(self.data),
            "units": self.units,
        }

    def save(self) -> None:
        """Write config.json (atomically)."""
        write_json(self.config_path, self.as_dict())

    def flat_settings(self) -> dict[str, Any]:
        """Every setting under its flag name: model, model config, training and data."""
        return {
            "model": self.model_name,
            **self.model_config,
            **asdict(self.train),
            **asdict(self.data),
        }

    def check_resume(self, given: dict[str, Any]) -> None:
        """Settings given on resume must equal the saved ones (``epochs`` may change)."""
        saved = self.flat_settings()
        for key, value in given.items():
            if key == "epochs":
                continue
            if key not in saved or saved[key] != value:
                raise VaelabError(
                    f"cannot resume {self.path} with {key}={value!r}: the checkpoint was made "
                    f"with {key}={saved.get(key)!r} (only --epochs may change on resume)"
                )

    # --- what it holds -----------------------------------------------------------------------

    def build_model(self):
        """The model with fresh weights, as configured."""
        return build_model(self.model_name, **self.model_config)

    def model(
        self, which: str = "best", device: str | torch.device = "cpu", *, finite: bool = False
    ):
        """The trained model (``best``: lowest validation loss, or ``last``), in eval mode.
        Weights that hold NaN or inf are named in a one-line warning, or with ``finite``
        refused in a one-line error."""
        weights = self.weights_path(which)
        if not weights.exists():
            raise VaelabError(f"{self.path} has no {weights.name} (did training finish an epoch?)")
        model = self.build_model()
        load_weights(model, weights)
        state = model.state_dict()
        bad = [k for k, t in state.items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:
            what = (f"{weights} holds non-finite values (NaN or inf) in {len(bad)} of its "
                    f"{len(state)} tensors ({bad[0]}, ...)")  # fmt: skip
            if finite:
                raise VaelabError(what)
            logger.warning(f"warning: {what}; what the model computes will not be finite")
        return model.to(device).eval()

    def splits(self):
        """The run's data (cached per data configuration)."""
        return load_splits(self.data)

    def metrics(self) -> list[dict[str, Any]]:
        """RUN/metrics.jsonl: one row per epoch, each checked (UTF-8, a JSON object, ``epoch``
        a whole number >= 1, every other value a finite number); a bad line is refused in
        one line that names the file and the line's number."""
        path = self.metrics_path
        if not path.exists():
            return []
        rows = []
        for n, line in enumerate(read_in(self.path, METRICS).split(b"\n"), 1):
            if not line.strip():
                continue
            row = parse_json(line, f"{path}: line {n}", "metrics row")
            problem = _metrics_problem(row)
            if problem:
                raise VaelabError(f"{path}: line {n} {problem}")
            rows.append(row)
        return rows

    def evaluation(self) -> dict[str, Any]:
        """RUN/evaluation.json: one mapping per split (empty when absent or unreadable; an
        entry that is not a mapping is left out)."""
        path = self.evaluation_path
        if not path.exists():
            return {}
        try:
            saved = read_json(path, "evaluation")
        except (VaelabError, OSError):
            return {}
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if isinstance(v, dict)}

    def save_evaluation(self, result: dict[str, Any], key: str | None = None) -> None:
        """Merge ``result`` under ``key`` (default: its split name; same weights: update, else
        replace).  Several evaluations at once each merge in turn (a lock around the read and
        the write)."""
        key = key or result["split"]
        with RunLock(self.path, EVALUATION_LOCK).acquire(wait=True):
            saved = self.evaluation()
            old = saved.get(key, {})
            merged = (old | result) if old.get("weights") == result["weights"] else result
            saved[key] = merged
            write_json(self.evaluation_path, saved)


class RunWriter:
    """Owns what training writes into a run folder: config, best and last weights, the
    checkpoint and metrics.jsonl, each written atomically after every epoch.  With
    ``write=False`` (every process of a group but rank 0) it keeps the rows and the best
    validation loss and writes nothing."""

    def __init__(
        self,
        run: Run,
        rows: list[dict[str, Any]] | None = None,
        best: float = math.inf,
        *,
        write: bool = True,
    ):
        self.run = run
        self.rows = list(rows or [])
        self.best = best
        self.write = write
        self.board = None  # a TensorBoard SummaryWriter, once open_tensorboard is called

    def start(self) -> None:
        if self.write:
            self.run.save()

    def open_tensorboard(self) -> Callable[[], None]:
        """Also log each epoch's metrics as TensorBoard scalars into ``RUN/tensorboard/``
        (PyTorch's ``SummaryWriter``; step = epoch).  Returns the function that closes it."""
        try:  # optional, and slow to import: only when asked for
            board = importlib.import_module("torch.utils.tensorboard")
        except ImportError:
            raise VaelabError(
                "--tensorboard needs the tensorboard package: pip install 'vaelab[tensorboard]'"
            ) from None
        self.board = board.SummaryWriter(log_dir=str(folder_in(self.run.path, TENSORBOARD)))
        return self.board.close

    def epoch_end(self, model: torch.nn.Module, row: dict[str, Any], state: dict[str, Any]):
        """Save weights (best when ``row["val_loss"]`` is the lowest yet), the checkpoint
        ``state`` (optimizer, scheduler, RNG; the model's state is added) and the metrics."""
        epoch = str(row["epoch"])
        improved = row["val_loss"] < self.best
        self.best = min(self.best, row["val_loss"])
        self.rows.append(row)
        if not self.write:
            return
        if self.board is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float):
                    self.board.add_scalar(key, value, row["epoch"])
            self.board.flush()
        if improved:
            save_weights(model, self.run.weights_path("best"), {"epoch": epoch})
        save_weights(model, self.run.weights_path("last"), {"epoch": epoch})
        text = "".join(json.dumps(r) + "\n" for r in self.rows)
        atomic_write(self.run.metrics_path, lambda p: p.write_text(text))
        # The checkpoint last: it is what a resume starts from, so an interruption anywhere
        # before it leaves the previous epoch's checkpoint, and the metrics' extra row is
        # dropped on resume (RunWriter.resume keeps the rows up to the checkpoint's epoch).
        state = {"model": model.state_dict(), **state, "epoch": row["epoch"], "best_val": self.best}
        save_checkpoint(self.run.checkpoint_path, state)

    @classmethod
    def resume(
        cls, run: Run, device: str | torch.device, *, write: bool = True
    ) -> tuple[RunWriter, dict[str, Any]]:
        """A writer that continues ``run`` and its last checkpoint (weights, optimizer, ...)."""
        ckpt = load_checkpoint(run.checkpoint_path, map_location=device)
        for key in ("model", "optimizer", "scheduler", "epoch", "best_val", "rng"):
            if key not in ckpt:
                raise VaelabError(f"{run.checkpoint_path} lacks {key!r}; cannot resume")
        start = int(ckpt["epoch"])
        rows = [m for m in run.metrics() if m.get("epoch", 0) <= start]
        return cls(run, rows, float(ckpt["best_val"]), write=write), ckpt


def load_run(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """The trained model of a run folder, in eval mode (``which``: ``best`` or ``last``).

    For the run's configuration and data, use ``Run.load(run_dir)``.
    """
    return Run.load(run_dir).model(which, device)
