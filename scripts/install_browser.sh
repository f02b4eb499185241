#!/usr/bin/env bash
# Install what the browser tests (tests/test_explore.py, tests/test_site.py) need, when missing:
#   - Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver);
#   - npm (the site's KaTeX comes from the npm registry);
#   - the selenium Python package into the project's .venv.
# Idempotent: does nothing that is already done.  Needs root (or sudo) for apt-get.
# Selenium is driven with an explicit Service("/usr/bin/chromedriver") and SE_OFFLINE=true,
# so selenium-manager never downloads a driver or a browser.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # Debian packages, as root or through sudo
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
}

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver already installed"
else
    apt_install chromium chromium-driver
fi

# npm: the documentation site's test fetches KaTeX from the npm registry.
if command -v npm >/dev/null; then
    echo "npm already installed"
else
    apt_install npm
fi

PY=${PYTHON:-.venv/bin/python}
if "$PY" -c "import selenium, sys; sys.exit(int(selenium.__version__.split('.')[0]) < 4)" 2>/dev/null; then
    echo "selenium already installed in $PY"
else
    "$PY" -m pip install --disable-pip-version-check -q "selenium>=4.11"
fi

/usr/bin/chromium --version
/usr/bin/chromedriver --version
"$PY" -c "import selenium; print('selenium', selenium.__version__)"
