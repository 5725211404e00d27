"""Browser fixtures: the Debian chromium driven headless by Playwright, and the console's demo gateway.

Tests marked ``needs_chromium`` are skipped, with the reason, where /usr/bin/chromium is absent
(CI installs it, so they run there). Every page records uncaught JavaScript errors, and a test
fails if its page raised one.
"""

from __future__ import annotations

from contextlib import ExitStack
from itertools import count

import pytest

from tests.console.chromium import CHROMIUM, DESKTOP, launch
from tests.console.demo import Demo, demo_gateway

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs the Debian chromium package at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module.

    Not per session: Playwright's sync API keeps an asyncio loop running in the main thread until it
    stops, and later tests that run their own loop (``asyncio.run``, the vLLM fixture) would fail.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def make_demo(tmp_path):
    """``make_demo(**settings)``: the demo gateway (words streamed 10 ms apart), served until the test ends."""
    with ExitStack() as stack:
        made = count()

        def make(**settings) -> Demo:
            root = tmp_path / f"demo{next(made)}"
            return stack.enter_context(demo_gateway(root, word_delay_s=0.01, **settings))

        yield make


@pytest.fixture
def demo(make_demo) -> Demo:
    return make_demo()


@pytest.fixture
def open_console(browser):
    """``open_console(url, viewport=DESKTOP)``: a fresh browser context on the console at ``url``."""
    contexts, errors = [], []

    def open_(url: str, viewport: dict = DESKTOP, hash: str = ""):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(f"{url}/{hash}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
