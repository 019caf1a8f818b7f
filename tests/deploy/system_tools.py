"""System tools some tests need (promtool, headless Chromium), installed from Debian's packages.

When a tool is missing and the tests run as root, it is installed once per test session with
apt-get; only when that cannot work is the test skipped, with the reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

PROMTOOL = "/usr/bin/promtool"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Other test runs may hold the dpkg lock: wait for it rather than fail.
_APT = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]


def _present(paths: tuple[str, ...]) -> bool:
    return all(os.access(path, os.X_OK) for path in paths)


@functools.cache
def _apt_install(packages: tuple[str, ...]) -> str | None:
    """Install ``packages``; None on success, else why not (tried once per session)."""
    if os.geteuid() != 0:
        return f"not root, so cannot apt-get install {' '.join(packages)}"
    if shutil.which("apt-get") is None:
        return "no apt-get on this system"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [*_APT, "update"],
        [*_APT, "install", "-y", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return None


def require(paths: tuple[str, ...], packages: tuple[str, ...], what: str) -> None:
    """Make sure ``paths`` exist, installing ``packages`` if needed; skip saying why not."""
    if _present(paths):
        return
    reason = _apt_install(packages)
    if reason is None and not _present(paths):
        reason = f"installed {' '.join(packages)}, but {', '.join(paths)} is still missing"
    if reason is not None:
        pytest.skip(f"{what} unavailable: {reason}")


def require_promtool() -> str:
    """The path of promtool (Debian package ``prometheus``)."""
    require((PROMTOOL,), ("prometheus",), "promtool")
    return PROMTOOL


def require_chromium() -> None:
    """Headless Chromium and its driver (Debian ``chromium`` and ``chromium-driver``)."""
    require((CHROMIUM, CHROMEDRIVER), ("chromium", "chromium-driver"), "headless Chromium")
