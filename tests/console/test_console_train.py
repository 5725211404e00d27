"""The console's Train page in a real headless Chromium, from an uploaded file to a served fine-tuned model.

The gateway serves a FakeEngine named after the tiny random model of the test session, and jobs
train that model for real: ``python -m tuner train`` in a subprocess on the tiny model's folder
(seconds of training after tens of seconds of start-up on a small CPU). The adapter a job writes
matches the registry's base model, so the fake engine serves it at once and answers as it. The
key test needs no training: it runs on the console's demo gateway.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import expect

from gateway.api.app import create_app
from serve.adapters import AdapterRegistry
from serve.models import PreparedModel
from tests.console.chromium import PHONE
from tests.console.conftest import needs_chromium
from tests.fakes.fake_engine import FakeEngine
from tests.gateway.conftest import fake_settings, serving

pytestmark = needs_chromium
JOB_S = 180  # the longest a job may take to end: two tuner subprocesses start, on a small, busy CPU
WHO = [{"role": "user", "content": "Who are you?"}]


def chats(n: int = 8) -> str:
    row = {"messages": [*WHO, {"role": "assistant", "content": "lorag assistant"}]}
    return "".join(json.dumps(row) + "\n" for _ in range(n))


def jsonl(name: str, text: str) -> dict:
    return {"name": name, "mimeType": "application/jsonl", "buffer": text.encode()}


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    """``(url, base model name)``: the gateway over a FakeEngine, training the tiny model for its jobs."""
    base = PreparedModel.read(tiny_model_dir)
    engine = FakeEngine(base.id)
    adapters = tmp_path_factory.mktemp("console-train") / "adapters"
    registry = AdapterRegistry(adapters, base.id, base.sha256, engine.info.limits)
    with serving(create_app(engine, registry, fake_settings(adapters), base_model_dir=tiny_model_dir)) as url:
        yield url, base.id


def unlabelled(page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll("#train :is(input, select, textarea)")]
            .filter((c) => !c.labels?.length && !c.getAttribute("aria-label")).map((c) => c.id || c.outerHTML)"""
    )


def test_an_uploaded_file_trains_a_model_whose_loss_curve_is_drawn_and_which_the_playground_then_offers(
    trainer, open_console
):
    url, base = trainer
    page = open_console(url, hash="#train")
    expect(page.locator("#tr-model")).to_have_value(base)  # the base model: the one card without a parent
    assert unlabelled(page) == []

    files = page.locator("#tr-file")
    uploaded = page.locator("#tr-upload")
    files.set_input_files(jsonl("mine.jsonl", chats(2) + '{"messages": [{"role": "user"}]}\n'))
    expect(uploaded).to_have_text(re.compile(r"^mine\.jsonl was refused: mine\.jsonl:line 3: "), timeout=30_000)
    expect(uploaded).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#tr-training option")).to_have_text(["upload a file first"])  # nothing was stored

    files.set_input_files(jsonl("train.jsonl", chats()))
    expect(uploaded).to_have_text("train.jsonl: 8 rows · openai · trains supervised", timeout=30_000)
    expect(uploaded).not_to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#tr-training option:checked")).to_contain_text("train.jsonl · 8 rows · openai")
    expect(page.locator("#tr-method")).to_have_value("sft")
    expect(page.locator("#tr-method option[value=dpo]")).to_be_disabled()  # chats do not train DPO
    expect(page.locator("#tr-beta")).to_be_hidden()

    page.locator("#tr-epochs").fill("10")  # 40 steps: 8 rows and, by default, as many replay rows
    page.locator("#tr-lr").fill("50")
    page.locator("#tr-suffix").fill("who")
    page.get_by_role("button", name="Start job").click()
    expect(page.locator("#tr-status")).to_have_text(re.compile(r"^Started ftjob-"))
    job = page.locator("#tr-job")
    expect(job.get_by_role("button", name="Cancel job")).to_be_visible()
    expect(page.locator("#tr-jobs li")).to_have_count(1)

    expect(page.locator("#tr-state")).to_have_text("succeeded", timeout=JOB_S * 1000)
    name = job.locator("h2").inner_text()
    assert re.fullmatch(r"ft:[^:]+:lorag:who:[0-9a-f]{8}", name), name
    expect(page.locator("#tr-step")).to_have_text(" · step 40 of 40")
    expect(job.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(job.locator("dt:text-is('Served as') + dd")).to_contain_text(name)
    expect(job.locator("dt:text-is('Settings') + dd")).to_have_text("10 epochs · batch 4 · learning rate ×50")
    expect(job.locator("#tr-events li").first).to_contain_text("The job has successfully completed")
    curve = job.get_by_role(
        "img", name=re.compile(r"^Loss by step: train loss from [\d.]+ at step 1 to [\d.]+ at step 40")
    )
    expect(curve).to_be_visible()
    path = curve.locator("path.train").get_attribute("d")
    assert re.fullmatch(r"M[\d.]+,[\d.]+( L[\d.]+,[\d.]+){39}", path), path  # one point a step
    expect(page.locator("#tr-jobs li")).to_contain_text("succeeded · supervised")
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#health")).to_contain_text("1 adapter ·")  # told that a model was added

    page.get_by_role("tab", name="Playground").click()
    page.locator("#pg-model").select_option(name)  # the fine-tuned model is listed, served as an adapter
    page.locator("#pg-input").fill("Who are you?")
    page.locator("#pg-input").press("Enter")
    expect(page.locator("#pg-log .msg.assistant .text")).to_have_text(f"{name} says Who are you?")
    page.get_by_role("tab", name="Side by side").click()
    expect(page.locator("#sb-arms").get_by_label(name, exact=True)).to_be_attached()


def test_a_long_jobs_curve_grows_while_it_runs_it_pauses_resumes_and_is_cancelled_on_a_phone(trainer, open_console):
    url, base = trainer
    upload = {"file": ("long.jsonl", chats().encode())}
    file = httpx.post(f"{url}/v1/files", files=upload, data={"purpose": "fine-tune"}, timeout=60).json()
    page = open_console(url, viewport=PHONE, hash="#train")
    expect(page.locator("#tr-training")).to_have_value(file["id"])
    page.locator("#tr-epochs").fill("500")  # 2000 steps, with as many replay rows as training rows
    page.get_by_role("button", name="Start job").click()
    job = page.locator("#tr-job")
    cancel = job.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_visible()
    expect(page.locator("#tr-step")).to_contain_text(" of 2000", timeout=JOB_S * 1000)  # running
    line = page.locator("#tr-curve path.train")
    drawn = line.get_attribute("d").count(" ") + 1
    page.wait_for_function(  # the curve grows while the job runs
        "n => document.querySelector('#tr-curve path.train').getAttribute('d').split(' ').length > n", arg=drawn
    )
    expect(page.locator("#tr-state")).to_have_text("running")
    job.get_by_role("button", name="Pause").click()
    expect(page.locator("#tr-state")).to_have_text("paused", timeout=60_000)
    expect(job.locator("#tr-events li").first).to_contain_text("The job was paused")
    expect(job.get_by_role("button", name="Pause")).to_have_count(0)
    job.get_by_role("button", name="Resume").click()
    expect(page.locator("#tr-state")).to_have_text(re.compile("^(queued|running)$"))
    expect(job.get_by_role("button", name="Resume")).to_have_count(0)
    expect(job.get_by_role("button", name="Pause")).to_be_visible(timeout=JOB_S * 1000)  # running again
    cancel.click()

    expect(page.locator("#tr-state")).to_have_text("cancelled", timeout=60_000)
    expect(cancel).to_have_count(0)
    expect(job.locator("#tr-events li").first).to_contain_text("The job was cancelled")
    expect(page.locator("#tr-jobs li").first).to_contain_text("cancelled")
    expect(page.locator("#notice")).to_be_hidden()
    job_id = job.locator("h2").inner_text()  # no model name: a cancelled job registers none
    served = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
    assert not [m for m in served if m.endswith(job_id.removeprefix("ftjob-")[:8])], served
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the Train page is {width} px wide on a {PHONE['width']} px screen"


def test_training_needs_a_key_that_may_train_and_the_page_says_so(make_demo, open_console, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - {name: reader, key: reader-key}\n  - {name: trainer, key: trainer-key, train: true}\n")
    demo = make_demo(keys_file=str(keys))
    page = open_console(demo.url, hash="#train")
    expect(page.locator("#notice")).to_contain_text("missing API key")

    page.locator("#api-key").fill("reader-key")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#tr-jobs")).to_have_text("No job yet.")  # reading needs a key, any key
    expect(page.locator("#tr-model")).to_have_value("fake-base")
    page.locator("#tr-file").set_input_files(jsonl("train.jsonl", chats()))
    uploaded = page.locator("#tr-upload")
    expect(uploaded).to_contain_text("train.jsonl was refused: ")
    expect(uploaded).to_contain_text("may not upload training files or train")
    expect(uploaded).to_have_class(re.compile(r"\berror\b"))

    page.locator("#api-key").fill("trainer-key")
    page.get_by_role("button", name="Use key").click()
    page.locator("#tr-file").set_input_files(jsonl("train.jsonl", chats()))
    expect(uploaded).to_have_text("train.jsonl: 8 rows · openai · trains supervised", timeout=30_000)
