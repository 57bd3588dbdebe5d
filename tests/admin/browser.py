"""The machine's headless Chromium for browser tests: found, or installed from the OS packages.

Debian's ``chromium`` package is used rather than a test tool's own browser download
(``playwright install``), which cannot reach its download host from these machines.
Playwright drives it through ``executable_path``.

Run as a script (``python -m tests.admin.browser``) to install it ahead of a test run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
APT_PACKAGE = "chromium"
INSTALL_TIMEOUT_SECONDS = 900

# Without the background-networking flags Chromium keeps dialling Google's hosts, which
# a closed network refuses many times at every start; no sandbox because tests run as root.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumUnavailable(Exception):
    """No Chromium here, and none could be installed (the message says why)."""


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def ensure_chromium() -> tuple[str, float]:
    """Return Chromium's path and how long installing it took (0.0 if already there).

    Installs Debian's ``chromium`` with apt-get when missing; raises ChromiumUnavailable
    where that is impossible (not root, no apt-get, no mirror).
    """
    found = find_chromium()
    if found:
        return found, 0.0
    if not shutil.which("apt-get"):
        raise ChromiumUnavailable("Chromium is not installed and this system has no apt-get.")
    if os.geteuid() != 0:
        raise ChromiumUnavailable(
            "Chromium is not installed and only root can install it: "
            f"run `apt-get install -y {APT_PACKAGE}` as root (or set CHROMIUM_PATH)."
        )
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Other jobs on the machine may hold dpkg's lock for a while: wait for it.
    lock = ("-o", "DPkg::Lock::Timeout=300")
    for command in (
        ["apt-get", *lock, "update", "-q"],
        ["apt-get", *lock, "install", "-y", "-q", APT_PACKAGE],
    ):
        _run(command, env)
    found = find_chromium()
    if not found:
        raise ChromiumUnavailable(f"`apt-get install {APT_PACKAGE}` left no chromium binary.")
    return found, time.monotonic() - started


def _run(command: list[str], env: dict[str, str]) -> None:
    try:
        result = subprocess.run(  # a fixed command line
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChromiumUnavailable(f"`{' '.join(command)}` failed: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-2000:]
        raise ChromiumUnavailable(
            f"`{' '.join(command)}` exited {result.returncode}; its last output:\n{tail}"
        )


def playwright_args() -> list[str]:
    """The flags for Playwright's ``launch(headless=True)``, which adds ``--headless`` and a
    fresh temporary ``--user-data-dir`` itself (and refuses one in ``args``)."""
    return [arg for arg in CHROMIUM_ARGS if arg != "--headless"]


if __name__ == "__main__":
    # `make test` runs this before the admin tests, so that installing Chromium (minutes on a
    # slow mirror) happens outside any test's timeout.
    try:
        path, seconds = ensure_chromium()
    except ChromiumUnavailable as exc:
        raise SystemExit(f"chromium: {exc}") from None
    print(f"chromium: {path} (installed in {seconds:.1f} s)" if seconds else f"chromium: {path}")  # noqa: T201
