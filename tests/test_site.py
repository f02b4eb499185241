"""The documentation site: built from docs/ by tools/docs/build_site.py, opened from its folder in
headless Chromium.  Every page loads without console errors, every formula is typeset (no raw
LaTeX left), every image loads, and every internal link resolves.

Needs mkdocs (the test extra), npm (KaTeX comes from the npm registry, checked against its
sha512) and the browser of tests/test_explore.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from helpers import console_problems, tiny_run

from vaelab.explore import write_explorer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_splits_module):
    for needed in ("npm", "mkdocs"):
        found = shutil.which("npm") if needed == "npm" else importlib.util.find_spec("mkdocs")
        if not found:
            reason = f"{needed} is not installed (scripts/install_browser.sh, or the docs extra)"
            if os.environ.get("VAELAB_REQUIRE_BROWSER") == "1":
                pytest.fail(f"VAELAB_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
            pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("site")
    run = tiny_run(tmp / "run", tiny_splits_module)
    page = write_explorer(run, tmp / "explorer.html")  # in this process: the data are in memory
    p = subprocess.run(
        [sys.executable, "-m", "tools.docs.build_site", "--site", str(tmp / "site"),
         "--explorer-html", str(page)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return tmp / "site"


def pages(site: Path) -> list[Path]:
    """The site's own pages (not the assets' or the embedded explorer's)."""
    return sorted(p for p in site.glob("*.html") if p.name != "404.html")


def test_every_page_of_the_nav_is_built(site):
    names = {p.name for p in pages(site)}
    nav = ("index", "tutorial", "results", "likelihoods", "performance", "scaling", "explorer")
    for page in (*nav, "cli", "api"):
        assert f"{page}.html" in names
    cli = (site / "cli.html").read_text()
    assert "vaelab train" in cli and "--protocol" in cli and "vaelab evaluate" in cli
    assert "load_run" in (site / "api.html").read_text()


def test_internal_links_resolve(site):
    broken = []
    for page in pages(site):
        for href in re.findall(r'(?:href|src)="([^"]+)"', page.read_text()):
            url, fragment = urldefrag(href)
            if urlparse(url).scheme or url.startswith("//"):
                continue  # external: not followed (the site never needs the network)
            target = (page.parent / unquote(url)).resolve() if url else page
            if not target.exists():
                broken.append(f"{page.name}: {href}")
            elif fragment and target.suffix == ".html":
                ids = set(re.findall(r'id="([^"]+)"', target.read_text()))
                if unquote(fragment) not in ids:
                    broken.append(f"{page.name}: {href} (no id {fragment!r})")
    assert broken == []


def wait_ready(driver, timeout=15.0):
    deadline = time.monotonic() + timeout
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_pages_load_clean_with_formulas_typeset_and_images_loaded(site, browser):
    checked_math = 0
    for page in pages(site):
        browser.get(page.resolve().as_uri())
        wait_ready(browser)
        time.sleep(0.3)  # KaTeX renders after DOMContentLoaded
        assert console_problems(browser) == [], page.name
        images = browser.execute_script(
            "return [...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])"
        )
        assert [src for src, ok in images if not ok] == [], page.name
        math = browser.execute_script(
            "return [...document.querySelectorAll('.arithmatex')].map("
            "e => [e.querySelector('.katex') !== null, e.textContent.slice(0, 60)])"
        )
        assert [text for ok, text in math if not ok] == [], page.name
        checked_math += len(math)
        text = browser.execute_script(
            "const c = document.querySelector('article') || document.body;"
            "const t = c.cloneNode(true); t.querySelectorAll('pre, code, .katex').forEach("
            "e => e.remove()); return t.textContent"
        )
        raw = re.findall(r"\$[^$\s][^$]*\$|\\\(|\\\[", text)
        assert raw == [], f"{page.name}: untypeset maths {raw[:3]}"
    assert checked_math > 10  # the tutorial's formulas were among them


def test_the_explorer_page_embeds_a_working_explorer(site, browser):
    browser.get((site / "explorer" / "explorer.html").resolve().as_uri())
    deadline = time.monotonic() + 10
    while not browser.execute_script("return !!window.vaelab"):
        assert time.monotonic() < deadline, "the explorer never started"
        time.sleep(0.05)
    assert console_problems(browser) == []
