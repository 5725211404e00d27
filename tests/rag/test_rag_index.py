import numpy as np
import pytest

from rag.index import BM25Index, CorruptIndex, DenseIndex


def unit_vectors(count: int, dimension: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_dense_search_remove_and_filter():
    vectors = unit_vectors(10)
    index = DenseIndex(16)
    index.add(range(100, 110), vectors)
    assert index.search(vectors[3], 1)[0][0] == 103
    assert index.search(vectors[3], 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    index.remove([103, 104])
    assert len(index) == 8 and 103 not in {i for i, _ in index.search(vectors[3], 10)}
    assert {i for i, _ in index.search(vectors[3], 10, allowed=np.array([105, 106]))} == {105, 106}
    assert index.search(vectors[3], 10, allowed=np.array([], dtype=np.int64)) == []


def test_dense_switches_to_hnsw_past_the_threshold_and_back(tmp_path):
    vectors = unit_vectors(60)
    index = DenseIndex(16, hnsw_threshold=50)
    index.add(range(40), vectors[:40])
    assert index.kind == "flat"
    index.add(range(40, 60), vectors[40:])
    assert index.kind == "hnsw"
    assert [index.search(vectors[i], 1)[0][0] for i in (0, 45, 59)] == [0, 45, 59]
    assert index.search(vectors[7], 5, allowed=np.array([7, 8]))[0][0] == 7

    index.save(tmp_path / "index.faiss")
    loaded = DenseIndex.load(tmp_path / "index.faiss", hnsw_threshold=50)
    assert loaded.kind == "hnsw" and sorted(loaded.ids().tolist()) == list(range(60))
    loaded.remove(range(20))
    assert loaded.kind == "flat" and sorted(loaded.ids().tolist()) == list(range(20, 60))
    assert loaded.search(vectors[30], 1)[0][0] == 30


def test_bm25_ranks_stems_removes_and_round_trips(tmp_path):
    index = BM25Index()
    index.add([1, 2, 3], ["Cats are running fast", "A dog runs in the park", "Quantum fields and particles"])
    assert [i for i, _ in index.search("running cat", 5)] == [1, 2]
    assert index.search("the and", 5) == [], "stopwords alone match nothing"
    assert index.search("unknownword", 5) == []
    assert [i for i, _ in index.search("runs", 5, allowed=np.array([2, 3]))] == [2]

    index.save(tmp_path / "bm25.npz")
    loaded = BM25Index.load(tmp_path / "bm25.npz")
    assert loaded.search("running cat", 5) == index.search("running cat", 5)
    loaded.remove([1])
    assert [i for i, _ in loaded.search("running cat", 5)] == [2]
    loaded.add([4], ["cat videos"])
    assert [i for i, _ in loaded.search("cat", 5)] == [4]


def test_unreadable_index_files_raise_corrupt_index(tmp_path):
    (tmp_path / "bad").write_bytes(b"garbage")
    with pytest.raises(CorruptIndex):
        DenseIndex.load(tmp_path / "bad")
    with pytest.raises(CorruptIndex):
        BM25Index.load(tmp_path / "bad")
    with pytest.raises(CorruptIndex):
        BM25Index.load(tmp_path / "missing.npz")


def test_bm25_over_chunks_of_stopwords_only_finds_nothing():
    index = BM25Index()
    index.add([1], ["The and of"])
    assert index.search("the", 5) == [] and index.search("word", 5) == []
    index.add([2], ["Real words"])
    assert [i for i, _ in index.search("word", 5)] == [2]
