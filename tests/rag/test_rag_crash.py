"""Kill a real ingest or embedder change half-way and check what the knowledge base looks like afterwards."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.embedder import HashingEmbedder
from rag.query import MODES
from rag.retriever import retrieve
from rag.splitter import ChunkingSettings
from rag.store import KnowledgeBase, Manifest

pytestmark = pytest.mark.folder_only  # the folder's SQLite, index files and their repair

REPOSITORY = Path(__file__).resolve().parents[2]

# Ingests a file into an existing knowledge base; at the named step it touches a marker file
# and hangs, so the test can kill it there with SIGKILL.
INGEST = """
import sys, time
from pathlib import Path
from rag.embedder import HashingEmbedder
from rag.index import DenseIndex
from rag.store import KnowledgeBase

kb_path, step, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def hang(*args, **kwargs):
    marker.touch()
    time.sleep(60)

if step == "embedding":
    HashingEmbedder.embed = hang
elif step == "index-save":
    DenseIndex.save = hang
kb = KnowledgeBase(kb_path, HashingEmbedder(64, max_tokens=48))
kb.ingest("volcano.txt", " ".join(["Volcanoes in Iceland erupt with lava and ash."] * 40).encode())
"""

# Changes the embedder of an existing knowledge base to one reading 16 words (so documents are
# cut again); hangs at the named step like INGEST.
SET_EMBEDDER = """
import sys, time
from pathlib import Path
from rag.database import ChunkDatabase
from rag.embedder import HashingEmbedder
from rag.index import DenseIndex
from rag.store import KnowledgeBase

kb_path, step, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def hang(*args, **kwargs):
    marker.touch()
    time.sleep(60)

kb = KnowledgeBase(kb_path, HashingEmbedder(64, max_tokens=48))
if step == "commit":
    ChunkDatabase.replace_chunks = hang
elif step == "index-save":
    DenseIndex.save = hang
kb.set_embedder(HashingEmbedder(32, max_tokens=16))
"""


def kill_ingest_at(kb: KnowledgeBase, step: str, tmp_path: Path, script: str = INGEST) -> None:
    kb.close()  # the writer lock, for the process that is killed
    marker = tmp_path / f"{step}.reached"
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(kb.path), step, str(marker)],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"ingest exited before {step}: {process.stderr.read().decode()}")
        assert time.monotonic() < deadline, f"ingest never reached {step}"
        time.sleep(0.05)
    process.kill()
    process.wait()
    process.stderr.close()


def snapshot(kb: KnowledgeBase) -> tuple:
    return (
        kb.documents(),
        kb.database.chunks(),
        sorted(kb.dense.ids().tolist()),
        sorted(kb.bm25.ids().tolist()),
        {mode: retrieve(kb, "Eiffel Tower capital", mode=mode) for mode in MODES},
    )


@pytest.fixture
def populated(kb):
    kb.ingest("paris.txt", b"Paris is the capital of France. The Eiffel Tower stands in Paris.")
    kb.ingest("tokyo.txt", b"Tokyo is the capital of Japan. Mount Fuji can be seen from Tokyo.")
    return kb


def test_killed_during_embedding_leaves_the_knowledge_base_as_before(populated, tmp_path):
    before = snapshot(populated)
    kill_ingest_at(populated, "embedding", tmp_path)
    reopened = KnowledgeBase(populated.path, populated.embedder)
    assert snapshot(reopened) == before
    assert retrieve(reopened, "Eiffel Tower", top_k=1)[0].filename == "paris.txt"
    assert not any(reopened.path.glob(".*")), "no temporary files are left behind"


def test_killed_after_commit_is_completed_on_reopen(populated, tmp_path):
    kill_ingest_at(populated, "index-save", tmp_path)
    reopened = KnowledgeBase(populated.path, populated.embedder)
    assert [d.filename for d in reopened.documents()] == ["paris.txt", "tokyo.txt", "volcano.txt"]
    chunk_ids = sorted(reopened.database.chunks())
    assert sorted(reopened.dense.ids().tolist()) == sorted(reopened.bm25.ids().tolist()) == chunk_ids
    for mode in MODES:
        assert retrieve(reopened, "lava eruptions Iceland", mode=mode, top_k=1)[0].filename == "volcano.txt"
        assert retrieve(reopened, "Eiffel Tower", mode=mode, top_k=1)[0].filename == "paris.txt"


@pytest.mark.parametrize("step", ["commit", "index-save"])
def test_killed_during_an_embedder_change_is_finished_on_reopen(populated, tmp_path, step):
    populated.ingest("volcano.txt", " ".join(f"Volcano {i} in Iceland erupts with lava." for i in range(40)).encode())
    kill_ingest_at(populated, step, tmp_path, SET_EMBEDDER)
    manifest = Manifest.read(populated.path)
    assert manifest.dense_stale and manifest.chunking == ChunkingSettings(16, 2)
    small = HashingEmbedder(32, max_tokens=16)
    reopened = KnowledgeBase(populated.path, small)
    assert not Manifest.read(reopened.path).dense_stale and reopened.dense.dimension == 32
    chunks = reopened.database.chunks()
    assert all(small.count_tokens(c.indexed_text) <= 16 for c in chunks.values()) and len(chunks) > 10
    assert sorted(reopened.dense.ids().tolist()) == sorted(reopened.bm25.ids().tolist()) == sorted(chunks)
    for mode in MODES:
        assert retrieve(reopened, "Volcano 17 Iceland", mode=mode, top_k=1)[0].filename == "volcano.txt"
        assert retrieve(reopened, "Eiffel Tower", mode=mode, top_k=1)[0].filename == "paris.txt"
