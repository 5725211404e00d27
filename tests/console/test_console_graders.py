"""The Train page's Reinforcement method in a real headless Chromium: the grader editor and its "Try it".

"Try it" runs the grader in the editor on one answer and row through ``/v1/fine_tuning/alpha/graders/run``
and says the reward, or why the grader cannot run. No training: the console's demo gateway answers.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.console.conftest import needs_chromium

pytestmark = needs_chromium


def test_reinforcement_shows_a_grader_editor_whose_try_it_grades_one_answer(demo, open_console):
    page = open_console(demo.url, hash="#train")
    expect(page.locator("#tr-grader-field")).to_be_hidden()
    page.locator("#tr-method").select_option("grpo")
    expect(page.locator("#tr-grader-field")).to_be_visible()
    expect(page.locator("#tr-beta-field")).to_be_hidden()
    page.locator("#tr-try").click()
    expect(page.locator("#tr-try-result")).to_have_text("Reward 1")
    page.locator("#tr-try-sample").fill("Lyon")
    page.locator("#tr-try").click()
    expect(page.locator("#tr-try-result")).to_have_text("Reward 0")
    page.locator("#tr-grader").fill('{"type": "string_check", "name": "x", "input": "a", "reference": "b", '
                                    '"operation": "same"}')  # fmt: skip
    page.locator("#tr-try").click()
    expect(page.locator("#tr-try-result")).to_contain_text("grader.operation")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("#train :is(input, select, textarea)")]
            .filter((c) => !c.labels?.length && !c.getAttribute("aria-label")).map((c) => c.id || c.outerHTML)"""
    )
    assert unlabelled == []
