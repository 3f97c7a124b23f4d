"""A per-process cache of the public catalogue's answers (`GET /api/listings` and the anonymous
`/shop` page), so that a repeated read costs no database round trip and no rendering.

Correctness with several server processes on several hosts:

- Within a process, every committed transaction that wrote a listing or a store (ORM objects
  flushed, or an ORM-enabled `update()`/`delete()`/`insert()` on those tables, such as the
  stock taken by a checkout) bumps that engine's catalogue generation when it ends; an entry
  made under an older generation is never served again. The generation is read *before* the
  entry's query runs, so an entry read before a concurrent commit is stamped with the old
  generation and dropped.
- Another process's writes (another `souq serve`, a `souq worker` applying a webhook, a
  `souq` command, a direct SQL change) are not seen until the entry's age passes
  `CATALOGUE_CACHE_SECONDS` (default 1 s), measured from before its query: a change committed
  at time T is served by every process from T + CATALOGUE_CACHE_SECONDS at the latest. That
  is the staleness bound; 0 turns the cache off. A buyer never pays a stale price or buys a
  deactivated listing on it: checkout reads the listing under its own lock.

Entries are kept least recently used first within `CATALOGUE_CACHE_MAX_BYTES`, so cursors and
store ids a client invents cannot grow the process without bound. Concurrent misses on one key
wait for one load instead of each running the query."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from itertools import chain
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from starlette.requests import Request

from souq.listings.models import Listing
from souq.stores.models import Store

CATALOGUE_TABLES = frozenset({Listing.__tablename__, Store.__tablename__})
_CHANGED = "souq.catalogue_changed"

# Per engine, so that two apps in one process (as in the tests) behave as two processes would.
_generations: WeakKeyDictionary[Engine, int] = WeakKeyDictionary()


def generation(engine: Engine) -> int:
    """How many transactions that changed the catalogue have ended on `engine` in this process."""
    return _generations.get(engine, 0)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    # After a flush the session's new/dirty/deleted still list what was flushed.
    objects = chain(session.new, session.dirty, session.deleted)
    if any(isinstance(obj, (Listing, Store)) for obj in objects):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in CATALOGUE_TABLES:
            state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # Only the outermost transaction: a savepoint's release is not yet visible to others.
    # A rollback bumps too (the flag cannot tell what the savepoints kept): a spare reload.
    if transaction.parent is not None or transaction.nested:
        return
    if session.info.pop(_CHANGED, False) and isinstance(session.bind, Engine):
        _generations[session.bind] = generation(session.bind) + 1


T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    value: T
    generation: int
    born: float
    size: int


@dataclass(frozen=True)
class Page:
    """A cached JSON answer: its bytes and their entity tag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Page:
        return cls(body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')

    def matches(self, if_none_match: str | None) -> bool:
        """Whether a request's If-None-Match names this answer (weak comparison, RFC 9110
        §13.1.2: a GET may answer 304 for a weak match)."""
        if not if_none_match:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or self.etag in tags


class CatalogueCache:
    """The entries of one process (one app), for one engine."""

    def __init__(self, engine: Engine, *, seconds: float, max_bytes: int) -> None:
        self.engine = engine
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.clock: Callable[[], float] = time.monotonic
        self._entries: OrderedDict[Hashable, Entry[Any]] = OrderedDict()
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._bytes = 0

    def _fresh(self, key: Hashable) -> Entry[Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.generation != generation(self.engine) or (
            self.clock() - entry.born >= self.seconds
        ):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def get(self, key: Hashable, load: Callable[[], Awaitable[tuple[T, int]]]) -> T:
        """The value under `key`, loaded by `load` (the value and its size in bytes) when
        missing, stale or made before a catalogue change."""
        if self.seconds <= 0:
            return (await load())[0]
        entry = self._fresh(key)
        if entry is not None:
            value: T = entry.value
            return value
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                entry = self._fresh(key)
                if entry is not None:
                    value = entry.value
                    return value
                stamp, born = generation(self.engine), self.clock()
                value, size = await load()
                self._store(key, Entry(value, stamp, born, size))
                return value
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def _store(self, key: Hashable, entry: Entry[Any]) -> None:
        if entry.size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size


def catalogue_cache(request: Request) -> CatalogueCache:
    """The app's cache, made on first use (the engine exists once the app has started)."""
    state = request.app.state
    cache: CatalogueCache | None = getattr(state, "catalogue_cache", None)
    if cache is None:
        settings = state.settings
        cache = CatalogueCache(
            state.engine.sync_engine,
            seconds=settings.catalogue_cache_seconds,
            max_bytes=settings.catalogue_cache_max_bytes,
        )
        state.catalogue_cache = cache
    return cache
