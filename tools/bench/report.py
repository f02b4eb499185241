"""Run the benchmarks and write docs/performance.md from what they print (``make bench``).

Each benchmark runs in its own process, one after the other, and prints its own table; this
script adds the machine, the commands and the reading of each table.  Numbers from a noisy
machine move by 10 to 20% between runs; each benchmark interleaves its contenders, so their
ratios move less than their times.

    python -m tools.bench.report [--python .venv-bench/bin/python] [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from tools import ROOT
from tools.machine import cpu_name


def run(python: str, *args: str) -> str:
    cmd = [python, *args]
    print("running:", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode:
        sys.exit(f"error: {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return p.stdout


def _first_table_line(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith("|"))


def table(text: str) -> str:
    """The markdown table lines of a benchmark's output, and the lines after it."""
    lines = text.strip().splitlines()
    return "\n".join(lines[_first_table_line(lines) :])


def header(text: str) -> str:
    """The non-blank lines before the first table (model, threads, ...), as a list: text that
    wraps in the column, where a code block would run past its edge."""
    lines = text.strip().splitlines()
    return "\n".join(f"- {line}" for line in lines[: _first_table_line(lines)] if line.strip())


@dataclass
class Measured:
    """What the benchmarks printed, and how the number-format table was made."""

    train: str  # train_speed.py
    nll_burda: str  # nll_speed.py, Burda et al.'s MLP
    nll_small: str  # nll_speed.py, the pytorch/examples VAE
    memory: str  # memory.py
    formats: str  # precision.py
    formats_cmd: str  # its command line
    formats_what: str  # which models it measured


def measure(python: str, precision_runs: list[str]) -> Measured:
    """Every benchmark of the page, one process after the other."""
    train = run(python, "-m", "tools.bench.train_speed", "--rounds", "5", "--compile", "--bf16")
    nll = ["-m", "tools.bench.nll_speed", "--images", "60", "--rounds", "5", "--preset"]
    fmt_runs = [a for r in precision_runs for a in ("--run", r)]
    fmt_args = ["--images", "100", "--train-epochs", "0", *fmt_runs]
    return Measured(
        train=train,
        nll_burda=run(python, *nll, "burda"),
        nll_small=run(python, *nll, "pytorch-examples"),
        memory=run(python, "-m", "tools.bench.memory"),
        formats=run(python, "-m", "tools.bench.precision", *fmt_args),
        formats_cmd=" ".join(["python -m tools.bench.precision", *fmt_args]),
        formats_what=(
            "here for the trained runs it names (runs/table-gpu/ holds the likelihood table's "
            "runs of docs/likelihoods.md)"
            if precision_runs
            else "here for Burda et al.'s MLP trained 5 epochs by the script"
        ),
    )


def intro(machine: str, today: str) -> str:
    return f"""# Performance

<!-- made by `make bench` (`python -m tools.bench.report`; docs/contributing.md) -->

*Measured on {machine}, {today}. Each benchmark
measures its contenders in one process, interleaved round by round, and reports each one's best
round (other work on a shared machine only adds time); the figures still move by 10 to 20%
between runs, their ratios less.*
"""


def training_section(m: Measured) -> str:
    train = m.train
    return f"""## Training: the epoch against the hardware floor

`python -m tools.bench.train_speed --compile --bf16` (add pythae with
`bash tools/bench/setup_pythae.sh`, then `.venv-bench/bin/python -m tools.bench.train_speed`).
The **floor** is the time of the epoch's matrix products alone, each timed at its shape: nothing
trains this model faster on this machine with
these kernels. **vaelab** is the loop `vaelab train` runs (its batches and its Adam), without
the validation pass and checkpoint that follow each epoch.

{header(train)}

{table(train)}

What makes the difference: vaelab's Adam is one fused kernel per step (`fused=True`, 0.24 ms a
step against 1.1 ms for `torch.optim.Adam`'s default per-parameter loop on the CPU), with the
same update up to floating-point rounding (`tests/test_train.py`). The DataLoader pipeline pays
for turning one image at a time into a tensor; pythae's trainer adds its own per-step work
to the same products. Training does not compile by default: on a CPU at this size the products
are most of the step and compiling fuses only the element-wise work around them. With bf16
products (`--precision bf16`; this CPU has AVX512-BF16 instructions) the products' own floor is
half the fp32 one and vaelab's epoch the fastest above; it is not the default, for the reasons
under Number formats below.

**The gap to 1.5 times the floor.** A step's matrix products, as the profiler times them inside
training (`torch.profiler` over 60 steps), take about 3.1 ms against 2.3 ms when each is timed
alone on warm caches: the floor is an ideal that the real step, whose operands come from the
step before and leave the cache between products, does not reach. What remains of a step
(element-wise work, autograd bookkeeping, the fused Adam at 0.27 ms) is about 1.4 ms,
profiler overhead included. So the goal of 1.5 times the floor is not met: vaelab trains at
the multiple shown above, faster than the bare loop. `torch.compile`, which fuses the
element-wise work, gains about 5% here (the row above), so what is left is mostly the products
themselves running below their isolated speed.
"""


UNTRAINED = (
    "These two tables time the estimate; they measure no model. The networks have fresh, "
    "untrained weights and the images are random binary ones, so the last column is no "
    "likelihood of MNIST (trained models' are in [the likelihood table](likelihoods.md)): it "
    "only shows that the contenders compute the same estimate."
)


def likelihood_section(m: Measured) -> str:
    nll_burda, nll_small = m.nll_burda, m.nll_small
    return f"""## The K = 5000 likelihood estimate

`python -m tools.bench.nll_speed --preset burda` and `--preset pytorch-examples`. The **floor**
counts the decoder's products on K rows per image, the encoder's once per image, and one
softplus-and-sum pass over the K x 784 logits, each timed at its shape. `vaelab evaluate`
compiles the estimate on a CPU when it has at least 2 million (sample, image) rows (`--compile
auto`; `on` and `off` force it): the softplus, the dot product with the image and the sum
become one pass over the logits, and each layer's bias and tanh one pass over its output. The
draws are the same RNG calls, so the estimate equals the uncompiled one up to floating-point
order (`tests/test_nll.py`); the compile time (seconds, once per process and chunk shape) is
reported apart.

Two smaller choices were measured when they were made: the Bernoulli log-probability takes
the image's dot product with each row of logits in one call (`torch.linalg.vecdot`, no K x B x
784 temporaries), about a quarter faster on the estimate's logits (`bench/floor.py --nll`); and
the k-NN radii of the sample-quality score take the k + 1 smallest distances with `topk`, about
10 times faster than `kthvalue`.

Burda et al.'s MLP (784-200-200-50, tanh):

{header(nll_burda)}

{table(nll_burda)}

The 784-400-20 ReLU VAE of the pytorch/examples:

{header(nll_small)}

{table(nll_small)}

{UNTRAINED}

Where the floor is itself less than twice as fast as the straightforward estimator (the
784-400-20 model, whose products are most of the work), a speed-up of 2 over that estimator is
out of reach; what counts there is the distance to the floor.
"""


def memory_section(m: Measured) -> str:
    memory = m.memory
    return f"""## Memory

`python -m tools.bench.memory`: the growth of the peak resident memory during the work, each
measurement in a fresh process (Burda et al.'s MLP).

{table(memory)}

The estimate's memory is set by its chunk budget (`plan_chunks`: 64 MB of chunk rows on a CPU;
on a GPU half the free memory, at most 2 GiB), not by K: 200,000 samples per image cost what
5,000 cost. (Measured with glibc told to return freed memory at once; with its default, the
resident size of a long estimate drifts up with memory it freed and keeps for reuse: 17, 27 and
45 MB for K = 5,000, 50,000 and 200,000 in one run.) Training's memory grows with the batch,
about 10 KB per image for this model, activations and gradients included.
"""


def formats_section(m: Measured, results: Path) -> str:
    """The number formats: the estimate measured now, training from the tables in ``results``
    (measured once by hand, with the commands they name)."""
    formats, formats_cmd, formats_what = m.formats, m.formats_cmd, m.formats_what
    families = (results / "precision_families.md").read_text().strip()
    long_run = (results / "precision_long.md").read_text().strip()
    return f"""## Number formats: `--precision`

`vaelab train --precision` and `vaelab evaluate --precision` choose the format of the
networks' matrix products: `fp32` (the default), `tf32` (a CUDA GPU's tensor cores: float32
values whose products keep 10 mantissa bits), `bf16` (7 bits) or `fp16` (10 bits; the
estimate only, since training in fp16 needs loss scaling). Only the layers change format: every
distribution takes its parameters up to float32 before its log-probability (a bf16 logit row
summed over 784 pixels would be off by nats), the VampPrior's mixture is computed in float32
(its three terms cancel), and the estimate's sums are float64.

`{formats_cmd}` computes the K = 5000 estimate in each format on the same draws (the
same seed per batch of images) and reports how far it moves from fp32, {formats_what}.
On a CPU, tf32 cannot run, so its rounding is emulated (each product's operands rounded to 10
mantissa bits, as a GPU does); its shift is measured, its speed is not.

{formats.strip()}

**The estimate.** A shift of the mean is what moves a likelihood table; 0.01 nats per image
is what such a table can bear. bf16 moves the estimate up by several hundredths of a nat, every
time: its rounding adds noise to each log-weight, and the log of a mean of noisy exponentials
is biased upwards (by about half the noise's variance). fp16 and tf32, three more mantissa
bits, stay within a few thousandths. On this CPU bf16 products make the estimate 1.2 to 1.4
times faster and fp16 3 to 5 times slower (no fp16 arithmetic). `--protocol paper` refuses
bf16.

**Training.** Validation losses (always computed in fp32) of models trained with bf16 products
are nowhere worse than fp32's by more than the spread between seeds, over 10 epochs across the
model family (the two-layer model's came out 1.2 nats better, more than its seeds differ, at
this early stage of its training):

{families}

and over a whole training, where the fp32 estimate of -log p(x) of the bf16-trained models
differs from the fp32-trained ones' by less than the two fp32 seeds differ from each other:

{long_run}

(Both tables were measured once, with the commands they name, not by `make bench`.) On this
CPU, which has bf16 instructions (AVX512-BF16), bf16 products make an epoch at most 1.3 times
faster (the 784-400-20 nets and the IWAE), Burda et al.'s 200-unit layers about 1.05 times and
the two-layer model not at all (the whole-training table: no gain at batch 100); on a CPU
without such instructions they are slower.

**The default** stays fp32 on every device, for training and for the estimate: the estimate
cannot use bf16; training's gain from bf16 depends on instructions a CPU may lack and on the
layers' width; and fp32 is the one format whose numbers need no caveat. `--precision bf16` is
there for wide layers on CPUs with bf16 instructions. Which format is fastest on a GPU,
`bash tools/bench/gpu.sh` measures there (below).
"""


# From the likelihood table's runs on a GPU (not measured by this script).
GPU_SECTION = """## On a GPU

These figures come from the likelihood table's runs (docs/likelihoods.md) on an NVIDIA H200,
torch 2.11.0+cu130, fp32, batch 100, 59,600 training images, while other runs shared the card:
they are upper bounds on the time a run alone takes.

| run | card shared by | s per epoch, median | K = 5000 on the 10,000 test images |
|---|---|---|---|
| Burda MLP, 1 layer | 12 runs | 2.28 | 3.8 s (2,640 images/s) |
| Burda MLP, 1 layer | 4 runs | 1.97 | 1.5 s (6,770 images/s) |
| two stochastic layers | 4 runs | 3.29 | 5.5 s (1,830 images/s) |
| VampPrior, 1 layer | 12 runs | 3.39 | 2.7 s (3,750 images/s) |
| conv encoder and decoder | 12 runs | 2.83 | 16.5 s (605 images/s) |

The 1-layer MLP's estimate runs 55 to 145 times faster than on this CPU (47 images/s in the
table above). Training, whose steps at batch 100 are too small to fill the card, runs only 1.2
to 1.8 times faster than here (the same 1-layer run on this CPU: 3.56 s per epoch median,
2.18 s best, validation and checkpoint included): per-step overhead dominates, and there
larger batches and several runs per card are the levers (the estimate's GPU chunks are capped
at 2 GiB so that several processes can share a card). `bash tools/bench/gpu.sh [RUN ...]` measures
each number format on a GPU, compiled and not, for the estimate and for training, and writes
its tables to `logs/gpu/gpu.md`. Several GPUs: [scaling.md](scaling.md).
"""


def page(m: Measured, machine: str, today: str, results: Path) -> str:
    """docs/performance.md: the sections in order."""
    sections = [
        intro(machine, today),
        training_section(m),
        likelihood_section(m),
        memory_section(m),
        formats_section(m, results),
        GPU_SECTION,
    ]
    return "\n".join(sections)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="with pythae: .venv-bench/bin/python")
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    ap.add_argument(
        "--precision-run",
        action="append",
        default=[],
        metavar="RUN",
        help="a trained run for the number-format table (repeatable; default: the Burda MLP "
        "trained 5 epochs by tools/bench/precision.py)",
    )
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    machine = f"{cpu_name()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    measured = measure(args.python, args.precision_run)
    today = datetime.date.today().isoformat()
    text = page(measured, machine, today, ROOT / "tools" / "bench" / "results")
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
