"""Every bad setting value is refused in one line, from a flag, a settings file or a run's
config.json alike, before anything is allocated or written."""

from __future__ import annotations

import json
import math
import time
import typing
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.helpers import run as vaelab
from tests.helpers import synthetic
from vaelab.config import STEP_BUDGET, DataConfig, TrainConfig, preview
from vaelab.errors import VaelabError
from vaelab.eval_config import EvalConfig
from vaelab.models import model_class
from vaelab.registry import MODELS
from vaelab.runs import Run
from vaelab.settings import read_settings_file, resolve_settings
from vaelab.train import resolve_run

HUGE = "99999999999999999999999"


def refused(capsys, *argv) -> str:
    """The one line that ``vaelab ARGV`` answers with (exit 1, or argparse's 2)."""
    try:
        code, _, err = vaelab(capsys, *argv)
    except SystemExit as e:
        code, err = e.code, capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code in (1, 2), err
    assert "Traceback" not in err
    assert len(lines) == 1 or (code == 2 and lines[0].startswith("usage:")), err
    return lines[-1]


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--weight-decay", "nan"], "weight_decay must be >= 0 and finite, got nan"),
        (["--weight-decay", "-1"], "weight_decay must be >= 0 and finite, got -1.0"),
        (["--lr", "inf"], "lr must be finite"),
        (["--seed", HUGE], "seed must be >= 0 and <= 9,223,372,036,854,775,807"),
        (["--binarize-seed", HUGE], "binarize_seed must be >= 0 and <= "),
        (["--seed", "-1"], "seed must be >= 0"),
        (["--k", "1000000000"], "k must be >= 1 and <= 1,000,000, got 1000000000"),
        (["--k", "100000"], "k must be <= 21,399"),
        (["--batch-size", "1000000", "--k", "5"], "budget of 2,147,483,648"),
        (["--latent-dim", "10000000"], "latent_dim must be >= 1 and <= 65,536"),
        (["--hidden", "400", "0"], "each of hidden must be >= 1 and <= 65,536, got 0"),
        (["--pseudo-inputs", "0"], "pseudo_inputs must be >= 1"),
        (["--epochs", "2000000"], "epochs must be >= 0 and <= 1,000,000"),
        (["--model", "hvae", "--z1-dim", "0"], "z1_dim must be >= 1"),
    ],
)
def test_a_bad_flag_is_one_line_and_leaves_no_folder(flags, needle, capsys, tmp_path):
    out = tmp_path / "run"
    assert needle in refused(capsys, "train", "--out", out, *flags)
    assert not out.exists()


@pytest.mark.parametrize(
    "text,needle",
    [
        ('lr: "1e-3"', "lr must be a number, got str '1e-3'"),
        ("model: [vae]", "model must be a string, got list ['vae']"),
        ("epochs: 1.5", "epochs must be an integer, got float 1.5"),
        ("weight_decay: .nan", "weight_decay must be >= 0 and finite"),
        ("lr: 1e400", "lr must be finite, got inf"),
        (f"seed: {HUGE}", "seed must be >= 0 and <="),
        ("k: 1000000000", "k must be >= 1 and <= 1,000,000"),
        ("k: 1e9", "k must be an integer, got float 1000000000.0"),
        ("image_shape: 7", "image_shape must be a list of integers"),
        ("preset: 3", "preset must be a list of strings or null, got int 3"),
        ("1: 2", "every setting's name must be a string"),
        ("lr: " + "[" * 5000 + "]" * 5000, "nests deeper than 32"),
        ('{"lr": ' + "[" * 5000 + "]" * 5000 + "}", "nests deeper than 32"),
        ("hidden: " + "[" * 40 + "]" * 40, "nests deeper than 32"),
    ],
)
def test_a_bad_settings_file_is_one_line_and_leaves_no_folder(text, needle, capsys, tmp_path):
    (tmp_path / "c.yaml").write_text(text + "\n")
    out = tmp_path / "run"
    assert needle in refused(capsys, "train", "--config", tmp_path / "c.yaml", "--out", out)
    assert not out.exists()


def test_a_number_written_1e_3_in_yaml_is_the_number(tmp_path):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; a learning rate is what it means."""
    (tmp_path / "c.yaml").write_text("lr: 1e-3\nadam_eps: 1E-8\nweight_decay: +2.5e+1\n")
    flat = read_settings_file(str(tmp_path / "c.yaml"))
    assert flat == {"lr": 1e-3, "adam_eps": 1e-8, "weight_decay": 25.0}
    assert resolve_settings(flat).train.lr == 1e-3
    (tmp_path / "d.yaml").write_text("epochs: 10\nseed: 007\n")  # integers stay integers
    assert read_settings_file(str(tmp_path / "d.yaml")) == {"epochs": 10, "seed": 7}


def test_a_yaml_alias_bomb_is_refused_at_once(capsys, tmp_path):
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for i in range(1, 20):  # 9^20 strings, were it expanded
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]")
    lines.append("lr: *a19")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(VaelabError, match="more than 10,000 values"):
        read_settings_file(str(tmp_path / "bomb.yaml"))
    assert time.perf_counter() - start < 0.5
    line = refused(capsys, "train", "--config", tmp_path / "bomb.yaml", "--out", tmp_path / "r")
    assert "more than 10,000 values" in line


def test_a_preview_never_renders_all_of_a_value():
    bomb: list = ["x"]
    for _ in range(60):
        bomb = [bomb] * 9
    assert len(preview(bomb)) <= 45
    assert preview(10**5000) == "an integer of 16,610 bits"
    assert preview("a" * 10**6).startswith("'aaa") and len(preview("a" * 10**6)) <= 40


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", ".", "--seed", HUGE],
        ["evaluate", ".", "--nll-samples", "0"],
        ["sample", ".", "--seed", HUGE],
        ["plot", ".", "--seed", "-1"],
    ],
)
def test_other_commands_refuse_bad_numbers_in_one_line(argv, capsys):
    # (sample's and reconstruct's -n and --ncol: tests/test_hostile_runs.py)
    line = refused(capsys, *argv)
    assert ">= " in line, line


def test_eval_config_seed_is_bounded():
    with pytest.raises(VaelabError, match="seed must be >= 0 and <= 9,223,372,036,854,775,807"):
        EvalConfig(seed=2**63)


def test_a_run_config_with_bad_values_or_unknown_entries_is_refused(tmp_path):
    run = Run.create(tmp_path / "r", "vae", {"hidden": [8], "latent_dim": 2})
    saved = run.as_dict()
    for change, needle in [
        ({"extra": 1}, "unknown entries ['extra']"),
        ({"train": saved["train"] | {"weight_decay": -1}}, "weight_decay must be"),
        ({"train": saved["train"] | {"seed": 2**70}}, "seed must be >= 0 and <="),
        ({"data": saved["data"] | {"binarize_seed": -5}}, "binarize_seed must be >= 0"),
    ]:
        run.path.mkdir(exist_ok=True)
        run.config_path.write_text(json.dumps(saved | change))
        with pytest.raises(VaelabError, match=needle.replace("[", r"\[")):
            Run.load(run.path)


def test_the_step_budget_is_checked_before_allocation():
    train = TrainConfig(batch_size=1024)
    k = STEP_BUDGET // (1024 * 784) + 1
    with pytest.raises(VaelabError, match=f"k must be <= {k - 1:,}"):
        Run.create("unused", "vae", {"k": k}, train)
    assert Run.create("unused", "vae", {"k": k - 1}, train).model_config["k"] == k - 1


# --- fuzz: whatever the values, success or a VaelabError ------------------------------------

NAMES = [
    "model", "preset", "protocol", "arch", "epochs", "batch_size", "lr", "lr_schedule",
    "weight_decay", "adam_eps", "kl_warmup", "seed", "binarize", "binarize_seed", "train_limit",
    "val_size", "image_size", "latent_dim", "hidden", "decoder_hidden", "likelihood", "sigma",
    "image_shape", "beta", "k", "prior", "pseudo_inputs", "free_bits", "z1_dim", "z1_hidden",
    "num_classes", "precision", "on_nan", "encoder", "activation", "verify", "nonsense",
]  # fmt: skip
SCALARS = st.one_of(
    st.integers(min_value=1, max_value=64),  # first: what shrinking tends to, often valid
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 4, 28, 10**9, 2**63, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["vae", "iwae", "hvae", "ae", "cvae", "mlp", "burda", "paper", "vamp", "1e-3"]),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=2))
def test_any_settings_give_a_run_or_a_vaelab_error(flat):
    try:
        resolved = resolve_settings(flat)
        run = Run.create("never-written", *resolved)
    except VaelabError as e:
        assert "\n" not in str(e) and len(str(e)) < 1000
        event("refused")
        return
    event("accepted")
    assert run.train.epochs >= 0 and math.isfinite(run.train.lr)


def test_every_number_setting_declares_its_range():
    """A new integer setting without ``low=`` would take any value down to -2**63."""
    classes = [TrainConfig, DataConfig, EvalConfig, *(model_class(n).config_class for n in MODELS)]
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            kind = str(hints[f.name])
            if "int" in kind and "bool" not in kind:
                assert f.metadata.get("low") is not None, (cls.__name__, f.name)
            if "float" in kind and f.name not in ("lr", "adam_eps", "sigma"):  # > 0: by hand
                assert f.metadata.get("low") is not None, (cls.__name__, f.name)


def test_resume_checks_its_epochs_like_any_setting(tmp_path, tiny_splits):
    run = Run.create(
        tmp_path / "r", "vae", {"hidden": [8], "latent_dim": 2}, None, synthetic(tiny_splits)
    )
    run.save()
    for bad in (2_000_000, -4):
        with pytest.raises(VaelabError, match="epochs must be >= 0 and <= 1,000,000"):
            resolve_run(run.path, resume=True, epochs=bad)
    assert resolve_run(run.path, resume=True, epochs=3).train.epochs == 3
