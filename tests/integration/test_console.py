"""The operator console: live data from a running pipeline in headless Chromium, Replay of a
dead letter from the page, and the access rules (token, cookie, CSRF, Host) over HTTP.

The browser test needs Debian's ``chromium`` and ``chromium-driver``: installed once by the
test setup when missing and running as root, else the test is skipped saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.deployment import Deployment, deployment, make_config, org, tenant_table
from giftsync.console import create_app
from giftsync.console_access import COOKIE, Access, access_for
from giftsync.examples import transaction
from giftsync.settings import SettingsError, get_settings
from giftsync.waiting import wait_for
from producers.publish import publish_many
from sandbox.config import FaultConfig
from tests.deploy.processes import answers, free_port, role
from tests.deploy.system_tools import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, require_chromium

pytestmark = pytest.mark.integration

TOKEN = "console-token-0123456789abcdef"
BAD_FUND = {"id": 99, "name": "Gone", "virtuous_id": 999, "code": None}


def tenants(url: str) -> str:
    # hope-shelter: gifts go through, one is refused, the rest pass the review deadline
    # unconfirmed. fragile: its organisation answers 500 to everything.
    return tenant_table(
        "hope-shelter",
        url,
        "VIRTUOUS_TOKEN_HOPE",
        reconcile_after_seconds=1,
        review_deadline_seconds=2,
    ) + tenant_table("fragile", url, "VIRTUOUS_TOKEN_FRAGILE")


@pytest.fixture
def driver() -> Iterator[Any]:
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


def text_of(browser: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, css))


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_shows_live_data_and_replay_resends_a_dead_letter(
    tmp_path: Path, redis_url: str, driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    config = make_config(
        org("hope-shelter", "demo-token-hope"),
        org("fragile", "demo-token-fragile"),
        org_faults={"fragile": FaultConfig(fail_rate=1.0)},
    )
    env = {
        "VIRTUOUS_TOKEN_FRAGILE": "demo-token-fragile",
        "GIFTSYNC_MAX_RETRIES": "1",
        "GIFTSYNC_MIN_BACKOFF_MS": "50",
        "GIFTSYNC_MAX_BACKOFF_MS": "100",
        "GIFTSYNC_RECONCILE_EVERY_SECONDS": "0.5",
        "GIFTSYNC_CONSOLE_TOKEN": TOKEN,
    }
    with deployment(tmp_path, redis_url, tenants=tenants, sandbox_config=config, env=env) as dep:
        assert dep.log_dir is not None
        dep.start_worker(processes=1, threads=4)
        hope = [
            transaction("hope-shelter", i, amount=700 + i, fund=BAD_FUND if i == 3 else None)
            for i in range(1, 7)
        ]
        fragile = [transaction("fragile", i, amount=900 + i) for i in range(1, 4)]
        publish_many(hope + fragile)
        wait_for(
            lambda: (
                dep.state_counts("fragile").get("dead") == 3
                and dep.state_counts("hope-shelter") == {"quarantined": 1, "needs_review": 5}
            ),
            timeout=60,
            what="3 dead, 1 quarantined and 5 needing review",
        )

        port = free_port()
        log = dep.log_dir / "console.log"
        with role(["console", "--port", str(port)], dep.env, log) as proc:
            base = f"http://127.0.0.1:{port}"
            answers(f"{base}/healthz", proc, log)
            driver.get(base + "/")
            # A token is configured: the page asks for it first.
            assert driver.current_url == f"{base}/login"
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.ID, "login").click()
            wait_for(lambda: driver.current_url == f"{base}/", what="the console after login")

            hope_section = '[data-tenant="hope-shelter"]'
            assert "quarantined 1" in text_of(driver, f"{hope_section} .states")
            assert "needs_review 5" in text_of(driver, f"{hope_section} .states")
            assert "calls used in the current 3600s window" in text_of(driver, hope_section)
            review = text_of(driver, f"{hope_section} table.review")
            assert "WeGive Import" in review and "5" in review
            quarantined = text_of(driver, f"{hope_section} table.quarantined")
            assert "transaction:3" in quarantined and "999" in quarantined
            letters = text_of(driver, '[data-tenant="fragile"] table.dead-letters')
            assert "send_batch" in letters and "dead 3" in text_of(driver, "[data-tenant=fragile]")

            dep.admin("POST", "faults", json={"org": "fragile", "clear": True})
            driver.find_element(By.CSS_SELECTOR, '[data-tenant="fragile"] button.replay').click()
            wait_for(lambda: "notice=" in driver.current_url, what="the replay's answer")
            assert "replayed dead letter" in text_of(driver, ".notice")
            wait_for(
                lambda: dep.state_counts("fragile") == {"submitted": 3},
                timeout=30,
                what="the replayed batch submitted",
            )
            driver.get(base + "/")
            assert "submitted 3" in text_of(driver, '[data-tenant="fragile"] .states')
            assert not driver.find_elements(By.CSS_SELECTOR, "table.dead-letters")
            assert TOKEN not in driver.page_source


@pytest.fixture
def wired(tmp_path: Path, redis_url: str) -> Iterator[Deployment]:
    env = {"VIRTUOUS_TOKEN_FRAGILE": "x", "GIFTSYNC_CONSOLE_TOKEN": TOKEN}
    with deployment(tmp_path, redis_url, tenants=tenants, env=env) as dep:
        yield dep


@contextmanager
def console(host: str, token: str | None = TOKEN) -> Iterator[tuple[httpx.Client, Access]]:
    """The console app (bound as if on ``host``) served on loopback, and an HTTP client."""
    from giftsync.serving import serve_in_thread

    port = free_port()
    access = access_for(replace(get_settings(), console_token=token), host, port)
    with (
        serve_in_thread(create_app(access), port=port, name="console") as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=10) as web,
    ):
        yield web, access


def test_binding_beyond_loopback_needs_a_long_enough_token(wired: Deployment) -> None:
    settings = get_settings()
    with pytest.raises(SettingsError, match="needs GIFTSYNC_CONSOLE_TOKEN"):
        access_for(replace(settings, console_token=None), "0.0.0.0", 8090)
    with pytest.raises(SettingsError, match="16"):
        access_for(replace(settings, console_token="short"), "127.0.0.1", 8090)
    open_console = access_for(replace(settings, console_token=None), "127.0.0.1", 8090)
    assert open_console.token is None and open_console.hosts is not None


def test_a_token_is_asked_for_and_never_echoed(wired: Deployment) -> None:
    with console("0.0.0.0") as (web, _):
        assert web.get("/").headers["location"] == "/login"
        assert web.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        page = web.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200 and "hope-shelter" in page.text
        assert TOKEN not in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]

        origin = {"Origin": str(web.base_url).rstrip("/")}
        refused = web.post("/login", data={"token": "nope"}, headers=origin)
        assert refused.status_code == 401 and COOKIE not in refused.cookies
        accepted = web.post("/login", data={"token": TOKEN}, headers=origin)
        assert accepted.status_code == 303
        cookie = accepted.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert web.get("/").status_code == 200


def test_replay_from_a_browser_needs_the_csrf_token_and_the_same_origin(
    wired: Deployment,
) -> None:
    with console("0.0.0.0") as (web, access):
        origin = {"Origin": str(web.base_url).rstrip("/")}
        form = {"message_id": "no-such-message", "csrf": access.csrf}
        # Not logged in: refused whatever the form holds.
        assert web.post("/replay", data=form, headers=origin).status_code == 401
        web.post("/login", data={"token": TOKEN}, headers=origin)
        assert web.post("/replay", data={"message_id": "x"}, headers=origin).status_code == 403
        evil = {"Origin": "http://evil.example"}
        assert web.post("/replay", data=form, headers=evil).status_code == 403
        assert web.post("/replay", data=form).status_code == 403  # neither Origin nor Referer
        done = web.post("/replay", data=form, headers=origin)
        assert done.status_code == 303 and "no%20dead%20letter" in done.headers["location"]
        # A bearer client carries no ambient credential: it needs no CSRF token.
        web.cookies.clear()
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert web.post("/replay", data={"message_id": "x"}, headers=bearer).status_code == 303


def test_on_loopback_only_loopback_host_names_are_answered(wired: Deployment) -> None:
    with console("127.0.0.1", token=None) as (web, access):
        assert web.get("/").status_code == 200
        # A page that rebinds its own DNS name to 127.0.0.1 still sends its own name as Host.
        assert web.get("/", headers={"Host": "attacker.example"}).status_code == 421
        form = {"message_id": "x", "csrf": access.csrf}
        evil = {"Origin": "http://evil.example"}
        assert web.post("/replay", data=form, headers=evil).status_code == 403
        own = {"Referer": f"{web.base_url}"}
        assert web.post("/replay", data=form, headers=own).status_code == 303
