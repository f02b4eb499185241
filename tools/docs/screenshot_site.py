"""Screenshots of the built documentation site in headless Chromium, pages by widths.

    python -m tools.docs.build_site && python -m tools.docs.screenshot_site
        [--page index tutorial-6-the-conditional-vae explorer] [--width 1400 500]
        [--height 1000] [--full]
        [--anchor 6-the-conditional-vae] [--out-dir runs/screenshots] [--out FILE.png]

One picture per page and width, ``OUT_DIR/<page>-<width>.png`` (``--out``: one page at one
width, to that file).  The window is ``width`` x ``height`` CSS px; ``--full`` grows it to the
page's whole height first.  Needs Debian's chromium and chromium-driver and the selenium
package (``bash scripts/install_browser.sh``); opens the site from disk, with no network.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tools import ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def shoot(driver, url: str, width: int, height: int, full: bool, out: Path) -> Path:
    driver.set_window_size(width, height)
    driver.get(url)
    time.sleep(1.0)  # KaTeX typesets and the explorer draws after load
    if full:
        tall = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(tall) + 100, 16000))
        time.sleep(0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default=str(ROOT / "site"))
    ap.add_argument("--page", nargs="+", default=["index", "tutorial", "explorer"])
    ap.add_argument("--width", nargs="+", type=int, default=[1400, 500], help="CSS px")
    ap.add_argument("--height", type=int, default=1000, help="window height, CSS px")
    ap.add_argument("--full", action="store_true", help="the whole page, not one window")
    ap.add_argument("--anchor", help="scroll to this heading's id first")
    ap.add_argument("--out-dir", default=str(ROOT / "runs" / "screenshots"))
    ap.add_argument("--out", help="the file for one page at one width")
    args = ap.parse_args()
    pages = [Path(args.site) / f"{p.removesuffix('.html')}.html" for p in args.page]
    for page in pages:
        if not page.exists():
            sys.exit(f"error: {page} does not exist: build the site (make site)")
    if args.out and len(pages) * len(args.width) != 1:
        sys.exit("error: --out takes one --page at one --width; use --out-dir for more")
    # selenium is no dependency of vaelab (scripts/install_browser.sh installs it): imported
    # here, so that --help and the missing-site message need no browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", f"--user-data-dir={profile}"]:  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            for page in pages:
                url = page.resolve().as_uri() + (f"#{args.anchor}" if args.anchor else "")
                for width in args.width:
                    out = Path(args.out or Path(args.out_dir) / f"{page.stem}-{width}.png")
                    print(f"wrote {shoot(driver, url, width, args.height, args.full, out)}")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
