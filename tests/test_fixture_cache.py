"""The trained-fixture cache: built once per key, a fresh copy per session, rebuilt when an input changes."""

import json

from tests.fixture_cache import cached


def test_a_fixture_is_built_once_copied_each_time_and_rebuilt_when_its_inputs_change(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAG_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "lorag-model.json").write_text(json.dumps({"sha256": "abc"}))
    builds = []

    def build(folder):
        builds.append(folder)
        (folder / "adapter.txt").write_text(f"build {len(builds)}")

    first = cached("demo", ["recipe v1"], model, tmp_path / "one", build)
    (first / "adapter.txt").write_text("changed by a test")
    second = cached("demo", ["recipe v1"], model, tmp_path / "two", build)
    assert len(builds) == 1 and (second / "adapter.txt").read_text() == "build 1"

    third = cached("demo", ["recipe v2"], model, tmp_path / "three", build)
    assert len(builds) == 2 and (third / "adapter.txt").read_text() == "build 2"
    assert len(list((tmp_path / "cache" / "test-fixtures").glob("demo-*"))) == 1  # the stale build is gone
