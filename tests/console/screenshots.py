"""Screenshots of every console page for docs/console/: ``python -m tests.console.screenshots``.

Drives the Debian chromium (headless, through Playwright) the way a user would: creates the
knowledge base ``handbook`` from the project's docs by uploading them, searches it, chats with
``<base>@handbook``, sends one prompt to the base model and the first adapter side by side, opens
the adapters, runs a comparison on the identity questions of the demo adapter, and last (so that
its adapter is in no other picture) trains the base model on the demo's identity data for two
epochs on the Train page. Then the same chat on a phone-sized screen. ``--only train`` shoots
the Train page alone and leaves the other pictures as they are. Desktop pages are 1366 x 768
(the Playground 1366 x 1080, so that its answer, sources and statistics fit the conversation
box); the phone is 390 x 844.

Without ``--url`` it serves the test demo (fake engine, hashing embedder) in process; with
``--url`` it works on a running gateway, e.g. ``LORAG_ENGINE=local lorag serve`` with the
trained demo adapter (what docs/console/ shows). Not a test: it asserts nothing beyond waiting
for each page to finish.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.console.chromium import DESKTOP, PHONE, launch

REPO = Path(__file__).resolve().parents[2]
KB = "handbook"
DOCS = ["api.md", "serving.md", "rag.md", "training.md"]
QUESTIONS = REPO / "tuner" / "data" / "lorag-identity" / "eval.jsonl"
TRAINING = REPO / "tuner" / "data" / "lorag-identity" / "train.jsonl"
CHAT = "How do I require an API key for the gateway?"
SIDE = "Who are you?"
WAIT_MS = 300_000  # a real model on a small CPU takes its time
PLAYGROUND = {"width": DESKTOP["width"], "height": 1080}


def questions_file(folder: Path, count: int) -> Path:
    """The first ``count`` demo identity questions as compare JSONL."""
    rows = [json.loads(line)["messages"] for line in QUESTIONS.read_text().splitlines()[:count]]
    path = folder / "identity-questions.jsonl"
    path.write_text("".join(json.dumps({"question": m[0]["content"], "answer": m[1]["content"]}) + "\n" for m in rows))
    return path


def models(url: str, key: str | None) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return [m["id"] for m in httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["data"]]


def shoot(page, out: Path, name: str, full_page: bool = True) -> None:
    page.wait_for_timeout(300)  # let the last paint settle
    page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
    print(f"wrote {out / name}.png")


def desktop(context, url: str, out: Path, arms: list[str], work: Path) -> None:
    base = arms[0]
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{url}/#kb")
    if page.locator("#kb-list button", has_text=KB).count() == 0:
        page.locator("#kb-name").fill(KB)
        page.locator("#kb-create").get_by_role("button", name="Create").click()
    else:
        page.locator("#kb-list button", has_text=KB).click()
    page.locator("#kb-files").set_input_files([REPO / "docs" / name for name in DOCS])
    page.locator("#kb-uploads li .state", has_text=re.compile("^(added|unchanged)")).nth(len(DOCS) - 1).wait_for()
    page.locator("#kb-query").fill("API key")
    page.get_by_role("button", name="Search").click()
    page.locator("#kb-hits li").first.wait_for()
    shoot(page, out, "knowledge-bases")

    # A full-HD-tall window, where the conversation box holds the question, the answer, its sources
    # and its stats line; scrolled to its end should they not all fit.
    page.set_viewport_size(PLAYGROUND)
    page.get_by_role("tab", name="Playground").click()
    page.locator("#pg-model").select_option(f"{base}@{KB}")
    page.locator("#pg-max").fill("48")
    page.locator("#pg-input").fill(CHAT)
    page.locator("#pg-input").press("Enter")
    page.locator("#pg-log .stats").wait_for()
    page.locator("#pg-log").evaluate("log => (log.scrollTop = log.scrollHeight)")
    shoot(page, out, "playground")
    page.set_viewport_size(DESKTOP)

    page.get_by_role("tab", name="Side by side").click()
    page.locator("#sb-max").fill("40")
    page.locator("#sb-prompt").fill(SIDE)
    page.get_by_role("button", name="Send to all").click()
    page.locator("#sb-columns .stats").nth(1).wait_for()
    shoot(page, out, "side-by-side")

    page.get_by_role("tab", name="Adapters").click()
    page.locator("#ad-list article").first.wait_for()
    page.wait_for_function("[...document.querySelectorAll('#ad-list img')].every((img) => img.complete)")
    shoot(page, out, "adapters")

    page.get_by_role("tab", name="Compare").click()
    page.locator("#cmp-file").set_input_files(questions_file(work, 4))
    page.locator("#cmp-arms input[type=checkbox]").first.wait_for()  # the arms, once the page has listed them
    for box in page.locator("#cmp-arms input[type=checkbox]").all():
        box.set_checked(box.get_attribute("value") in arms[:2])
    page.locator("#cmp-max").fill("24")
    page.get_by_role("button", name="Start").click()
    page.frame_locator("iframe.report").locator("table").first.wait_for()
    page.locator("iframe.report").scroll_into_view_if_needed()  # Chromium paints no off-screen sandboxed frame
    shoot(page, out, "compare")
    train(page, out)


def train(page, out: Path) -> None:
    """Upload the identity training data, train on it for two epochs and shoot the job once it has ended."""
    page.get_by_role("tab", name="Train").click()
    page.locator("#tr-file").set_input_files(TRAINING)
    page.locator("#tr-upload", has_text=re.compile(r"^train\.jsonl: \d+ rows")).wait_for()
    page.locator("#tr-epochs").fill("2")
    page.locator("#tr-suffix").fill("identity")
    page.get_by_role("button", name="Start job").click()
    page.locator("#tr-state", has_text=re.compile("^(succeeded|failed|cancelled)$")).wait_for()
    shoot(page, out, "train")


def train_alone(context, url: str, out: Path) -> None:
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    train(page, out)


def phone(context, url: str, out: Path, base: str) -> None:
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.locator("#pg-model").select_option(f"{base}@{KB}")
    page.locator("#pg-max").fill("48")
    page.locator("#pg-input").fill(CHAT)
    page.locator("#pg-input").press("Enter")
    page.locator("#pg-log .stats").wait_for()
    page.evaluate("window.scrollTo(0, 0)")  # the header and both rows of tabs, then the chat
    shoot(page, out, "phone-playground", full_page=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running gateway (default: serve the test demo in process)")
    parser.add_argument("--key", help="an admin API key for --url, if it needs one")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "console")
    parser.add_argument("--only", choices=["train"], help="shoot this page alone (it trains an adapter)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, sync_playwright() as playwright:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = args.url
        if url is None:
            from tests.console.demo import demo_gateway

            url = stack.enter_context(demo_gateway(work / "demo", word_delay_s=0.02)).url
        arms = models(url, args.key)
        browser = launch(playwright)
        pages = ((DESKTOP, train_alone),) if args.only == "train" else ((DESKTOP, desktop), (PHONE, phone))
        for viewport, shots in pages:
            context = browser.new_context(viewport=viewport, device_scale_factor=1)
            if args.key:
                context.add_init_script(f"sessionStorage.setItem('lorag.apiKey', {json.dumps(args.key)})")
            if shots is desktop:
                desktop(context, url, args.out, arms, work)
            elif shots is phone:
                phone(context, url, args.out, arms[0])
            else:
                shots(context, url, args.out)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
