"""Whether Chromium plays a video: its duration, and every seek (the seams too) answered.

    python -m benchmarks._chromium VIDEO [SECONDS ...]

Prints JSON: the duration Chromium reads, and for each time given (default: the end) the
time it landed on with the frame ready (readyState >= 2), or the media error.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update"]


def plays(video: Path, seeks: list[float]) -> dict[str, Any]:
    """Open ``video`` in headless Chromium, read its duration, seek to each of ``seeks``."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "play.html"
        target = Path(tmp) / video.name
        target.symlink_to(video.resolve())
        page_path.write_text(f'<video id="v" src="{target.name}" muted preload="auto">')
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=_ARGS)
            page = browser.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_function(
                "(v => v.readyState >= 1 || v.error)(document.getElementById('v'))",
                timeout=60_000)
            duration = page.evaluate("document.getElementById('v').duration")
            landed = []
            for t in seeks or [duration - 0.05]:
                landed.append(page.evaluate("""t => new Promise(done => {
                    const v = document.getElementById('v');
                    v.addEventListener('seeked', () => {
                      const ready = () => v.readyState >= 2 ? done([v.currentTime, null])
                                                            : setTimeout(ready, 20);
                      ready();
                    }, {once: true});
                    v.addEventListener('error', () => done([null, v.error.code]), {once: true});
                    v.currentTime = t;
                  })""", t))
            error = page.evaluate("document.getElementById('v').error?.code ?? null")
            browser.close()
    return {"duration": duration, "seeks": landed, "error": error}


if __name__ == "__main__":
    print(json.dumps(plays(Path(sys.argv[1]), [float(x) for x in sys.argv[2:]])))
