"""Debian's chromium, headless, driven by chromium-driver through selenium: open a
page, click, read the DOM, list every network request it made, screenshot it.

Every request is logged (the DevTools ``Network`` domain through chromedriver's
performance log) and the browser's proxy is a closed port, so a page that
tried to fetch anything would show it here and get nothing.
"""

import json
import os
import shutil
import time
from pathlib import Path
from typing import List, Optional

__all__ = ["Browser", "CHROMIUM", "CHROMEDRIVER", "available"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def available() -> Optional[str]:
    """None if the browser can run here, else what is missing (scripts/setup.sh
    installs chromium, chromium-driver and selenium)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} missing"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing"
    return None


class Browser:
    """One headless chromium (a fresh profile), closed by :meth:`close`."""

    def __init__(self, width: int = 1300, height: int = 1000) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}",
                    # A closed port as the proxy: a request that went out would fail.
                    "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-default-apps",
                    "--disable-sync", "--metrics-recording-only"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER),
                                       options=opts)
        self.driver.set_page_load_timeout(60)

    def open(self, path: Path) -> float:
        """Load *path*; returns the seconds until its load event (the browser's
        own navigation timing), after the page's script ran."""
        self.driver.get_log("performance")  # drop what came before
        self.driver.get_log("browser")
        start = time.monotonic()
        self.driver.get(Path(path).resolve().as_uri())
        wall = time.monotonic() - start
        timing = self.driver.execute_script(
            "var t=performance.getEntriesByType('navigation')[0];"
            "return t?t.loadEventEnd:null;")
        return (timing / 1000.0) if timing else wall

    def requests(self) -> List[str]:
        """The URL of every request the page made since :meth:`open`."""
        urls = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        return urls

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def console_errors(self) -> List[str]:
        return [e["message"] for e in self.driver.get_log("browser")
                if e.get("level") == "SEVERE"]

    def screenshot(self, path: Path) -> Path:
        """The whole page (the window made as tall as the page) as PNG."""
        height = self.js("return Math.min(document.documentElement.scrollHeight, 16000);")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, max(int(height), 600))
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        self.driver.quit()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
