"""CrewAI's memory ``StorageBackend`` on Chroma, with the semantics of CrewAI's own LanceDB backend.

Vectors always come from the caller: the collection has no embedding function (Chroma's default
ONNX embedder is never built or called) and uses Chroma's ``l2`` space, whose distance is the
squared Euclidean distance LanceDB returns by default. A search scores each hit as LanceDB's backend
does, ``1 / (1 + distance)``: 1.0 for the same vector, falling towards 0 as it moves away (for unit
vectors, ``1 / (3 - 2 * cosine)``).

Each record is one Chroma item whose id is the record's id. Its metadata holds:

- ``record``: every field but the vector, as JSON (datetimes in ISO form), which is what is read
  back, so records round-trip exactly. A record without a vector is stored with a zero vector (as
  LanceDB does) and keeps its own ``embedding`` (None or ``[]``) in this JSON.
- ``scope``: the normalised scope (``/crew/dev``), and ``scope_paths``: it and all its ancestors
  (``["/", "/crew", "/crew/dev"]``). A scope prefix matches the scope and its subscopes, and
  never ``/crewx`` for ``/crew``, through ``{"scope_paths": {"$contains": prefix}}``.
- ``categories``: the record's categories, matched with ``$contains`` (left out when empty).
- ``created_us``: ``created_at`` in microseconds since the epoch (naive datetimes are UTC, as
  CrewAI's are), for ``older_than`` and newest-first listing.
- ``m:KEY`` for each user metadata key: the value as canonical JSON (sorted keys, bools and
  integral floats as ints), so a metadata filter is an exact string match that equals Python's
  ``==``, as in LanceDB's backend; and ``meta_keys``: the keys present, so that a filter on
  ``None`` also matches records without the key, as ``metadata.get(key) == None`` does.

Filters go into Chroma's ``where``, so a filtered search finds the nearest neighbours among the
matching records. The collection's own metadata records the vector ``dimension`` and the
``embedder`` that made the store, set when the first save creates it; a vector of another
dimension raises CrewAI's ``EmbeddingDimensionMismatchError``, another embedder name raises
``EmbedderMismatchError`` on save and search (reading, deleting and resetting still work, which is
the way out).

Where LanceDB's backend is inconsistent this store takes the intended meaning: a scope prefix is
path-wise everywhere (LanceDB's ``LIKE 'prefix%'`` also takes ``/crewx`` for ``/crew``, and its
``delete`` by scope also deletes the root scope's records); ``delete`` applies all the criteria
given together (LanceDB ignores some combinations, and deletes everything for ``record_ids=[]``);
saving an existing id replaces the record (LanceDB adds a duplicate row); a record saved without
a vector reads back without one (LanceDB returns zeros).

Several processes on one local store: Chroma's ``PersistentClient`` is not safe across
processes. Its SQLite tables are shared, but each process keeps the HNSW index in memory, applies
its own writes to it and saves it to disk every ~1000 writes, overwriting the index files the
other processes saved: concurrent writers lose vectors and corrupt the store ("Error getting
embedding"). A process also never notices another's writes in its in-memory index: ``count()``
and ``get()`` (SQLite) see them, ``query()`` does not, and asking for their vectors fails. So
every operation takes an ``fcntl.flock`` on ``<store>.lock`` beside the Chroma directory (shared
to read, exclusive to write), and each write bumps a generation number kept in that file. When an
operation finds the generation changed since this object last saw it, another process has
written, and it restarts the client's Rust bindings under the exclusive lock (~5 ms): the fresh
bindings load the saved index and replay the newer writes from Chroma's log (~0.1 s in all for
10,000 vectors of 384 dimensions). While no other process writes, an operation costs only the
lock. Every operation looks the collection up by name, so a reset elsewhere (which drops the
collection) is seen at once. The client given to the constructor should be this store's alone
(a restart drops its in-memory state); ``open`` creates the client under the lock, because two
processes creating a new store directory at once collide. A Chroma server (``HttpClient``)
serialises writes itself, so no lock is taken for it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings
from chromadb.errors import NotFoundError

from mamabear.errors import StorageError, storage_fault

if TYPE_CHECKING:
    from crewai.memory.types import MemoryRecord, ScopeInfo

DEFAULT_COLLECTION = "mamabear_memory"
DEFAULT_DIM = 3072  # LanceDB's dimension for a store whose first record has no vector
# Item metadata keys (META prefixes each user metadata key) and collection metadata keys.
RECORD, SCOPE, SCOPE_PATHS, CATEGORIES, CREATED = "record", "scope", "scope_paths", "categories", "created_us"
META, META_KEYS = "m:", "meta_keys"
DIMENSION, EMBEDDER = "dimension", "embedder"
_DATETIMES = ("created_at", "last_accessed")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_T = TypeVar("_T")


class EmbedderMismatchError(ValueError):
    """The store was filled by another embedder than the one configured: its vectors are not comparable."""

    def __init__(self, stored: str, configured: str) -> None:
        self.stored, self.configured = stored, configured
        super().__init__(
            f"This memory store was made with the embedder {stored!r}, but {configured!r} is configured now, "
            "and vectors from different embedders cannot be compared. Run `mamabear memory reset --yes` to "
            f"rebuild the store with {configured!r} (its memories are deleted), or configure {stored!r} again."
        )


def _settings() -> Settings:
    return Settings(anonymized_telemetry=False)  # a fresh one each time: Chroma's client factories modify it


def _norm_scope(scope: str) -> str:
    return "/" + "/".join(part for part in scope.split("/") if part)


def _scope_paths(scope: str) -> list[str]:
    parts = [part for part in scope.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _plain(value: Any) -> Any:
    """The value with Python's cross-type equalities (True == 1 == 1.0) folded into one form."""
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _canonical(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True)


def _any(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _metadata_clause(key: Any, value: Any) -> dict[str, Any]:
    clause = {f"{META}{key}": _canonical(value)}
    if value is not None:
        return clause
    return _any([clause, {META_KEYS: {"$not_contains": str(key)}}])


def _where(
    scope_prefix: str | None = None, categories: list[str] | None = None, metadata_filter: dict[str, Any] | None = None, older_than: datetime | None = None
) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    scope = _norm_scope(scope_prefix or "/")
    if scope != "/":
        clauses.append({SCOPE_PATHS: {"$contains": scope}})
    if categories:
        clauses.append(_any([{CATEGORIES: {"$contains": category}} for category in categories]))
    clauses += [_metadata_clause(key, value) for key, value in (metadata_filter or {}).items()]
    if older_than is not None:
        clauses.append({CREATED: {"$lt": _micros(older_than)}})
    if len(clauses) < 2:
        return clauses[0] if clauses else None
    return {"$and": clauses}


def _encode(record: MemoryRecord) -> dict[str, Any]:
    data = record.model_dump(exclude={"embedding"})
    for key in _DATETIMES:
        data[key] = data[key].isoformat()
    if not record.embedding:
        data["embedding"] = record.embedding
    scope = _norm_scope(record.scope)
    meta: dict[str, Any] = {RECORD: json.dumps(data), SCOPE: scope, SCOPE_PATHS: _scope_paths(scope), CREATED: _micros(record.created_at)}
    if record.categories:
        meta[CATEGORIES] = list(record.categories)
    if record.metadata:
        meta[META_KEYS] = [str(key) for key in record.metadata]
        meta.update({f"{META}{key}": _canonical(value) for key, value in record.metadata.items()})
    return meta


def _dimension_mismatch(expected: int, got: int) -> Exception:
    from crewai.memory.storage.backend import EmbeddingDimensionMismatchError  # CrewAI's own, which its Memory expects

    return EmbeddingDimensionMismatchError(expected, got)


def _decode(meta: dict[str, Any], vector: Sequence[float], record_type: Any) -> MemoryRecord:
    data = json.loads(meta[RECORD])
    for key in _DATETIMES:
        data[key] = datetime.fromisoformat(data[key])
    if "embedding" not in data:
        data["embedding"] = [float(x) for x in vector]
    return record_type.model_validate(data)


def _created_at(meta: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(json.loads(meta[RECORD])["created_at"])


def _children(metas: list[dict[str, Any]], parent: str) -> list[str]:
    depth = len(_scope_paths(parent))
    return sorted({paths[depth] for meta in metas if len(paths := _scope_paths(meta[SCOPE])) > depth})


def _batch_dimension(records: list[MemoryRecord]) -> int | None:
    dims = [len(record.embedding) for record in records if record.embedding]
    for dim in dims:
        if dim != dims[0]:
            raise _dimension_mismatch(dims[0], dim)
    return dims[0] if dims else None


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _lock_file(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


def _lock_path(client: ClientAPI) -> Path | None:
    settings = client.get_settings()
    return _lock_file(Path(settings.persist_directory).expanduser().resolve()) if settings.is_persistent else None


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="ascii") as handle:  # an fd per use: flock then also excludes threads
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield handle


def _generation(handle: IO[str]) -> int:
    handle.seek(0)
    text = handle.read().strip()
    return int(text) if text.isdigit() else 0


class ChromaStorage:
    """CrewAI memory records in one Chroma collection; see the module docstring for the encoding."""

    def __init__(self, client: ClientAPI, collection: str = DEFAULT_COLLECTION, embedder: str | None = None, record_type: Any = None) -> None:
        """``record_type``: what records are read back as; CrewAI's MemoryRecord, or memory.record.Record (no CrewAI import)."""
        if record_type is None:
            from crewai.memory.types import MemoryRecord

            record_type = MemoryRecord
        self._client, self._name, self._embedder, self._record_type = client, collection, embedder, record_type
        self._lock = _lock_path(client)
        self._seen: int | None = None  # the lock file's generation our client's state reflects

    @classmethod
    def open(cls, path_or_url: str, collection: str = DEFAULT_COLLECTION, embedder: str | None = None, record_type: Any = None) -> ChromaStorage:
        """A store on a local directory, or on a Chroma server given as ``http(s)://host:port``."""
        url = urlparse(path_or_url)
        if url.scheme in ("http", "https"):
            client = chromadb.HttpClient(host=url.hostname or "localhost", port=url.port or 8000, ssl=url.scheme == "https", settings=_settings())
            return cls(client, collection, embedder, record_type)
        path = Path(path_or_url).expanduser().resolve()
        try:
            with _locked(_lock_file(path), exclusive=True):
                client = chromadb.PersistentClient(path=str(path), settings=_settings())
        except Exception as exc:
            fault = storage_fault(exc) or (exc.strerror if isinstance(exc, OSError) else None)
            if fault is None:
                raise
            raise StorageError(
                f"cannot open the memory at {path} ({fault}); free space or make it writable (a run can go on without memory: --no-memory)."
            ) from exc
        return cls(client, collection, embedder, record_type)

    # -- locking and the collection

    @contextmanager
    def _guard(self, exclusive: bool) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with _locked(self._lock, exclusive) as handle:
            generation = _generation(handle)
            if generation != self._seen and not exclusive:
                fcntl.flock(handle, fcntl.LOCK_EX)  # a restart needs every other user of the client out
                generation = _generation(handle)
            if generation != self._seen:
                self._restart()
            self._seen = generation
            try:
                yield
            finally:
                if exclusive:
                    self._seen = generation + 1
                    handle.seek(0)
                    handle.truncate()
                    handle.write(str(self._seen))
                    handle.flush()

    def _restart(self) -> None:
        """Drop the client's in-memory state (HNSW indexes) so it reloads what other processes wrote."""
        from mamabear.compat.chroma import restart_local

        restart_local(self._client)

    def check_embedder(self) -> None:
        """Raise EmbedderMismatchError now if the store was made by another embedder (before anything is embedded)."""
        with self._guard(exclusive=False):
            collection = self._collection()
            if collection is not None:
                self._stored_dimension(collection, None)

    def _collection(self) -> Any:  # a Collection or None; Any, as its results' unions cannot be narrowed usefully
        try:
            return self._client.get_collection(self._name, embedding_function=None)
        except NotFoundError:
            return None

    def _stored_dimension(self, collection: Collection, dim: int | None) -> int | None:
        """The store's vector dimension, after checking the embedder and ``dim`` against it."""
        meta = collection.metadata or {}
        stored_embedder = meta.get(EMBEDDER)
        if stored_embedder and self._embedder and stored_embedder != self._embedder:
            raise EmbedderMismatchError(stored_embedder, self._embedder)
        stored = meta.get(DIMENSION)
        if stored and dim and dim != stored:
            raise _dimension_mismatch(stored, dim)
        return stored

    def _create(self, dim: int) -> Collection:
        meta: dict[str, Any] = {DIMENSION: dim} | ({EMBEDDER: self._embedder} if self._embedder else {})
        return self._client.get_or_create_collection(self._name, configuration={"hnsw": {"space": "l2"}}, metadata=meta, embedding_function=None)

    def _matching_ids(self, collection: Collection, where: dict[str, Any] | None, ids: list[str] | None) -> list[str]:
        if ids is None:
            return collection.get(where=where, include=[])["ids"]
        unique = list(dict.fromkeys(str(rid) for rid in ids))
        size = self._client.get_max_batch_size()
        return [rid for batch in _chunks(unique, size) for rid in collection.get(ids=batch, where=where, include=[])["ids"]]

    def _fetch(self, collection: Collection, ids: list[str]) -> list[MemoryRecord]:
        """The records with these ids, in this order."""
        found: dict[str, MemoryRecord] = {}
        for batch in _chunks(ids, self._client.get_max_batch_size()):
            rows: Any = collection.get(ids=batch, include=["metadatas", "embeddings"])
            rows_read = zip(rows["ids"], rows["metadatas"], rows["embeddings"], strict=True)
            found.update({rid: _decode(meta, vector, self._record_type) for rid, meta, vector in rows_read})
        return [found[rid] for rid in ids if rid in found]

    def _scan(self, scope_prefix: str | None) -> list[dict[str, Any]]:
        with self._guard(exclusive=False):
            collection = self._collection()
            if collection is None:
                return []
            return list(collection.get(where=_where(scope_prefix), include=["metadatas"])["metadatas"])

    # -- writing

    def save(self, records: list[MemoryRecord]) -> None:
        """Store the records, replacing any stored under the same ids."""
        if not records:
            return
        dim = _batch_dimension(records)
        # Encoded first, so that an unserialisable record fails before anything is written.
        items = [(record, _encode(record)) for record in {record.id: record for record in records}.values()]
        with self._guard(exclusive=True):
            collection: Any = self._collection() or self._create(dim or DEFAULT_DIM)
            stored = self._stored_dimension(collection, dim) or dim or DEFAULT_DIM
            for batch in _chunks(items, self._client.get_max_batch_size()):
                ids = [record.id for record, _ in batch]
                collection.delete(ids=ids)  # upsert would merge the old metadata keys into the new
                collection.add(ids=ids, embeddings=[record.embedding or [0.0] * stored for record, _ in batch], metadatas=[meta for _, meta in batch])

    def update(self, record: MemoryRecord) -> None:
        """Replace the record with the same id (LanceDB's backend deletes it and adds this one)."""
        self.save([record])

    def touch_records(self, record_ids: list[str]) -> None:
        """Set ``last_accessed`` to now (naive UTC, as CrewAI's timestamps) on these records."""
        if not record_ids:
            return
        now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat()
        with self._guard(exclusive=True):
            collection = self._collection()
            if collection is None:
                return
            for batch in _chunks(list(dict.fromkeys(record_ids)), self._client.get_max_batch_size()):
                rows = collection.get(ids=batch, include=["metadatas"])
                if rows["ids"]:
                    touched = [{RECORD: json.dumps({**json.loads(meta[RECORD]), "last_accessed": now})} for meta in rows["metadatas"]]
                    collection.update(ids=rows["ids"], metadatas=touched)

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete the records matching every criterion given (all records if none is); return how many."""
        where = _where(scope_prefix, categories, metadata_filter, older_than)
        with self._guard(exclusive=True):
            collection = self._collection()
            if collection is None:
                return 0
            doomed = self._matching_ids(collection, where, record_ids)
            for batch in _chunks(doomed, self._client.get_max_batch_size()):
                collection.delete(ids=batch)
        return len(doomed)

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete the records in a scope; for the root or None drop the collection, dimension and embedder too."""
        with self._guard(exclusive=True):
            if _norm_scope(scope_prefix or "/") != "/":
                collection = self._collection()
                if collection is not None:
                    collection.delete(where=_where(scope_prefix))
                return
            try:
                self._client.delete_collection(self._name)
            except NotFoundError:
                pass

    # -- reading

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        """The nearest records among those matching the filters, best first, scored ``1 / (1 + squared L2 distance)``."""
        with self._guard(exclusive=False):
            collection = self._collection()
            if collection is None:
                return []
            self._stored_dimension(collection, len(query_embedding))
            if limit <= 0:
                return []
            found = collection.query(
                query_embeddings=[query_embedding],
                n_results=limit,
                where=_where(scope_prefix, categories, metadata_filter),
                include=["metadatas", "embeddings", "distances"],
            )
        hits = zip(found["metadatas"][0], found["embeddings"][0], found["distances"][0], strict=True)
        scored = [(_decode(meta, vector, self._record_type), 1.0 / (1.0 + float(distance))) for meta, vector, distance in hits]
        return [(record, score) for record, score in scored if score >= min_score]

    def get_record(self, record_id: str) -> MemoryRecord | None:
        with self._guard(exclusive=False):
            collection = self._collection()
            records = self._fetch(collection, [record_id]) if collection is not None else []
        return records[0] if records else None

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[MemoryRecord]:
        """The records in a scope and its subscopes, newest first."""
        if limit <= 0 or offset < 0:
            return []
        with self._guard(exclusive=False):
            collection = self._collection()
            if collection is None:
                return []
            rows = collection.get(where=_where(scope_prefix), include=["metadatas"])
            newest = sorted(zip(rows["ids"], rows["metadatas"], strict=True), key=lambda row: row[1][CREATED], reverse=True)
            return self._fetch(collection, [rid for rid, _ in newest[offset : offset + limit]])

    def get_scope_info(self, scope: str) -> ScopeInfo:
        from crewai.memory.types import ScopeInfo

        path = scope.rstrip("/") or "/"
        metas = self._scan(scope)
        if not metas:
            return ScopeInfo(path=path)
        return ScopeInfo(
            path=path,
            record_count=len(metas),
            categories=sorted({category for meta in metas for category in meta.get(CATEGORIES, [])}),
            oldest_record=_created_at(min(metas, key=lambda meta: meta[CREATED])),
            newest_record=_created_at(max(metas, key=lambda meta: meta[CREATED])),
            child_scopes=_children(metas, _norm_scope(scope)),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        """The immediate child scopes of ``parent`` that hold records (directly or below)."""
        return _children(self._scan(parent), _norm_scope(parent))

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        return dict(Counter(category for meta in self._scan(scope_prefix) for category in meta.get(CATEGORIES, [])))

    def count(self, scope_prefix: str | None = None) -> int:
        where = _where(scope_prefix)
        with self._guard(exclusive=False):
            collection = self._collection()
            if collection is None:
                return 0
            return collection.count() if where is None else len(collection.get(where=where, include=[])["ids"])

    # -- async: the sync methods in a worker thread

    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(self.search, query_embedding, scope_prefix, categories, metadata_filter, limit, min_score)

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return await asyncio.to_thread(self.delete, scope_prefix, categories, record_ids, older_than, metadata_filter)
