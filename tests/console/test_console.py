"""The web console in a real headless Chromium, against the gateway on loopback over the fake engine.

Each test does what a user does (clicks, types, drops files) and checks what the user then sees,
and where it matters what the server got.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.chromium import PHONE
from tests.console.conftest import needs_chromium
from tests.fakes.fake_engine import write_adapter

pytestmark = needs_chromium
GUIDE = (
    "# Serving\n\nThe gateway listens on port 8000 and swaps adapters per request.\n\n"
    "# Training\n\nA LoRA adapter learns a new identity in twenty steps of supervised fine-tuning.\n"
)
NOTES = "Knowledge bases split documents into chunks and search them with dense vectors and BM25.\n"


def make_kb(url: str, name: str = "docs", files: dict[str, str] | None = None) -> None:
    """A knowledge base with ``files`` (default: guide.md), made through the API."""
    files = files or {"guide.md": GUIDE}
    with httpx.Client(base_url=url, timeout=30) as http:
        http.post("/v1/knowledge_bases", json={"name": name}).raise_for_status()
        upload = [("files", (filename, text.encode())) for filename, text in files.items()]
        http.post(f"/v1/knowledge_bases/{name}/documents", files=upload).raise_for_status()


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_files_dropped_on_a_knowledge_base_upload_with_progress_and_are_listed(demo, open_console):
    page = open_console(demo.url, hash="#kb")
    page.locator("#kb-name").fill("docs")
    page.locator("#kb-create").get_by_role("button", name="Create").click()
    expect(page.locator("#kb-detail h2")).to_have_text("docs")

    dropped = [["guide.md", GUIDE], ["notes.txt", NOTES], ["tool.exe", "MZ binary"]]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of files) transfer.items.add(new File([text], name));
            return transfer;
        }""",
        dropped,
    )
    page.locator("#kb-drop").dispatch_event("drop", {"dataTransfer": transfer})

    uploads = page.locator("#kb-uploads li")
    expect(uploads).to_have_count(3)
    for name in ("guide.md", "notes.txt"):
        row = uploads.filter(has_text=name)
        expect(row.locator(".state")).to_contain_text("added: ")
        expect(row.locator("progress")).to_have_js_property("value", 1)
    refused = uploads.filter(has_text="tool.exe").locator(".state")
    expect(refused).to_have_class(re.compile(r"\berror\b"))
    expect(refused).to_contain_text(".exe")
    rows = page.locator("#kb-docs tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#kb-docs")).to_contain_text("guide.md")
    expect(page.locator("#kb-docs")).to_contain_text("notes.txt")
    expect(page.locator("#kb-list")).to_contain_text("2 documents")
    listed = httpx.get(f"{demo.url}/v1/knowledge_bases/docs/documents").json()["data"]
    assert sorted(doc["filename"] for doc in listed) == ["guide.md", "notes.txt"]

    page.locator("#kb-query").fill("which port does the gateway listen on")
    page.get_by_role("button", name="Search").click()
    best = page.locator("#kb-hits li").first
    expect(best).to_contain_text("guide.md")
    expect(best).to_contain_text("port 8000")
    expect(best.locator(".score")).to_have_text(re.compile(r"score \d"))

    page.get_by_role("button", name="Delete notes.txt").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#kb-docs")).not_to_contain_text("notes.txt")


def test_uploading_an_unchanged_file_again_says_so_and_adds_nothing(demo, open_console):
    make_kb(demo.url)
    page = open_console(demo.url, hash="#kb")
    rows = page.locator("#kb-docs tbody tr")
    expect(rows).to_have_count(1)
    chunks = httpx.get(f"{demo.url}/v1/knowledge_bases/docs").json()["chunks"]

    files = page.locator("#kb-files")
    files.set_input_files({"name": "guide.md", "mimeType": "text/markdown", "buffer": GUIDE.encode()})
    uploads = page.locator("#kb-uploads li")
    expect(uploads.nth(0).locator(".state")).to_have_text("unchanged (already in the knowledge base)")
    files.set_input_files({"name": "copy-of-guide.md", "mimeType": "text/markdown", "buffer": GUIDE.encode()})
    expect(uploads.nth(1).locator(".state")).to_have_text("unchanged (already in the knowledge base as guide.md)")
    files.set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": NOTES.encode()})
    expect(uploads.nth(2).locator(".state")).to_have_text(re.compile(r"^added: \d+ chunks$"))
    for row in range(3):
        expect(uploads.nth(row).locator(".state")).not_to_have_class(re.compile(r"\berror\b"))

    expect(rows).to_have_count(2)
    expect(page.locator("#kb-list")).to_contain_text("2 documents")
    listed = httpx.get(f"{demo.url}/v1/knowledge_bases/docs/documents").json()["data"]
    assert sorted(doc["filename"] for doc in listed) == ["guide.md", "notes.txt"]
    assert httpx.get(f"{demo.url}/v1/knowledge_bases/docs").json()["chunks"] > chunks


def test_a_chat_with_a_knowledge_base_streams_and_shows_its_citations(demo, open_console):
    make_kb(demo.url)
    page = open_console(demo.url)
    page.locator("#pg-model").select_option("fake-base@docs")
    expect(page.locator("#pg-kb")).to_have_value("docs")
    expect(page.locator("#pg-effective")).to_have_text("fake-base@docs")
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-busy", "false")
    demo.engine.gate.clear()  # hold the answer: the log is busy while it streams, so it is announced once
    page.locator("#pg-input").fill("Which port does the gateway listen on?")
    page.locator("#pg-input").press("Enter")

    answer = page.locator("#pg-log .msg.assistant").last
    expect(answer).to_have_class(re.compile(r"\bstreaming\b"))
    expect(log).to_have_attribute("aria-busy", "true")
    demo.engine.gate.set()
    expect(log).to_have_attribute("aria-busy", "false")
    expect(answer).not_to_have_class(re.compile(r"\bstreaming\b"))
    citation = answer.locator(".citations li").first
    expect(citation).to_contain_text("[1] guide.md")
    expect(citation.locator("blockquote")).to_contain_text("port 8000")
    expect(answer.locator(".stats")).to_contain_text("ms to first token")
    expect(answer.locator(".stats")).to_contain_text("tokens/s")
    expect(answer.locator(".text")).to_contain_text("fake-base says")
    assert "port 8000" in demo.engine.calls[-1][0][0].content  # the sources went into the prompt (system turn)

    # an adapter with the knowledge base: a combination /v1/models does not list
    page.locator("#pg-model").select_option("alpha")
    page.locator("#pg-kb").select_option("docs")
    expect(page.locator("#pg-effective")).to_have_text("alpha@docs")
    page.locator("#pg-input").fill("And how many training steps?")
    page.get_by_role("button", name="Send").click()
    second = page.locator("#pg-log .msg.assistant").nth(1)
    expect(second.locator(".text")).to_contain_text("alpha says")
    expect(second.locator(".citations li").first).to_contain_text("guide.md")
    messages, _, adapter = demo.engine.calls[-1]
    assert adapter == "alpha"
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]  # sources, then the conversation


def test_side_by_side_sends_one_prompt_to_every_arm_at_once(demo, open_console):
    make_kb(demo.url)
    page = open_console(demo.url, hash="#side")
    arms = page.locator("#sb-arms")
    expect(arms.get_by_label("fake-base", exact=True)).to_be_checked()
    expect(arms.get_by_label("alpha", exact=True)).to_be_checked()
    arms.get_by_label("beta", exact=True).check()
    arms.get_by_label("fake-base@docs", exact=True).check()
    demo.engine.gate.clear()  # hold every answer before its first word
    prompt = "which port does the gateway listen on"
    page.locator("#sb-prompt").fill(prompt)
    page.get_by_role("button", name="Send to all").click()

    wait_until(lambda: len(demo.engine.calls) == 4)  # all four asked before any answered
    answers = page.get_by_role("region", name="Answers, one column per arm")
    expect(answers).to_have_attribute("aria-busy", "true")  # announced once, when every arm is done
    expect(answers.locator(".msg.streaming")).to_have_count(4)
    demo.engine.gate.set()
    columns = answers.locator(".column")
    expect(columns).to_have_count(4)
    for i, arm in enumerate(["fake-base", "alpha", "beta"]):
        expect(columns.nth(i).locator("h3")).to_have_text(arm)
        expect(columns.nth(i).locator(".text")).to_have_text(f"{arm} says {prompt}")
        expect(columns.nth(i).locator(".stats")).to_contain_text("9 tokens")
        expect(columns.nth(i).locator(".sources")).to_have_count(0)
    with_kb = columns.nth(3)
    expect(with_kb.locator("h3")).to_have_text("fake-base@docs")
    expect(with_kb.locator(".text")).to_contain_text("fake-base says")
    citation = with_kb.locator(".citations li").first
    expect(citation).to_contain_text("[1] guide.md")
    expect(citation.locator("blockquote")).to_contain_text("port 8000")
    expect(with_kb.locator(".stats")).to_contain_text("tokens/s")
    expect(page.locator("#sb-status")).to_have_text("Every arm answered.")
    expect(answers).to_have_attribute("aria-busy", "false")


def test_adapters_page_shows_manifests_and_loss_curves_and_loads_and_unloads(demo, open_console, tmp_path):
    page = open_console(demo.url, hash="#adapters")
    cards = page.locator("#ad-list article")
    expect(cards).to_have_count(2)
    alpha = cards.filter(has=page.get_by_role("heading", name="alpha", exact=True))
    for fact in ("fake-base", "sft", "LORA r=4", "q_proj", "train_loss", "folder"):
        expect(alpha).to_contain_text(fact)
    data = alpha.locator("dt:text-is('Data') + dd")
    expect(data).to_have_text("train.jsonl · 60 train / 12 eval / 54 replay rows · openai")  # lorag.json's dataset
    learned = alpha.get_by_role("table", name="What it learned and kept")
    expect(learned.locator("tr", has_text="Taught")).to_contain_text("100% of 12 held-out phrasings")
    expect(learned.locator("tr", has_text="Taught")).to_contain_text("“lorag assistant”")
    expect(learned.locator("tr", has_text="Kept")).to_contain_text("token F1 0.81")
    expect(learned.locator("tr", has_text="Kept")).to_contain_text("50% identical")
    expect(learned.locator("tr", has_text="Leaks")).to_contain_text("0% of those general answers")
    curve = alpha.get_by_role("img", name="Training loss of alpha by step")
    expect(curve).to_have_js_property("complete", True)
    assert curve.evaluate("img => img.naturalWidth") > 100
    beta = cards.filter(has=page.get_by_role("heading", name="beta", exact=True))
    expect(beta).to_contain_text("No loss curve saved.")
    expect(beta.locator("dt:text-is('Data') + dd")).to_have_text("–")  # no dataset recorded
    expect(beta.get_by_role("table", name="What it learned and kept")).to_have_count(0)

    folder = write_adapter(tmp_path / "elsewhere" / "gamma")
    page.locator("#ad-name").fill("gamma")
    page.locator("#ad-path").fill(str(folder))
    page.get_by_role("button", name="Load").click()
    expect(cards).to_have_count(3)
    gamma = cards.filter(has=page.get_by_role("heading", name="gamma", exact=True))
    expect(gamma).to_contain_text("registered")
    assert "gamma" in demo.engine.adapters()
    gamma.get_by_role("button", name="Unload").click()
    expect(cards).to_have_count(2)
    expect(page.locator("#ad-status")).to_have_text("Unloaded gamma.")
    assert "gamma" not in demo.engine.adapters()


def test_the_api_key_lives_in_the_session_and_a_wrong_key_shows_the_servers_error(make_demo, open_console):
    demo = make_demo(api_keys=["user-key"], admin_keys=["admin-key"])
    page = open_console(demo.url)
    notice = page.locator("#notice")
    expect(notice).to_contain_text("missing API key")

    page.locator("#api-key").fill("wrong-key")
    page.get_by_role("button", name="Use key").click()
    expect(notice).to_contain_text("incorrect API key provided")

    page.locator("#api-key").fill("user-key")
    page.get_by_role("button", name="Use key").click()
    expect(notice).to_be_hidden()
    expect(page.locator("#pg-model option")).to_have_count(3)
    assert page.evaluate("sessionStorage.getItem('lorag.apiKey')") == "user-key"
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""

    page.get_by_role("tab", name="Adapters").click()
    expect(notice).to_contain_text("may not administer")  # a user key is not an admin key

    page.reload()  # same tab: the key is still there
    expect(page.locator("#api-key")).to_have_value("user-key")
    other_tab = open_console(demo.url)  # another session: no key
    expect(other_tab.locator("#notice")).to_contain_text("missing API key")


TABS = ["Playground", "Side by side", "Knowledge bases", "Adapters", "Compare"]


def assert_every_tab_in_view(page, selected: str) -> None:
    """Every tab lies wholly on the screen, none scrolled away, and ``selected`` is the selected one."""
    for name in TABS:
        tab = page.get_by_role("tab", name=name)
        expect(tab).to_be_in_viewport(ratio=1)
        box = tab.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"tab {name} is off the screen: {box}"
        expect(tab).to_have_attribute("aria-selected", str(name == selected).lower())
    tabs = page.get_by_role("tablist", name="Console pages")
    assert tabs.evaluate("list => list.scrollWidth <= list.clientWidth && list.parentElement.scrollLeft === 0")


def test_every_page_fits_a_phone_screen_without_horizontal_scroll(demo, open_console):
    make_kb(demo.url, files={"guide.md": GUIDE, "a-rather-long-file-name-for-a-small-screen.txt": NOTES})
    page = open_console(demo.url, viewport=PHONE)
    assert_every_tab_in_view(page, "Playground")
    page.locator("#pg-model").select_option("fake-base@docs")
    page.locator("#pg-input").fill("Which port does the gateway listen on?")
    page.locator("#pg-input").press("Enter")
    expect(page.locator("#pg-log .citations li").first).to_be_visible()
    expect(page.locator("#pg-status")).to_have_text("Answer complete.")
    for tab, ready in [
        ("Playground", "#pg-log .stats"),
        ("Side by side", "#sb-arms input"),
        ("Knowledge bases", "#kb-docs tbody tr"),
        ("Adapters", "#ad-list article img"),
        ("Compare", "#cmp-arms input"),
    ]:
        page.get_by_role("tab", name=tab).click()
        expect(page.locator(ready).first).to_be_visible()
        assert_every_tab_in_view(page, tab)
        if tab == "Side by side":
            page.locator("#sb-prompt").fill("hello")
            page.get_by_role("button", name="Send to all").click()
            expect(page.locator("#sb-columns .stats")).to_have_count(2)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{tab}: the page is {width} px wide on a {PHONE['width']} px screen"


def test_a_page_opened_by_its_link_on_a_phone_shows_its_tab_selected_and_in_view(demo, open_console):
    page = open_console(demo.url, viewport=PHONE, hash="#compare")
    expect(page.locator("#compare")).to_be_visible()
    assert_every_tab_in_view(page, "Compare")
    page.get_by_role("tab", name="Compare").focus()
    page.keyboard.press("ArrowLeft")  # the keyboard moves along the rows too
    expect(page.get_by_role("tab", name="Adapters")).to_be_focused()
    assert_every_tab_in_view(page, "Adapters")


def questions_file(tmp_path):
    questions = tmp_path / "questions.jsonl"
    rows = [{"question": "hello", "answer": "fake-base says hello"}, {"question": "bye", "answer": "alpha says bye"}]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return questions


def start_compare(page, questions) -> None:
    page.locator("#cmp-file").set_input_files(questions)
    page.locator("#cmp-arms").get_by_label("beta", exact=True).uncheck()
    page.get_by_role("button", name="Start").click()


def test_compare_runs_an_uploaded_questions_file_and_shows_progress_summary_and_report(demo, open_console, tmp_path):
    page = open_console(demo.url, hash="#compare")
    demo.engine.gate.clear()  # hold every answer: the run stays running
    start_compare(page, questions_file(tmp_path))

    run = page.locator("#cmp-run")
    expect(run.locator("label")).to_have_text("running: 0 of 4 answers")
    expect(run.get_by_role("progressbar")).to_have_js_property("value", 0)
    expect(run.get_by_role("progressbar")).to_have_js_property("max", 4)
    expect(run).to_have_attribute("aria-busy", "true")
    expect(page.locator("#cmp-runs li")).to_have_count(1)
    expect(page.locator("#cmp-runs li")).to_contain_text("running · 2 arms")
    expect(page.locator("#cmp-summary")).to_have_count(0)
    page.wait_for_timeout(1500)  # a poll or more later: still running, still shown as such
    expect(run.locator("label")).to_have_text("running: 0 of 4 answers")
    demo.engine.gate.set()

    expect(run.locator("label")).to_have_text("completed: 4 of 4 answers")
    expect(run.get_by_role("progressbar")).to_have_js_property("value", 4)
    expect(run).to_have_attribute("aria-busy", "false")
    summary = page.locator("#cmp-summary tbody tr")
    expect(summary).to_have_count(2)
    expect(summary.nth(0).locator("th")).to_have_text("fake-base")
    expect(summary.nth(0).locator("td").first).to_have_text(re.compile(r"^0\.500 "))  # exact match on 1 of 2
    expect(summary.nth(1).locator("th")).to_have_text("alpha")
    headers = page.locator("#cmp-summary thead th")
    expect(headers).to_contain_text(["prompt tokens", "completion tokens"])
    report = page.frame_locator("iframe.report").locator("body")
    expect(report).to_contain_text("alpha says bye")
    expect(page.get_by_role("link", name="Open report.html")).to_be_visible()
    expect(page.locator("#cmp-runs li")).to_have_count(1)
    expect(page.locator("#cmp-runs li")).to_contain_text("completed · 2 arms")
    expect(page.locator("#notice")).to_be_hidden()


def test_a_running_compare_can_be_cancelled(demo, open_console, tmp_path):
    page = open_console(demo.url, hash="#compare")
    demo.engine.gate.clear()  # hold every answer: the run stays running until cancelled
    start_compare(page, questions_file(tmp_path))
    run = page.locator("#cmp-run")
    expect(run.locator("label")).to_have_text("running: 0 of 4 answers")
    run.get_by_role("button", name="Cancel run").click()

    expect(run.locator("label")).to_have_text("cancelled: 0 of 4 answers")
    expect(run.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(run).to_have_attribute("aria-busy", "false")
    expect(page.locator("#cmp-summary")).to_have_count(0)
    expect(page.locator("#cmp-runs li")).to_contain_text("cancelled · 2 arms")
    expect(page.locator("#notice")).to_be_hidden()
    demo.engine.gate.set()


def test_compare_shows_a_report_that_cannot_be_fetched_as_an_error(demo, open_console, tmp_path):
    page = open_console(demo.url, hash="#compare")
    failure = {"error": {"message": "the reports disk is unreadable", "type": "server_error", "code": None}}
    page.route(re.compile(r"/v1/compare/[^/]+/report\.html$"), lambda route: route.fulfill(status=500, json=failure))
    start_compare(page, questions_file(tmp_path))

    run = page.locator("#cmp-run")
    expect(run.locator("label")).to_have_text("completed: 4 of 4 answers")  # not left at "running"
    expect(page.locator("#cmp-summary tbody tr")).to_have_count(2)
    expect(run.locator(".status.error")).to_have_text("The report could not be loaded: the reports disk is unreadable")
    expect(page.get_by_role("alert")).to_contain_text("the reports disk is unreadable")
    expect(run.locator("iframe.report")).to_have_count(0)
    expect(run).to_have_attribute("aria-busy", "false")


def test_compare_says_when_a_running_run_can_no_longer_be_fetched(demo, open_console, tmp_path):
    page = open_console(demo.url, hash="#compare")
    demo.engine.gate.clear()
    start_compare(page, questions_file(tmp_path))
    run = page.locator("#cmp-run")
    expect(run.locator("label")).to_have_text("running: 0 of 4 answers")
    failure = {"error": {"message": "gateway restarting", "type": "server_error", "code": None}}
    page.route(re.compile(r"/v1/compare/cmp-[^/]+$"), lambda route: route.fulfill(status=503, json=failure))
    expect(page.locator("#notice")).to_contain_text("gateway restarting")
    expect(run.locator(".status.error")).to_contain_text("could not be updated (gateway restarting)")
    expect(run).to_have_attribute("aria-busy", "false")
    demo.engine.gate.set()


@pytest.mark.parametrize("hash", ["#playground", "#side", "#kb", "#adapters", "#compare"])
def test_every_control_has_a_label(demo, open_console, hash):
    make_kb(demo.url)
    page = open_console(demo.url, hash=hash)
    expect(page.locator(f"{hash} input, {hash} select").first).to_be_attached()
    page.wait_for_load_state("networkidle")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("header input, main section:not([hidden]) :is(input, select, textarea)")]
            .filter((c) => !c.labels?.length && !c.getAttribute("aria-label"))
            .map((c) => c.id || c.outerHTML)"""
    )
    assert unlabelled == []


def test_tabs_follow_the_arrow_keys(demo, open_console):
    page = open_console(demo.url)
    page.get_by_role("tab", name="Playground").focus()
    page.keyboard.press("ArrowRight")
    side = page.get_by_role("tab", name="Side by side")
    expect(side).to_be_focused()
    expect(side).to_have_attribute("aria-selected", "true")
    expect(page.locator("#side")).to_be_visible()
    expect(page.locator("#playground")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator("#compare")).to_be_visible()
    assert page.url.endswith("#compare")
    page.keyboard.press("ArrowRight")  # wraps around
    expect(page.locator("#playground")).to_be_visible()
