"""ChromaStorage, CrewAI's memory backend on Chroma: real Chroma stores, small hand-made vectors, no model."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from crewai.memory.storage.backend import EmbeddingDimensionMismatchError, StorageBackend
from crewai.memory.types import MemoryRecord, ScopeInfo

from mamabear.memory.chroma_store import ChromaStorage, EmbedderMismatchError

Q = [1.0, 0.0, 0.0, 0.0]
T0 = datetime(2024, 5, 1, 12, 0, 0)


def rec(rid: str, embedding: list[float] | None = None, scope: str = "/", minutes: int = 0, **fields: object) -> MemoryRecord:
    fields.setdefault("last_accessed", T0)
    return MemoryRecord(
        id=rid,
        content=f"memory {rid}",
        scope=scope,
        embedding=embedding if embedding is not None else [0.5, 0.5, 0.5, 0.5],
        created_at=T0 + timedelta(minutes=minutes),
        **fields,
    )


def lance_score(a: list[float], b: list[float]) -> float:
    """What CrewAI's LanceDB backend returns: 1 / (1 + squared Euclidean distance)."""
    return 1.0 / (1.0 + sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def ids(records: list) -> list[str]:
    return [r[0].id if isinstance(r, tuple) else r.id for r in records]


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "chroma")


@pytest.fixture
def store(path: str) -> ChromaStorage:
    return ChromaStorage.open(path)


@pytest.fixture
def scoped(store: ChromaStorage) -> ChromaStorage:
    store.save(
        [
            rec("root", scope="/", minutes=0),
            rec("crew", scope="/crew", minutes=1),
            rec("dev", scope="/crew/dev", minutes=2),
            rec("dev2", scope="/crew/dev/", minutes=3),
            rec("crewx", scope="/crewx", minutes=4),
            rec("ops", scope="/crew/ops/x", minutes=5),
        ]
    )
    return store


def test_is_a_crewai_storage_backend_with_telemetry_off(store: ChromaStorage) -> None:
    assert isinstance(store, StorageBackend)
    assert store._client.get_settings().anonymized_telemetry is False


def test_every_field_round_trips_exactly(store: ChromaStorage) -> None:
    full = MemoryRecord(
        id="full",
        content='Ünïcode and "quotes"\nand lines',
        scope="/crew/dev",
        categories=["b", "a"],
        metadata={"run_id": "r1", "nested": {"x": [1, 2.5, None, True]}, "none": None, "flag": False},
        importance=0.9,
        created_at=datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
        last_accessed=datetime(2024, 1, 3, 4, 5, 6, 789012),
        embedding=[0.5, -1.5, 2.0, 0.25],
        source="user-7",
        private=True,
    )
    assert all(
        getattr(full, name) != info.get_default(call_default_factory=True)
        for name, info in MemoryRecord.model_fields.items()
        if name not in ("id", "created_at", "last_accessed")
    )
    bare = MemoryRecord(id="bare", content="no vector", embedding=None)
    empty = MemoryRecord(id="empty", content="empty vector", embedding=[])
    store.save([full, bare, empty])
    for original in (full, bare, empty):
        got = store.get_record(original.id)
        assert got == original and got.embedding == original.embedding
        assert got.created_at.utcoffset() == original.created_at.utcoffset()
        assert got.last_accessed.utcoffset() == original.last_accessed.utcoffset()
    assert store.search([0.5, -1.5, 2.0, 0.25], limit=1) == [(full, 1.0)]
    assert {r.id: r for r in store.list_records()}["full"] == full
    assert store.get_record("missing") is None


def test_search_ranks_and_scores_as_lancedb_does(store: ChromaStorage) -> None:
    vectors = {"same": Q, "near": [0.5, 0.5, 0.0, 0.0], "far": [0.0, 1.0, 0.0, 0.0], "opposite": [-1.0, 0.0, 0.0, 0.0]}
    store.save([rec(rid, vec) for rid, vec in vectors.items()])
    results = store.search(Q)
    assert ids(results) == ["same", "near", "far", "opposite"]
    assert [score for _, score in results] == pytest.approx([lance_score(Q, vectors[r.id]) for r, _ in results])
    assert [score for _, score in results] == pytest.approx([1.0, 1 / 1.5, 1 / 3, 1 / 5])
    assert ids(store.search(Q, limit=2)) == ["same", "near"]
    assert ids(store.search(Q, min_score=1 / 3)) == ["same", "near", "far"]
    assert store.search(Q, min_score=1.01) == [] and store.search(Q, limit=0) == []
    assert results[0][0].embedding == Q


def test_scope_prefix_means_the_scope_and_its_subscopes(scoped: ChromaStorage) -> None:
    family = {"crew", "dev", "dev2", "ops"}
    for prefix in ("/crew", "/crew/", "crew", "//crew//"):
        assert set(ids(scoped.search(Q, scope_prefix=prefix))) == family
        assert set(ids(scoped.list_records(scope_prefix=prefix))) == family
        assert scoped.count(prefix) == 4
    assert set(ids(scoped.search(Q, scope_prefix="/crew/dev"))) == {"dev", "dev2"}
    for everything in (None, "/", "", "//"):
        assert len(scoped.search(Q, scope_prefix=everything)) == 6
        assert scoped.count(everything) == 6
    assert scoped.search(Q, scope_prefix="/cre") == [] and scoped.count("/nowhere") == 0
    assert scoped.list_scopes() == ["/crew", "/crewx"] == scoped.list_scopes("/")
    assert scoped.list_scopes("/crew/") == ["/crew/dev", "/crew/ops"]
    assert scoped.list_scopes("/crew/ops") == ["/crew/ops/x"] and scoped.list_scopes("/crewx") == []


def test_categories_match_any_and_are_counted(store: ChromaStorage) -> None:
    store.save(
        [
            rec("a", scope="/crew", categories=["x"]),
            rec("b", scope="/crew", categories=["x", "y"]),
            rec("c", scope="/user", categories=["z"]),
            rec("d", scope="/user"),
        ]
    )
    assert set(ids(store.search(Q, categories=["x"]))) == {"a", "b"}
    assert set(ids(store.search(Q, categories=["y", "z"]))) == {"b", "c"}
    assert ids(store.search(Q, categories=["x"], scope_prefix="/user")) == []
    assert len(store.search(Q, categories=[])) == 4
    assert store.list_categories() == {"x": 2, "y": 1, "z": 1}
    assert store.list_categories("/crew") == {"x": 2, "y": 1}


def test_metadata_filter_is_python_equality_on_every_key(store: ChromaStorage) -> None:
    store.save(
        [
            rec("a", metadata={"run": "r1", "n": 1, "tags": ["p", "q"], "cfg": {"b": 1, "a": [2.0]}}),
            rec("b", metadata={"run": "r1", "n": 2, "none": None}),
            rec("c", metadata={"run": "r2", "flag": True}),
            rec("d"),
        ]
    )
    assert set(ids(store.search(Q, metadata_filter={"run": "r1"}))) == {"a", "b"}
    assert ids(store.search(Q, metadata_filter={"run": "r1", "n": 2})) == ["b"]
    assert ids(store.search(Q, metadata_filter={"n": 1.0})) == ["a"]  # 1 == 1.0, as in Python
    assert ids(store.search(Q, metadata_filter={"flag": 1})) == ["c"]  # True == 1
    assert ids(store.search(Q, metadata_filter={"tags": ["p", "q"]})) == ["a"]
    assert ids(store.search(Q, metadata_filter={"cfg": {"a": [2], "b": 1}})) == ["a"]
    assert ids(store.search(Q, metadata_filter={"tags": ["q", "p"]})) == []
    assert set(ids(store.search(Q, metadata_filter={"none": None}))) == {"a", "b", "c", "d"}  # absent keys are None too
    assert set(ids(store.search(Q, metadata_filter={"run": None}))) == {"d"}
    assert ids(store.search(Q, metadata_filter={"run": "r9"})) == []
    assert ids(store.search(Q, metadata_filter={"run": "r1"}, categories=["nope"])) == []


def test_filtered_search_finds_the_nearest_among_the_matching(store: ChromaStorage) -> None:
    store.save([rec(f"n{i}", [1.0, i / 100, 0.0, 0.0], scope="/near") for i in range(30)] + [rec("far", [0.0, 0.0, 3.0, 0.0], scope="/far")])
    assert ids(store.search(Q, scope_prefix="/far", limit=1)) == ["far"]
    assert ids(store.search(Q, scope_prefix="/near", limit=3)) == ["n0", "n1", "n2"]


def test_delete_by_each_criterion_returns_the_count(scoped: ChromaStorage) -> None:
    scoped.save(
        [
            rec("cat", scope="/user", minutes=-60, categories=["x", "y"], metadata={"run": "r1"}),
            rec("cat2", scope="/crew/dev", minutes=10, categories=["y"], metadata={"run": "r2"}),
        ]
    )
    assert scoped.delete(record_ids=["root", "root", "missing"]) == 1
    assert scoped.delete(record_ids=[]) == 0
    assert scoped.delete(categories=["x", "nope"]) == 1 and scoped.get_record("cat") is None
    assert scoped.delete(older_than=T0 + timedelta(minutes=2)) == 1  # "crew" (minute 1); "dev" at minute 2 is not older
    assert scoped.delete(metadata_filter={"run": "r2"}) == 1
    assert scoped.delete(scope_prefix="/crew/dev", categories=["y"]) == 0  # criteria combine
    assert scoped.delete(scope_prefix="/crew") == 3  # dev, dev2, ops; never /crewx
    assert ids(scoped.list_records()) == ["crewx"]
    assert scoped.delete(scope_prefix="/nowhere") == 0
    scoped.save([rec("again")])
    assert scoped.delete() == 2 and scoped.count() == 0


def test_update_replaces_the_whole_record(store: ChromaStorage) -> None:
    store.save([rec("a", Q, scope="/crew", categories=["old"], metadata={"k": "old"}), rec("b", [0.0, 1.0, 0.0, 0.0])])
    old = store.get_record("a")
    new = old.model_copy(
        update={
            "content": "rewritten",
            "scope": "/user",
            "categories": ["new"],
            "metadata": {"j": 1},
            "embedding": [0.0, 0.0, 1.0, 0.0],
            "last_accessed": T0 + timedelta(days=1),
        }
    )
    store.update(new)
    assert store.get_record("a") == new and store.count() == 2
    assert store.search(Q, categories=["old"]) == [] and store.search(Q, metadata_filter={"k": "old"}) == []
    assert store.search(Q, scope_prefix="/crew") == [] and ids(store.search(Q, scope_prefix="/user")) == ["a"]
    assert store.search([0.0, 0.0, 1.0, 0.0], limit=1)[0] == (new, 1.0)
    store.update(rec("c", [0.0, 0.0, 0.0, 1.0]))
    assert store.count() == 3 and store.get_record("c") is not None


def test_touch_records_sets_last_accessed_only(store: ChromaStorage) -> None:
    store.save([rec("a", Q, categories=["x"]), rec("b")])
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    store.touch_records(["a", "a", "missing"])
    touched, untouched = store.get_record("a"), store.get_record("b")
    assert touched.last_accessed >= before and untouched.last_accessed < before
    assert touched.model_copy(update={"last_accessed": T0}) == rec("a", Q, categories=["x"]).model_copy(update={"last_accessed": T0})
    assert store.search(Q, categories=["x"], limit=1)[0][0] == touched


def test_list_records_is_newest_first_with_paging(scoped: ChromaStorage) -> None:
    assert ids(scoped.list_records()) == ["ops", "crewx", "dev2", "dev", "crew", "root"]
    assert ids(scoped.list_records(limit=2, offset=1)) == ["crewx", "dev2"]
    assert ids(scoped.list_records(scope_prefix="/crew", limit=2)) == ["ops", "dev2"]
    assert scoped.list_records(limit=0) == [] and scoped.list_records(offset=10) == [] and scoped.list_records(offset=-1) == []


def test_scope_info(scoped: ChromaStorage) -> None:
    scoped.save([rec("tagged", scope="/crew/dev", minutes=-5, categories=["b", "a"])])
    assert scoped.get_scope_info("/crew/") == ScopeInfo(
        path="/crew",
        record_count=5,
        categories=["a", "b"],
        oldest_record=T0 - timedelta(minutes=5),
        newest_record=T0 + timedelta(minutes=5),
        child_scopes=["/crew/dev", "/crew/ops"],
    )
    everything = scoped.get_scope_info("/")
    assert (everything.path, everything.record_count, everything.child_scopes) == ("/", 7, ["/crew", "/crewx"])
    assert scoped.get_scope_info("/nowhere") == ScopeInfo(path="/nowhere")


def test_reset_a_scope_or_everything(scoped: ChromaStorage) -> None:
    scoped.reset("/crew/")
    assert set(ids(scoped.list_records())) == {"root", "crewx"}
    scoped.reset()
    assert scoped.count() == 0 and scoped.list_scopes() == [] and scoped.search(Q) == []
    scoped.save([rec("wider", [1.0] * 8)])  # a reset store takes any dimension again
    assert scoped.count() == 1
    scoped.reset("/")
    assert scoped.count() == 0
    scoped.reset()


def test_async_variants(store: ChromaStorage) -> None:
    async def scenario() -> tuple:
        await asyncio.gather(*(store.asave([rec(f"r{i}", [1.0, i / 10, 0.0, 0.0], categories=["even" if i % 2 == 0 else "odd"])]) for i in range(10)))
        found = await store.asearch(Q, categories=["even"], limit=3, min_score=0.0)
        deleted = await store.adelete(categories=["odd"])
        return found, deleted

    found, deleted = asyncio.run(scenario())
    assert ids(found) == ["r0", "r2", "r4"] and found[0][1] == pytest.approx(1.0)
    assert deleted == 5 and store.count() == 5


def test_dimension_mismatch_raises_crewais_error(store: ChromaStorage) -> None:
    with pytest.raises(EmbeddingDimensionMismatchError):
        store.save([rec("a", Q), rec("b", [1.0, 0.0])])
    store.save([rec("a", Q)])
    with pytest.raises(EmbeddingDimensionMismatchError) as error:
        store.save([rec("c", [1.0] * 8)])
    assert (error.value.stored_dim, error.value.new_dim) == (4, 8) and isinstance(error.value, ValueError)
    with pytest.raises(EmbeddingDimensionMismatchError):
        store.update(rec("a", [1.0] * 3))
    with pytest.raises(EmbeddingDimensionMismatchError):
        store.search([1.0] * 8)
    store.save([MemoryRecord(id="novec", content="no vector")])  # stored with a zero vector of the store's dimension
    assert store.count() == 2 and store.get_record("novec").embedding is None


def test_embedder_mismatch(path: str) -> None:
    first = ChromaStorage.open(path, embedder="local:all-MiniLM-L6-v2")
    first.save([rec("a", Q)])
    other = ChromaStorage.open(path, embedder="openai:text-embedding-3-small")
    with pytest.raises(EmbedderMismatchError) as error:
        other.save([rec("b", Q)])
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert "local:all-MiniLM-L6-v2" in message and "openai:text-embedding-3-small" in message and "mamabear memory reset --yes" in message
    with pytest.raises(EmbedderMismatchError):
        other.search(Q)
    assert other.count() == 1 and ids(other.list_records()) == ["a"]  # reading, and so resetting, still work
    ChromaStorage.open(path).save([rec("c", Q)])  # no embedder named: no check
    other.reset()
    other.save([rec("b", Q)])
    with pytest.raises(EmbedderMismatchError):
        first.save([rec("a", Q)])


def test_collection_is_l2_with_no_embedding_function(store: ChromaStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    from chromadb.api.types import DefaultEmbeddingFunction

    def refuse(self: object, input: object) -> None:  # noqa: A002 - Chroma's parameter name
        raise AssertionError("Chroma's default embedder must never run")

    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", refuse)
    store.save([rec("a", Q)])
    store.update(rec("a", Q, categories=["x"]))
    store.search(Q)
    store.list_records()
    config = store._client.get_collection("mamabear_memory", embedding_function=None).configuration_json
    assert config["hnsw"]["space"] == "l2" and config["embedding_function"] == {"type": "legacy"}


MINE = [1.0] + [0.0] * 7
WRITER = f"""
import random, sys, time
from pathlib import Path
from crewai.memory.types import MemoryRecord
from mamabear.memory.chroma_store import ChromaStorage
path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = ChromaStorage.open(path)
mine = store.get_record("mine")
assert mine.content == "from the test process" and mine.embedding == {MINE} and store.search({MINE}, limit=1)[0][0].id == "mine"
Path(f"{{path}}.{{tag}}.ready").touch()
while len(list(Path(path).parent.glob("*.ready"))) < 2:
    time.sleep(0.005)
rnd = random.Random(tag)
for start in range(0, count, 50):
    store.save([MemoryRecord(id=f"{{tag}}-{{i}}", content=f"{{tag}} {{i}}", scope=f"/proc/{{tag}}", embedding=[rnd.random() for _ in range(8)])
                for i in range(start, start + 50)])
"""


def test_processes_share_the_store_and_writing_at_once_loses_nothing(path: str) -> None:
    store = ChromaStorage.open(path)
    store.save([MemoryRecord(id="mine", content="from the test process", embedding=MINE)])
    assert ids(store.search(MINE)) == ["mine"]  # this client now holds the vector index in memory
    # Each writer first reads our record, then both save 600 records at once, in batches. As delete + add
    # that is past Chroma's 1000 writes between saves of its HNSW index: without the lock the processes
    # overwrite each other's index files and the store loses vectors.
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path, tag, "600"], stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    # Our client predates all their records: a stale one would count them (SQLite) but not find their vectors.
    assert store.count() == 1201 and store.count("/proc/a") == 600
    records = store.list_records(limit=2000)  # reads every vector back
    assert sorted(ids(records)) == sorted(["mine"] + [f"{tag}-{i}" for tag in ("a", "b") for i in range(600)])
    assert all(store.search(record.embedding, limit=1)[0][0].id == record.id for record in records)


def test_parity_with_crewais_lancedb_backend(tmp_path: Path, store: ChromaStorage) -> None:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    def dataset() -> list[MemoryRecord]:
        return [
            rec("a", [0.1, 0.2, 0.3, 0.4], scope="/crew", minutes=1, categories=["x"], metadata={"k": "v"}),
            rec("b", [0.9, 0.1, 0.0, 0.0], scope="/crew/dev", minutes=2, categories=["x", "y"], metadata={"k": "w"}),
            rec("c", [0.0, 1.0, 0.0, 0.5], scope="/crew/ops", minutes=3, categories=["z"]),
            rec("d", [1.0, 1.0, 1.0, 1.0], scope="/user", minutes=4, metadata={"k": "v", "n": 2}, source="u1", private=True),
        ]

    lance = LanceDBStorage(path=tmp_path / "lance", compact_every=0)
    for backend in (lance, store):
        backend.save(dataset())
    queries = [
        {},
        {"scope_prefix": "/crew"},
        {"scope_prefix": "/crew/dev/"},
        {"categories": ["x", "z"]},
        {"metadata_filter": {"k": "v"}},
        {"limit": 2},
        {"min_score": 0.5},
        {"scope_prefix": "/crew", "categories": ["x"], "metadata_filter": {"k": "w"}},
    ]
    for query in queries:
        theirs, ours = lance.search(Q, **query), store.search(Q, **query)
        assert ids(ours) == ids(theirs), query
        assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], rel=1e-6)
        assert [r for r, _ in ours] == [r for r, _ in theirs]  # same records, float32 vectors included
    assert ids(store.list_records()) == ids(lance.list_records())
    assert ids(store.list_records(scope_prefix="/crew", limit=2, offset=1)) == ids(lance.list_records(scope_prefix="/crew", limit=2, offset=1))
    for scope in ("/", "/crew", "/crew/dev"):
        assert store.get_scope_info(scope) == lance.get_scope_info(scope)
        assert store.list_scopes(scope) == lance.list_scopes(scope)
        assert store.list_categories(scope) == lance.list_categories(scope)
        assert store.count(scope) == lance.count(scope)
    assert store.get_record("a") == lance.get_record("a")
    deletions = [
        {"scope_prefix": "/crew"},
        {"categories": ["y", "z"]},
        {"record_ids": ["a", "d", "nope"]},
        {"older_than": T0 + timedelta(minutes=3)},
        {"metadata_filter": {"k": "v"}},
        {},
    ]
    for number, criteria in enumerate(deletions):
        lance_copy = LanceDBStorage(path=tmp_path / "lance", table_name=f"t{number}", compact_every=0)
        chroma_copy = ChromaStorage(store._client, collection=f"copy{number}")
        for backend in (lance_copy, chroma_copy):
            backend.save(dataset())
        assert chroma_copy.delete(**criteria) == lance_copy.delete(**criteria), criteria
        assert sorted(ids(chroma_copy.list_records())) == sorted(ids(lance_copy.list_records())), criteria


@pytest.fixture
def chroma_server(tmp_path: Path) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert server.poll() is None and time.monotonic() < deadline, "the Chroma server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_open_a_chroma_server_by_url(chroma_server: str) -> None:
    store = ChromaStorage.open(chroma_server, embedder="e1")
    store.save([rec("a", Q, scope="/crew", categories=["x"]), rec("b", [0.0, 1.0, 0.0, 0.0], scope="/crewx")])
    assert ids(store.search(Q, scope_prefix="/crew")) == ["a"] and store.count() == 2
    with pytest.raises(EmbedderMismatchError):
        ChromaStorage.open(chroma_server, embedder="e2").search(Q)
    store.reset()
    store.reset()
    assert store.count() == 0 and store.search(Q) == []
