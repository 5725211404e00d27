"""Two `lorag serve` processes, each with its own LORAG_KB_DIR, sharing knowledge bases through one Milvus.

Concurrent uploads through both (the same content through both at once is stored once), search through each,
a delete through one seen by the other, and a `kill -9` of one mid-upload: nothing of that document is
searchable, and once the killed gateway starts again no row of it is left in Milvus.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pymilvus import MilvusClient

from rag.milvus_schema import DOCUMENTS, OPERATIONS, chunks_collection
from tests.gateway.test_serve_command import start_serve

pytestmark = pytest.mark.slow  # three `lorag serve` starts


def upload(port: int, name: str, data: bytes) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        return http.post("/v1/knowledge_bases/shared/documents", files=[("files", (name, data))])


def upload_until_killed(port: int, name: str, data: bytes) -> None:
    try:
        upload(port, name, data)
    except httpx.HTTPError:  # the gateway is killed mid-upload
        pass


def search(port: int, query: str) -> list[str]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        hits = http.post("/v1/knowledge_bases/shared/search", json={"query": query, "mode": "bm25"}).json()["data"]
    return [hit["filename"] for hit in hits]


def documents(port: int) -> list[str]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        return sorted(d["filename"] for d in http.get("/v1/knowledge_bases/shared/documents").json()["data"])


def count(client: MilvusClient, collection: str, where: str) -> int:
    return client.query(collection, filter=where, output_fields=["count(*)"])[0]["count(*)"]


def test_two_gateways_share_a_knowledge_base_in_milvus(tiny_raw_dir, tiny_model_dir, tmp_path, milvus_uri, milvus_db):
    settings = {"milvus_uri": milvus_uri, "milvus_db": milvus_db, "embedder": "hashing-256"}
    start = {name: lambda name=name: start_serve(tiny_raw_dir, tiny_model_dir, tmp_path / f"adapters-{name}",
                                                 kb_dir=str(tmp_path / f"kbs-{name}"), **settings)
             for name in ("a", "b")}  # fmt: skip
    servers = {}
    try:
        with ThreadPoolExecutor(2) as pool:
            servers = dict(zip(start, pool.map(lambda make: make(), start.values()), strict=True))
        a, b = servers["a"][1], servers["b"][1]
        with httpx.Client(base_url=f"http://127.0.0.1:{a}", timeout=30) as http:
            assert http.post("/v1/knowledge_bases", json={"name": "shared"}).is_success

        both = b"The same memo reached both gateways at once: wibblequartz."
        jobs = [(a, f"a{n}.txt", f"Gateway a wrote note {n} about alphaword{n}.".encode()) for n in range(5)]
        jobs += [(b, f"b{n}.txt", f"Gateway b wrote note {n} about betaword{n}.".encode()) for n in range(5)]
        jobs += [(a, "memo.txt", both), (b, "memo.txt", both)]
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda job: upload(*job), jobs))
        assert all(reply.is_success for reply in replies), [r.text for r in replies]
        expected = sorted([f"a{n}.txt" for n in range(5)] + [f"b{n}.txt" for n in range(5)] + ["memo.txt"])
        assert documents(a) == documents(b) == expected  # nothing lost, the memo stored once
        assert search(a, "betaword3") == ["b3.txt"] and search(b, "alphaword2") == ["a2.txt"]
        assert search(b, "wibblequartz") == ["memo.txt"]

        [a1] = [d["id"] for d in replies[1].json()["data"]]
        with httpx.Client(base_url=f"http://127.0.0.1:{b}", timeout=30) as http:
            assert http.delete(f"/v1/knowledge_bases/shared/documents/{a1}").is_success
        assert search(a, "alphaword1") == [] and "a1.txt" not in documents(a)

        milvus = MilvusClient(uri=milvus_uri, db_name=milvus_db)
        big = "".join(f"Line {n} of the long report mentions zorbleword and item{n}.\n" for n in range(40_000)).encode()
        big_id = f"doc_{hashlib.sha256(big).hexdigest()[:24]}"
        chunks = chunks_collection("shared", 0)
        threading.Thread(target=upload_until_killed, args=(a, "long.txt", big), daemon=True).start()
        deadline = time.monotonic() + 120
        while count(milvus, chunks, f'document_id == "{big_id}"') == 0:
            assert time.monotonic() < deadline, "the long upload never started writing chunks"
            time.sleep(0.02)
        os.kill(servers["a"][0].pid, signal.SIGKILL)
        servers["a"][0].wait()
        assert count(milvus, DOCUMENTS, f'id == "{big_id}"') == 0, "the upload committed before the kill"
        assert count(milvus, chunks, f'document_id == "{big_id}"') > 0  # written, and invisible:
        assert search(b, "zorbleword") == [] and "long.txt" not in documents(b)

        servers["a"] = start["a"]()  # the same gateway (same host and LORAG_KB_DIR) starting again
        assert count(milvus, chunks, f'document_id == "{big_id}"') == 0
        assert count(milvus, OPERATIONS, 'key != ""') == 0
        rows = milvus.query(DOCUMENTS, filter='kb == "shared"', output_fields=["chunk_count"])
        visible = sum(row["chunk_count"] for row in rows)
        assert count(milvus, chunks, "id >= 0 or id < 0") == visible  # no orphaned chunk
        assert documents(servers["a"][1]) == documents(b) == [name for name in expected if name != "a1.txt"]
    finally:
        for server, _ in servers.values():
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                server.wait(30)
