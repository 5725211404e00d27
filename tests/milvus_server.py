"""A milvus-lite server for the tests: started once per session, a fresh database per test.

``milvus-lite server --data-dir DIR --port PORT`` speaks Milvus's gRPC protocol, so ``pymilvus``
reaches it at ``http://127.0.0.1:PORT`` exactly as it reaches Milvus Standalone or a cluster;
several gateways (processes) can share it like any Milvus.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def milvus_lite_server(data_dir: Path, timeout_s: float = 60) -> Iterator[str]:
    """Run ``milvus-lite server`` on a free loopback port until the block ends; yields its URI."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(data_dir),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = open(data_dir.parent / "milvus-lite.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited with {server.returncode}; see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"milvus-lite server did not listen on {port} in {timeout_s} s") from None
                time.sleep(0.2)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def fresh_database(uri: str) -> str:
    """Create a database no test has used; its name."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    name = f"t{uuid.uuid4().hex[:16]}"
    for attempt in range(3):
        try:
            client = MilvusClient(uri=uri)
            break
        except MilvusException:  # a connection idle since an early test, closed by the server (too_many_pings)
            if attempt == 2:
                raise
            time.sleep(1)
    client.create_database(name)
    client.close()
    return name
