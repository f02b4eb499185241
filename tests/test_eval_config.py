"""EvalConfig: the settings of an evaluation, checked in one place, and the command line's
evaluate flags generated from its fields."""

from __future__ import annotations

import pytest

from vaelab.cli import build_parser, eval_config
from vaelab.errors import VaelabError
from vaelab.eval_config import PAPER_K, EvalConfig


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"split": "dev"}, "unknown split 'dev'"),
        ({"which": "first"}, "unknown weights 'first'"),
        ({"protocol": "burda"}, "unknown protocol 'burda'"),
        ({"limit": 0}, "limit must be >= 1, got 0"),
        ({"nll_samples": 0}, "nll_samples must be >= 1 and <= 1,000,000, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1 and <= 1,048,576, got 0"),
        ({"compile": "yes"}, "unknown compile 'yes'"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
        ({"protocol": "paper", "precision": "bf16"}, "bf16 products move it"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line(settings, message):
    with pytest.raises(VaelabError, match=message) as e:
        EvalConfig(**settings)
    assert "\n" not in str(e.value)


def test_the_paper_protocol_makes_k_5000_unless_given():
    assert EvalConfig().samples is None
    assert EvalConfig(protocol="paper").samples == PAPER_K
    assert EvalConfig(protocol="paper", nll_samples=100).samples == 100
    choices = [EvalConfig(compile=c).compile_choice for c in ("auto", "on", "off")]
    assert choices == [None, True, False]


def test_the_evaluate_flags_are_the_fields():
    parser = build_parser()
    assert eval_config(parser.parse_args(["evaluate", "RUN"])) == EvalConfig()
    args = parser.parse_args(
        ["evaluate", "RUN", "--split", "val", "--nll-samples", "7", "--probes", "--limit", "3",
         "--compile", "off", "--precision", "fp16", "--which", "last"]
    )  # fmt: skip
    cfg = eval_config(args)
    assert (cfg.split, cfg.nll_samples, cfg.probes, cfg.limit) == ("val", 7, True, 3)
    assert (cfg.compile, cfg.precision, cfg.which) == ("off", "fp16", "last")


def test_a_positional_split_is_refused():
    from vaelab.evaluate import evaluate_run

    with pytest.raises(TypeError, match="split="):
        evaluate_run("RUN", "test")
