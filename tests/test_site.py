"""The documentation site: built from docs/ by tools/docs/build_site.py, opened from its folder in
headless Chromium.  Every page loads without console errors, every formula is typeset (no raw
LaTeX left), every image loads, and every internal link resolves.  Read as a person would, at
1400 and 500 px wide (every page the navigation lists): the page never scrolls sideways, no
table, code block or formula reaches out of the column unless it scrolls in a box of its own,
code blocks wrap (nothing under the copy button), the previous / next links lead to pages, and
the Explorer draws a digit after a drag on its plane.  The Explorer shows the model kept in
docs/assets/explorer-vae, drawn over the synthetic test images (no MNIST needed).

Needs mkdocs (the test extra), npm (KaTeX comes from the npm registry, checked against its
sha512) and the browser of tests/test_explore.py.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest
from helpers import console_problems

from tools.docs.build_site import EXPLORER_RUN, describe_run
from vaelab import load_run
from vaelab.explore import explorer_html

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
    page = tmp / "explorer.html"  # in this process: the test images are in memory
    page.write_text(explorer_html(load_run(EXPLORER_RUN), tiny_splits_module["test"], n_points=200))
    p = subprocess.run(
        [sys.executable, "-m", "tools.docs.build_site", "--site", str(tmp / "site"),
         "--explorer-html", str(page), "--explorer-run", str(EXPLORER_RUN)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return tmp / "site"


def pages(site: Path) -> list[Path]:
    """The site's own pages, in any folder (not the assets' or the embedded explorer's)."""
    skip = {site / "assets", site / "explorer"}
    return sorted(
        p for p in site.rglob("*.html") if p.name != "404.html" and not skip & set(p.parents)
    )


def test_every_page_of_the_nav_is_built(site):
    names = {p.name for p in pages(site)}
    nav = ("index", "results", "likelihoods", "performance", "scaling", "explorer")
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


WIDTHS = (1400, 500)  # CSS px: a desktop window, and a phone held sideways
HEIGHT = 1000
EDGE = 1.0  # CSS px of slack for rounding in the layout checks

# What a reader would notice on the page shown, as lists of short descriptions (empty: fine).
# The column is Material's .md-content (its tables and formulas may use its side margins).
AUDIT = r"""
const col = (document.querySelector('.md-content') || document.body).getBoundingClientRect();
const E = arguments[0], doc = document.documentElement;
const scrolls = (e) => {  // a box that scrolls its overflow (tables never do, whatever they say)
  const s = getComputedStyle(e);
  return ['auto', 'scroll'].includes(s.overflowX) && !/table|^inline$/.test(s.display);
};
const outside = (r) => r.left < col.left - E || r.right > col.right + E;
const name = (e) => e.tagName.toLowerCase() + ' "' + e.textContent.trim().slice(0, 50) + '"';
function escapes(el) {  // reaches past the column, and no box around it (or itself) that
  if (!outside(el.getBoundingClientRect())) return false;  // fits the column scrolls it
  for (let e = el; e && e !== document.body; e = e.parentElement) {
    if (scrolls(e) && !outside(e.getBoundingClientRect())) return false;
  }
  return true;
}
function cutLeft(k) {  // a formula starting left of its scroll box: that part is unreachable
  for (let e = k.parentElement; e && e !== document.body; e = e.parentElement) {
    if (scrolls(e)) return k.getBoundingClientRect().left < e.getBoundingClientRect().left - E;
  }
  return false;
}
const blocks = [...document.querySelectorAll('article table, article pre, article .katex-display')];
return {
  body: doc.scrollWidth > doc.clientWidth + E ? ['page ' + doc.scrollWidth + ' px wide'] : [],
  wide: blocks.filter(escapes).map(name),
  code: [...document.querySelectorAll('article pre > code')]
    .filter((c) => c.scrollWidth > c.clientWidth + E).map(name),
  maths: [...document.querySelectorAll('.arithmatex')]
    .filter((e) => !e.querySelector('.katex') || e.querySelector('.katex-error'))
    .map((e) => 'untypeset ' + e.textContent.slice(0, 50))
    .concat([...document.querySelectorAll('.katex-display > .katex')].filter(cutLeft).map(name)),
  images: [...document.images].filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.src),
  links: [...document.querySelectorAll('a.md-footer__link')].map((a) => a.href),
  formulas: document.querySelectorAll('.arithmatex').length,
};
"""


def nav_pages(site: Path, browser) -> list[Path]:
    """The pages the built site's navigation lists (whatever they are called), home first."""
    browser.get((site / "index.html").resolve().as_uri())
    wait_ready(browser)
    hrefs = browser.execute_script(
        "return [...document.querySelectorAll('.md-nav--primary a.md-nav__link[href]')]"
        ".map(a => a.href)"
    )
    found = [site / "index.html"]
    for href in hrefs:
        url = urlparse(urldefrag(href)[0])
        path = Path(unquote(url.path))
        if url.scheme == "file" and path.suffix == ".html" and path not in found:
            found.append(path)
    return found


def drag_explorer(browser) -> dict:
    """On the Explorer page: the frame's digit in view, then a drag across the plane; what the
    digit canvas holds afterwards."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    frame = browser.find_element(By.CSS_SELECTOR, "article iframe")
    top, window = browser.execute_script(
        "return [arguments[0].getBoundingClientRect().top, window.innerHeight]", frame
    )
    browser.switch_to.frame(frame)
    try:
        deadline = time.monotonic() + 10
        while not browser.execute_script("return !!window.vaelab"):
            assert time.monotonic() < deadline, "the explorer never started"
            time.sleep(0.05)
        start = browser.execute_script("return window.vaelab.getLatent()")
        digit_bottom = browser.execute_script(
            "return document.getElementById('digit').getBoundingClientRect().bottom"
        )
        plane = browser.find_element(By.ID, "plane")
        size = browser.execute_script("return arguments[0].clientWidth", plane)
        step = size / 5
        drag = ActionChains(browser).move_to_element(plane).click_and_hold()
        drag.move_by_offset(-step, step).move_by_offset(-step / 2, step / 2).release().perform()
        return browser.execute_script(
            "const c = document.getElementById('digit');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let lit = 0; for (let i = 0; i < d.length; i += 4) lit += d[i] > 60;"
            "return {lit: lit / (d.length / 4), moved: window.vaelab.getLatent(), start: "
            "arguments[0], plane: arguments[4], fits: document.documentElement.scrollHeight <= "
            "innerHeight + 1 && document.documentElement.scrollWidth <= innerWidth + 1,"
            "visible: arguments[1] + arguments[2] <= arguments[3]}",
            start, top, digit_bottom, window, size,
        )  # fmt: skip
    finally:
        browser.switch_to.default_content()


def test_every_page_reads_well_at_1400_and_500_px(site, browser):
    found = nav_pages(site, browser)
    assert len(found) >= 10 and site / "explorer.html" in found
    problems, report, explorer = {}, [], {}
    try:
        for width in WIDTHS:
            browser.set_window_size(width, HEIGHT)
            for page in found:
                browser.get(page.resolve().as_uri())
                wait_ready(browser)
                time.sleep(0.2)  # KaTeX renders after load
                seen = browser.execute_script(AUDIT, EDGE)
                links = [Path(unquote(urlparse(h).path)) for h in seen.pop("links")]
                seen["links"] = [str(p.name) for p in links if not p.is_file()]
                name = page.relative_to(site).as_posix()
                if name == "explorer.html":
                    explorer[width] = drag_explorer(browser)
                seen["console"] = [e["message"][:120] for e in console_problems(browser)]
                bad = {k: v for k, v in seen.items() if isinstance(v, list) and v}
                report.append(f"{width:4d} px {name:28s} formulas {seen['formulas']:3d}  "
                              f"prev/next {len(links)}  {'ok' if not bad else bad}")  # fmt: skip
                if bad:
                    problems[f"{name} at {width} px"] = bad
    finally:
        browser.set_window_size(1300, 1000)  # the module's browser as it came
        print("\n".join(report))
    assert problems == {}
    assert sorted(explorer) == sorted(WIDTHS)
    for width, seen in explorer.items():
        assert seen["moved"] != seen["start"], f"the drag at {width} px moved nothing"
        # a decoded MNIST digit lights some 10-30 % of its pixels; a blank canvas none
        assert 0.02 < seen["lit"] < 0.6, (width, seen)
        assert seen["visible"], f"the decoded digit is below the fold at {width} px: {seen}"
        assert seen["plane"] >= 200, f"the plane is {seen['plane']} px wide at {width} px"
        assert seen["fits"], f"the explorer needs scrolling inside its frame at {width} px"


def test_the_shipped_explorer_model_is_small_and_described_from_its_config():
    weights = EXPLORER_RUN / "best.safetensors"
    assert 50_000 < weights.stat().st_size < 1_000_000  # bytes: "a few hundred KB"
    model = load_run(EXPLORER_RUN)
    assert model.latent_dim == 2
    about = describe_run(EXPLORER_RUN)
    assert "--latent-dim 2 " in about and f"--likelihood {model.cfg.likelihood} " in about
    assert "tutorial" not in (ROOT / "docs" / "explorer.md").read_text()


def test_search_works_where_the_site_is_served_and_hides_from_disk(site, browser):
    from selenium.webdriver.common.by import By

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        wait_ready(browser)
        browser.execute_script("document.getElementById('__search').checked = true")
        box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
        deadline = time.monotonic() + 10
        while box.get_attribute("disabled") is not None or not box.is_displayed():
            assert time.monotonic() < deadline, "the search box never opened"
            time.sleep(0.05)
        box.send_keys("ELBO")
        found = 0
        while found == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            found = len(browser.find_elements(By.CSS_SELECTOR, ".md-search-result__item"))
        assert found > 0, "no search result for ELBO"
        assert console_problems(browser) == []
    finally:
        server.shutdown()
        server.server_close()
    browser.get((site / "index.html").resolve().as_uri())  # from disk: no search to offer
    wait_ready(browser)
    time.sleep(0.3)
    shown = browser.execute_script(
        "return [...document.querySelectorAll('[data-md-component=search], "
        "label.md-header__button[for=__search]')].filter(e => e.offsetParent !== null).length"
    )
    assert shown == 0
    assert console_problems(browser) == []
