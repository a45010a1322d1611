"""Screenshot a study report in headless Chromium (checks that report.html renders).

Usage::

    python scripts/screenshot_report.py results/lccp/report.html report.png

Needs a Chromium binary (Debian: ``apt-get install chromium``); not part of the test suite
because CI machines have no browser.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 4000) -> Path:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no Chromium found; install it, e.g. apt-get install chromium")
    png = png.resolve()
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={png}", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return png


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2])))
