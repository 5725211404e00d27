"""One writer per knowledge base: a second process is refused with a typed error and changes nothing."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rag.errors import KnowledgeBaseLocked
from rag.store import KnowledgeBase, KnowledgeBases

pytestmark = pytest.mark.folder_only  # the folder's writer lock

REPOSITORY = Path(__file__).resolve().parents[2]

# Opens the knowledge base (optionally adds a document), says so, and holds it until stdin closes.
HOLD = """
import sys
from pathlib import Path
from rag.embedder import HashingEmbedder
from rag.store import KnowledgeBase

kb = KnowledgeBase(Path(sys.argv[1]), HashingEmbedder(64, max_tokens=48))
if len(sys.argv) > 2:
    kb.ingest("second.txt", sys.argv[2].encode())
print("open", flush=True)
sys.stdin.read()
"""


def holder(path: Path, *text: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), *text],
        cwd=REPOSITORY,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process


def opened(process: subprocess.Popen) -> bool:
    return process.stdout.readline().strip() == "open"


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "writer.lock"}


def test_a_second_process_is_refused_and_changes_nothing(kb):
    kb.ingest("first.txt", b"Paris is the capital of France.")
    before = files(kb.path)
    second = holder(kb.path, "Tokyo is the capital of Japan.")
    _, stderr = second.communicate(timeout=60)
    assert second.returncode != 0
    assert "KnowledgeBaseLocked: knowledge base 'kb' is open in another process (pid " in stderr
    assert files(kb.path) == before
    assert [d.filename for d in kb.documents()] == ["first.txt"]


def test_the_folder_is_free_once_its_writer_closes_it(kb):
    kb.close()
    second = holder(kb.path, "Tokyo is the capital of Japan.")
    try:
        assert opened(second), second.stderr.read()
        with pytest.raises(KnowledgeBaseLocked, match=rf"pid {second.pid} on "):
            KnowledgeBase(kb.path, kb.embedder)
    finally:
        second.communicate(timeout=60)
    reopened = KnowledgeBase(kb.path, kb.embedder)
    assert [d.filename for d in reopened.documents()] == ["second.txt"]


def test_a_killed_writer_leaves_no_lock_behind(kb):
    kb.close()
    second = holder(kb.path)
    assert opened(second), second.stderr.read()
    second.send_signal(signal.SIGKILL)
    second.wait()
    second.stdout.close(), second.stderr.close(), second.stdin.close()
    KnowledgeBase(kb.path, kb.embedder).ingest("after.txt", b"Written after the crash.")


def test_one_process_may_open_a_folder_twice_and_delete_what_it_holds(tmp_path, embedder):
    bases = KnowledgeBases(tmp_path, embedder_factory=lambda _: embedder, default_embedder=embedder.id)
    created = bases.create("notes")
    again = KnowledgeBase(created.path, embedder)  # same process: shared, not refused
    again.close()
    second = holder(created.path)
    _, stderr = second.communicate(timeout=60)
    assert "KnowledgeBaseLocked" in stderr  # `created` still holds it
    bases.delete("notes")
    assert bases.list() == [] and not (tmp_path / "notes").exists()


def test_another_process_s_knowledge_base_is_not_deleted(kb, tmp_path, embedder):
    kb.close()
    second = holder(kb.path)
    try:
        assert opened(second), second.stderr.read()
        bases = KnowledgeBases(kb.path.parent, embedder_factory=lambda _: embedder, default_embedder=embedder.id)
        with pytest.raises(KnowledgeBaseLocked):
            bases.delete("kb")
        assert (kb.path / "kb.json").is_file()
    finally:
        second.communicate(timeout=60)
