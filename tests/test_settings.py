"""Settings come from the configuration: the command line is generated from the config
dataclasses' fields, and presets, the paper protocol and settings files resolve in one place."""

from __future__ import annotations

import ast
import contextlib
import io
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from vaelab import registry
from vaelab.cli import build_parser
from vaelab.config import DataConfig, TrainConfig
from vaelab.models import model_class
from vaelab.settings import PAPER, PRESETS, preset_config, resolve_settings

SRC = Path(__file__).resolve().parent.parent / "src" / "vaelab"


def _help(*argv: str) -> str:
    parser = build_parser(_model_of(argv))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args([*argv, "--help"])
    return out.getvalue()


def _model_of(argv) -> str | None:
    from vaelab.cli import _train_model

    return _train_model(list(argv))


def _default(f):
    return f.default if f.default is not MISSING else f.default_factory()


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_train_help_lists_every_setting_of_the_model_with_its_default(name):
    text = " ".join(_help("train", "--model", name).split())  # argparse wraps lines
    for cls in (model_class(name).config_class, TrainConfig, DataConfig):
        for f in fields(cls):
            if not f.metadata.get("cli", True):
                assert f"--{f.name.replace('_', '-')} " not in text
                continue
            flag = f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"
            assert flag in text, f"{name}: {flag} missing from --help"
            default = _default(f)
            if default is not None and not isinstance(default, bool):
                shown = " ".join(map(str, default)) if isinstance(default, list) else default
                assert f"(default: {shown})" in text or f"default: {shown}" in text, (name, f.name)


def test_the_model_named_picks_the_settings_offered():
    hvae, vae = _help("train", "--model", "hvae"), _help("train", "--model", "vae")
    assert "--z1-dim" in hvae and "hvae's own settings" in hvae
    assert "--z1-dim" not in vae
    assert "--z1-dim" in _help("train", "--preset", "burda2")  # the preset's family


def test_every_setting_has_a_one_line_help_without_its_default():
    for name in registry.MODELS:
        for cls in (model_class(name).config_class, TrainConfig, DataConfig):
            for f in fields(cls):
                text = f.metadata.get("help", "")
                if not f.metadata.get("cli", True):
                    continue
                assert text and "\n" not in text, f"{cls.__name__}.{f.name} has no help"
                assert "default" not in text.lower(), f"{cls.__name__}.{f.name} says its default"


def test_no_option_in_cli_names_a_model_setting():
    settings = set()
    for name in registry.MODELS:
        settings |= {f.name for f in fields(model_class(name).config_class)}
    flags = {"--" + s.replace("_", "-") for s in settings}
    written = [
        node.args[0].value
        for node in ast.walk(ast.parse((SRC / "cli.py").read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", None) == "add_argument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]
    assert written, "no option found: the test reads cli.py wrongly"
    assert not set(written) & flags, f"written by hand in cli.py: {sorted(set(written) & flags)}"


def test_help_and_data_commands_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from vaelab.cli import build_parser, main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "    try: main(['data', 'fetch', '--help'])\n"
        "    except SystemExit: pass\n"
        "    try: build_parser().parse_args(['train', '--help'])\n"  # no model's settings
        "    except SystemExit: pass\n"
        "import vaelab.data\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_paper_protocol_resolves_the_same_from_python_and_from_a_file(tmp_path):
    py = resolve_settings({"protocol": "paper", "epochs": 3})
    assert py.model_name == "vae" and py.model_config == preset_config("burda") | {
        "likelihood": PAPER["likelihood"]
    }
    assert py.data.binarize == PAPER["binarize"] and py.data.val_size == PAPER["val_size"]
    assert py.train.epochs == 3 and py.train.lr == TrainConfig().lr
    file = tmp_path / "paper.yaml"
    file.write_text("protocol: paper\nepochs: 3\n")
    from vaelab.settings import read_settings_file

    assert resolve_settings(read_settings_file(str(file))) == py


def test_explicit_settings_beat_presets_in_order():
    s = resolve_settings({"preset": ["burda", "conv"], "latent_dim": 7})
    assert s.model_config["encoder"] == "conv" and s.model_config["hidden"] == [256]
    assert s.model_config["latent_dim"] == 7
    assert resolve_settings({"preset": "burda2"}).model_name == PRESETS["burda2"]["model"]
