"""The Import Tool page in headless Chromium: the three tabs show the right counts and switch,
and the Import button commits the batch's resolvable gifts (then Match Needed is resolved from
the page too).

Needs Debian's ``chromium`` and ``chromium-driver``. When they are missing and the test runs as
root, it installs them once with apt-get; only if that fails is it skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import RunningSandbox, start_sandbox
from tests.deploy.system_tools import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, require_chromium
from tests.sandbox_fixtures import TOKEN_A, gift_transaction, seed_contacts, small_config

# Installing the browser on first use may take minutes: more than the suite's default timeout.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]


@pytest.fixture(scope="session")
def chromium() -> None:
    """Chromium and chromedriver, installed once if missing; otherwise a skip with the reason."""
    require_chromium()


@pytest.fixture
def driver(chromium: None) -> Iterator[Any]:
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


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(small_config()) as sb:
        yield sb


def _batch(sb: RunningSandbox) -> dict[str, Any]:
    with httpx.Client(base_url=sb.url) as admin:
        return _send_batch(sb, admin)


def _send_batch(sb: RunningSandbox, admin: httpx.Client) -> dict[str, Any]:
    (_ada, grace) = seed_contacts(
        admin,
        "alpha",
        {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "referenceSource": "WeGive",
            "referenceId": "d1",
        },
        {"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.org"},
    )
    entries = [
        gift_transaction("r1", contact={"referenceId": "d1"}),
        gift_transaction("r2", contact={"id": grace}),
        gift_transaction("u1", contact={"email": "grace@example.org", "phone": "555-777-1234"}),
        gift_transaction(
            "m1", contact={"firstName": "Mary", "lastName": "Jackson", "email": "mary@example.org"}
        ),
    ]
    r = httpx.post(
        f"{sb.url}/api/v2/Gift/Transactions",
        headers={"Authorization": f"Bearer {TOKEN_A}"},
        json={
            "transactionSource": "WeGive",
            "createImport": True,
            "importName": "Giving Day batch",
            "transactions": entries,
        },
    )
    assert r.status_code == 200, r.text
    batch: dict[str, Any] = admin.get("/_admin/imports").json()["alpha"][0]
    return batch


def _count(driver: Any, batch_id: int, tab: str) -> int:
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.ID, f"count-{batch_id}-{tab}").text)


def _gift_refs(sb: RunningSandbox) -> set[str]:
    with sb.state.lock:
        return {g["transactionId"] for g in sb.state.org("alpha").gifts.values()}


def test_tabs_show_counts_and_import_commits_the_batch(
    sandbox: RunningSandbox, driver: Any
) -> None:
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # The import form reloads the page: an element read while it reloads is stale, not missing.
    reloading = (NoSuchElementException, StaleElementReferenceException)

    batch = _batch(sandbox)
    bid = batch["id"]
    driver.get(sandbox.url + "/")
    assert "Import Tool" in driver.title
    assert "Giving Day batch" in driver.find_element(By.ID, f"batch-{bid}").text
    counts = {tab: _count(driver, bid, tab) for tab in ("ready", "update", "match", "imported")}
    assert counts == {"ready": 2, "update": 1, "match": 1, "imported": 0}

    # Tabs switch panels: only the clicked tab's rows are visible.
    ready_panel = driver.find_element(By.ID, f"panel-{bid}-ready")
    match_panel = driver.find_element(By.ID, f"panel-{bid}-match")
    assert ready_panel.is_displayed() and not match_panel.is_displayed()
    driver.find_element(By.ID, f"tab-{bid}-match").click()
    assert match_panel.is_displayed() and not ready_panel.is_displayed()
    assert "WeGive/m1" in match_panel.text
    assert "no existing contact matches" in match_panel.text
    driver.find_element(By.ID, f"tab-{bid}-update").click()
    update_panel = driver.find_element(By.ID, f"panel-{bid}-update")
    assert "new phone 555-777-1234" in update_panel.text

    # Import commits Ready for Import and Update Needed; Match Needed stays.
    assert _gift_refs(sandbox) == set()
    button = driver.find_element(By.ID, f"import-{bid}")
    assert button.text == "Import 3 gifts"
    button.click()
    WebDriverWait(driver, 10).until(ec.staleness_of(button))
    WebDriverWait(driver, 10, ignored_exceptions=reloading).until(
        lambda d: d.find_element(By.ID, f"count-{bid}-imported").text == "3"
    )
    assert _gift_refs(sandbox) == {"r1", "r2", "u1"}
    assert _count(driver, bid, "match") == 1
    assert driver.find_element(By.ID, f"status-{bid}").text == "Partially Imported"

    # A person creates the contact for the Match Needed gift, then imports it.
    driver.find_element(By.ID, f"tab-{bid}-match").click()
    create = driver.find_element(By.ID, f"create-{bid}-3")
    create.click()
    WebDriverWait(driver, 10).until(ec.staleness_of(create))
    assert _count(driver, bid, "ready") == 1
    driver.find_element(By.ID, f"import-{bid}").click()
    WebDriverWait(driver, 10, ignored_exceptions=reloading).until(
        lambda d: d.find_element(By.ID, f"count-{bid}-imported").text == "4"
    )
    assert _gift_refs(sandbox) == {"r1", "r2", "u1", "m1"}
    assert driver.find_element(By.ID, f"status-{bid}").text == "Imported"
