"""The Train page's Reinforcement method in a real headless Chromium: the grader editor and its "Try it".

"Try it" runs the grader in the editor on one answer and row through ``/v1/fine_tuning/alpha/graders/run``
and says the reward, or why the grader cannot run. The optional response format goes into the job as
``method.reinforcement.response_format``. No training: the console's demo gateway answers, and the one
job that would start is stopped in the browser.
"""

from __future__ import annotations

import json

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


CITY = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip


def test_a_reinforcement_jobs_response_format_is_sent_with_its_grader_and_a_bad_one_is_refused(demo, open_console):
    page = open_console(demo.url, hash="#train")
    prompt = {"messages": [{"role": "user", "content": "The capital of France?"}], "answer": "Paris"}
    page.locator("#tr-file").set_input_files(
        {"name": "cities.jsonl", "mimeType": "application/jsonl", "buffer": (json.dumps(prompt) + "\n").encode()}
    )
    expect(page.locator("#tr-training option:checked")).to_contain_text("cities.jsonl", timeout=30_000)
    page.locator("#tr-method").select_option("grpo")
    start = page.get_by_role("button", name="Start job")

    page.locator("#tr-format").fill('{"type": "json_schema",')
    start.click()
    expect(page.locator("#tr-status")).to_contain_text("The response format is not JSON")

    page.locator("#tr-format").fill(json.dumps({"type": "json_object"}))
    start.click()  # the gateway's own check, OpenAI's error message
    expect(page.locator("#tr-status")).to_contain_text("response_format must be {'type': 'json_schema'")

    sent = []

    def stop(route):
        if route.request.method != "POST":
            return route.continue_()
        sent.append(route.request.post_data_json)
        route.fulfill(status=400, json={"error": {"message": "stopped by the test", "type": "invalid_request_error",
                                                  "param": None, "code": None}})  # fmt: skip

    page.route("**/v1/fine_tuning/jobs", stop)
    page.locator("#tr-format").fill(json.dumps(CITY))
    start.click()
    expect(page.locator("#tr-status")).to_contain_text("stopped by the test")
    reinforcement = sent[0]["method"]["reinforcement"]
    assert reinforcement["response_format"] == CITY
    assert reinforcement["grader"]["operation"] == "eq"

    page.locator("#tr-format").fill("")
    start.click()
    expect(page.locator("#tr-status")).to_contain_text("stopped by the test")
    assert "response_format" not in sent[-1]["method"]["reinforcement"]
