"""Build the documentation site: docs/ through MkDocs (Material theme) into site/.

    python -m tools.docs.build_site [--site site] [--explorer-run docs/assets/explorer-vae]

MkDocs reads a staged copy of docs/ to which this script adds what git does not hold (the
checkout itself is never written):

- cli.md: the command-line reference, from vaelab's own argument parser;
- assets/katex/: KaTeX (its script, style, fonts and auto-render), from the npm registry,
  checked against its published sha512 and kept in vaelab's cache, so that the formulas
  render with no network;
- tutorial-*.md: the tutorial's chapters, docs/tutorial.md split at its ``## `` headings
  (tools/docs/chapters.py), listed under Tutorial in the navigation;
- explorer/explorer.html: the latent explorer of a trained run, embedded in the Explorer page:
  by default the small 2-D VAE kept in docs/assets/explorer-vae (config.json and
  best.safetensors, made once by ``python -m tools.docs.explorer_model``), drawn over MNIST's
  test images (read from vaelab's data cache, downloaded there the first time); the Explorer
  page's sentence about the model shown is written from the run's config.json.

The built site works from its folder: open site/index.html in a browser (search needs it
served over http: ``python -m http.server -d site``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

from tools import ROOT
from tools.docs.chapters import expand_nav, write_chapters
from vaelab.cli import build_parser
from vaelab.errors import VaelabError
from vaelab.registry import MODELS
from vaelab.runs import Run

DOCS = ROOT / "docs"
EXPLORER_RUN = DOCS / "assets" / "explorer-vae"
EXPLORER_MARK = "<!-- the model shown: written here by tools/docs/build_site.py -->"
KATEX_VERSION = "0.16.22"
KATEX_SHA512 = (
    "XCHRdUw4lf3SKBaJe4EvgqIuWwkPSo9XoeO8GjQW94Bp7TWv9hNhzZjZ+OH9yf1UmLygb7DIT5GSFQiyt16zYg=="
)
DEFAULT_MODEL = "vae"  # the family `vaelab train` trains when none is named
KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js")


def own_settings(model: str) -> str:
    """The group of ``vaelab train --model MODEL --help`` that lists the model's own settings."""
    train = _subcommands(build_parser(model))["train"]
    group = next(g for g in train._action_groups if g.title == f"{model}'s own settings")
    formatter = train._get_formatter()
    formatter.start_section(group.title)
    formatter.add_arguments(group._group_actions)
    formatter.end_section()
    return formatter.format_help().strip()


def _subcommands(parser) -> dict:
    return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


def write_cli_reference(path: Path) -> Path:
    """Every command's --help text, as the parser prints it (train's with the default model's
    settings, then each other model's own)."""
    parser = build_parser(DEFAULT_MODEL)
    lines = [
        "# Command-line reference",
        "",
        "Generated from vaelab's argument parser by `python -m tools.docs.build_site`; "
        "`vaelab COMMAND --help` prints the same.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    for name, p in _subcommands(parser).items():
        lines += [f"## vaelab {name}", "", "```text", p.format_help().rstrip(), "```", ""]
        if name == "train":
            for model in sorted(set(MODELS) - {DEFAULT_MODEL}):
                lines += [f"### vaelab train --model {model}", "",
                          f"Its own settings (`vaelab train --model {model} --help` lists "
                          "them with the rest):", "",
                          "```text", own_settings(model), "```", ""]  # fmt: skip
        nested = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        for inner in nested:
            for iname, ip in inner.choices.items():
                lines += [f"### vaelab {name} {iname}", "", "```text",
                          ip.format_help().rstrip(), "```", ""]  # fmt: skip
    path.write_text("\n".join(lines))
    return path


def fetch_katex(dest: Path) -> Path:
    """KaTeX's files under ``dest`` (kept once there), from the npm registry's tarball."""
    if all((dest / f).exists() for f in KATEX_FILES) and (dest / "fonts").is_dir():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"katex@{KATEX_VERSION}", "--silent",
                        "--pack-destination", tmp], check=True, capture_output=True)  # fmt: skip
        (tarball,) = Path(tmp).glob("katex-*.tgz")
        data = tarball.read_bytes()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != KATEX_SHA512:
        raise SystemExit(f"katex-{KATEX_VERSION}.tgz: sha512 {digest} is not the published one")
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/dist/")
            wanted = name in KATEX_FILES or (name.startswith("fonts/") and name.endswith(".woff2"))
            if member.isfile() and name != member.name and wanted:
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def write_explorer(run: Path, dest: Path) -> Path:
    """The explorer page of ``run`` at ``dest`` (``vaelab explore``); exits with its error."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "vaelab", "explore", str(run), "-o", str(dest)],
                       capture_output=True, text=True)  # fmt: skip
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"error: the Explorer page: vaelab explore {run} failed: {last}")
    return dest


def describe_run(run: Path) -> str:
    """One sentence naming the model a run folder holds, from its config.json."""
    try:
        r = Run.load(run)
    except VaelabError as e:
        raise SystemExit(f"error: the Explorer page: {e}") from None
    m = r.model_config
    flags = [f"--model {r.model_name}"] + [
        f"--{key.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for key, v in m.items()
        if key in ("latent_dim", "hidden", "decoder_hidden", "activation", "likelihood")
        and v is not None
    ]
    flags += [f"--epochs {r.train.epochs}", f"--seed {r.train.seed}"]
    data = "your own images" if r.data.data else f"the training images of `{r.data.dataset}`"
    return (
        f"The model shown has a {m.get('latent_dim')}-D latent space and was trained on {data} "
        f"by `vaelab train {' '.join(flags)}` (the rest at their defaults; an epoch is one "
        "pass over the training images)."
    )


def stage_explorer(stage: Path, run: Path | None, html: Path | None) -> None:
    """explorer/explorer.html in the staged docs: made from ``run`` (default: the model kept in
    docs/assets/explorer-vae), or ``html`` as given (``run`` then only names the model); and
    the Explorer page's sentence about the model."""
    page = stage / "explorer" / "explorer.html"
    if html is not None:
        page.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, page)
    about = "The model shown is named at the top of the frame."
    if run is not None or html is None:
        about = describe_run(run or EXPLORER_RUN)
    if html is None:
        write_explorer(run or EXPLORER_RUN, page)
    md = stage / "explorer.md"
    if md.exists() and EXPLORER_MARK in md.read_text():
        md.write_text(md.read_text().replace(EXPLORER_MARK, about))


def katex_cache() -> Path:
    base = os.environ.get("VAELAB_DATA") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vaelab"  # fmt: skip
    return Path(base) / f"katex-{KATEX_VERSION}"


def build(site: Path, explorer_run: Path | None = None, explorer_html: Path | None = None) -> Path:
    """The site in ``site``, from a staged copy of docs/ (the checkout is never written)."""
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "docs"
        shutil.copytree(DOCS, stage)
        write_cli_reference(stage / "cli.md")
        chapters = write_chapters(stage)
        shutil.copytree(fetch_katex(katex_cache()), stage / "assets" / "katex")
        stage_explorer(stage, explorer_run, explorer_html)
        config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
        config["docs_dir"] = str(stage)
        config["nav"] = expand_nav(config["nav"], chapters)
        config["site_dir"] = str(site.resolve())
        for plugin in config.get("plugins", []):
            if isinstance(plugin, dict) and "mkdocstrings" in plugin:
                plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT / "src")]
        staged_config = Path(tmp) / "mkdocs.yml"
        staged_config.write_text(yaml.safe_dump(config, sort_keys=False))
        env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                        "-f", str(staged_config)], check=True, cwd=ROOT, env=env)  # fmt: skip
    return site


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default=str(ROOT / "site"), help="output folder")
    ap.add_argument(
        "--explorer-run",
        help="the run whose decoder the Explorer page shows (default: docs/assets/explorer-vae)",
    )
    ap.add_argument("--explorer-html", help="an explorer page made already (of --explorer-run)")
    args = ap.parse_args()
    site = build(Path(args.site), Path(args.explorer_run) if args.explorer_run else None,
                 Path(args.explorer_html) if args.explorer_html else None)  # fmt: skip
    print(f"built the site in {site}: open {site / 'index.html'}")


if __name__ == "__main__":
    main()
