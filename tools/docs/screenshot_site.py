"""Screenshots of the built documentation site in headless Chromium (for the README).

    python -m tools.docs.build_site && python -m tools.docs.screenshot_site
        [--page tutorial-6-the-conditional-vae] [--anchor ID] [--out docs/screenshots/tutorial.png]

Needs Debian's chromium and chromium-driver and the selenium package
(``bash scripts/install_browser.sh``); opens the site from disk, with no network.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default=str(ROOT / "site"))
    ap.add_argument("--page", default="tutorial")
    ap.add_argument("--anchor", help="scroll to this heading's id first")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "tutorial.png"))
    ap.add_argument("--size", default="1300,900", help="window width,height in pixels")
    args = ap.parse_args()
    page = Path(args.site) / f"{args.page}.html"
    if not page.exists():
        sys.exit(f"error: {page} does not exist: build the site (python -m tools.docs.build_site)")
    # selenium is no dependency of vaelab (scripts/install_browser.sh installs it): imported
    # here, so that --help and the missing-site message need no browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-background-networking", f"--user-data-dir={profile}",
                     f"--window-size={args.size}"]:  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            url = page.resolve().as_uri() + (f"#{args.anchor}" if args.anchor else "")
            driver.get(url)
            time.sleep(1.5)  # KaTeX typesets after load
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
