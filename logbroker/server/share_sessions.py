"""Share sessions (SHARE_GROUPS.md §3.8): the ShareFetch / ShareAcknowledge session rules, sans-I/O.

One session per **(group id, member id)** on this server.  It holds the set of partitions (topic id,
partition index) the member fetches here, the **next expected epoch**, and the connection that created
it (an opaque owner; only identity is used).  The rules, exactly as Kafka's share session cache:

* ShareFetch epoch **0** creates a session with the partitions of the request, replacing any session
  of the same key (that one *ends*); the next expected epoch is 1.  A new key beyond ``max_sessions``
  (Kafka's ``group.share.max.share.sessions``, 2000) is SHARE_SESSION_LIMIT_REACHED (133).
* Epoch **N > 0** (ShareFetch or ShareAcknowledge): no session is SHARE_SESSION_NOT_FOUND (122); N not the
  expected epoch is INVALID_SHARE_SESSION_EPOCH (123).  Accepted, the expected epoch becomes N + 1,
  wrapping from 2147483647 to 1 -- whatever then happens to the request, since librdkafka advances
  its own epoch after every answer (§5.2).
* Epoch **-1** (final): the session must exist (else 122); it ends with this request.
* ShareAcknowledge epoch **0** is INVALID_SHARE_SESSION_EPOCH; an epoch below -1 is too, everywhere.
* ShareFetch changes the partition set: partitions of ``topics`` are added, ``forgotten_topics_data``
  removed, in that order; an empty ``topics`` changes nothing.  ShareAcknowledge never changes it.
* When the connection that created a session closes, the session ends (``connection_closed``).

An ended session is returned to the caller (``SessionStep.ended``, ``connection_closed``), whose job is
to release the member's acquired records (``ShareGroupService.release_member``) -- after whatever work
of that session is still in flight (``ShareSession.inflight``, filled by the caller).
"""

from __future__ import annotations

import itertools

from typing import Iterable, NamedTuple

NONE = 0
SHARE_SESSION_NOT_FOUND = 122
INVALID_SHARE_SESSION_EPOCH = 123
SHARE_SESSION_LIMIT_REACHED = 133
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
MAX_EPOCH = 2**31 - 1
DEFAULT_MAX_SESSIONS = 2000  # group.share.max.share.sessions

__all__ = ["DEFAULT_MAX_SESSIONS", "FINAL_EPOCH", "INITIAL_EPOCH", "INVALID_SHARE_SESSION_EPOCH", "MAX_EPOCH",
           "SHARE_SESSION_LIMIT_REACHED", "SHARE_SESSION_NOT_FOUND", "SessionStep", "ShareSession",
           "ShareSessionCache", "next_epoch"]


def next_epoch(epoch: int) -> int:
    """The epoch expected after ``epoch`` was accepted: N + 1, and 1 after 2147483647 (0 is "new")."""
    return 1 if epoch >= MAX_EPOCH else epoch + 1


_TOKENS = itertools.count(1)


class ShareSession:
    __slots__ = ("group", "member_id", "owner", "next_epoch", "partitions", "ended", "inflight", "token")

    def __init__(self, group: str, member_id: str, owner, partitions: Iterable = ()):
        self.token = next(_TOKENS)  # tags the records this session acquires: its release frees only those
        self.group = group
        self.member_id = member_id
        self.owner = owner
        self.next_epoch = 1
        self.partitions: dict = dict.fromkeys(partitions)  # (topic id, partition) -> None, in arrival order
        self.ended = False
        self.inflight: set = set()  # the caller's unfinished work for this session (futures)

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.member_id)

    def update(self, added: Iterable = (), forgotten: Iterable = ()) -> None:
        """Add ``added`` (those already in keep their place), then remove ``forgotten``."""
        for key in added:
            self.partitions.setdefault(key, None)
        for key in forgotten:
            self.partitions.pop(key, None)

    def __repr__(self) -> str:
        state = "ended" if self.ended else f"next epoch {self.next_epoch}"
        return f"<ShareSession {self.group!r}/{self.member_id!r} {state}, {len(self.partitions)} partitions>"


class SessionStep(NamedTuple):
    error_code: int  # 0, or the request's top-level error (then nothing else happened)
    session: ShareSession | None  # the session the request works on
    ended: list  # sessions that ended through this step: release their members
    final: bool = False  # epoch -1: ``session`` ended with this request (and is in ``ended``)


class ShareSessionCache:
    """The share sessions of one server.  Not thread-safe: the server uses it from its event loop."""

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS):
        self.max_sessions = max_sessions
        self._sessions: dict[tuple[str, str], ShareSession] = {}
        self._by_owner: dict[int, set[tuple[str, str]]] = {}  # id(owner) -> keys of the sessions it created

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, key) -> bool:
        return key in self._sessions

    def get(self, group: str, member_id: str) -> ShareSession | None:
        return self._sessions.get((group, member_id))

    def share_fetch(self, group: str, member_id: str, epoch: int, owner, partitions: Iterable = ()) -> SessionStep:
        """The session step of a ShareFetch; epoch 0 creates the session with ``partitions``."""
        if epoch == INITIAL_EPOCH:
            key = (group, member_id)
            ended = []
            old = self._sessions.get(key)
            if old is not None:
                ended.append(self._end(old))
            elif len(self._sessions) >= self.max_sessions:
                return SessionStep(SHARE_SESSION_LIMIT_REACHED, None, [])
            session = ShareSession(group, member_id, owner, partitions)
            self._sessions[key] = session
            self._by_owner.setdefault(id(owner), set()).add(key)
            return SessionStep(NONE, session, ended)
        return self._existing(group, member_id, epoch)

    def share_acknowledge(self, group: str, member_id: str, epoch: int) -> SessionStep:
        """The session step of a ShareAcknowledge (epoch 0 cannot open a session)."""
        if epoch == INITIAL_EPOCH:
            return SessionStep(INVALID_SHARE_SESSION_EPOCH, None, [])
        return self._existing(group, member_id, epoch)

    def _existing(self, group: str, member_id: str, epoch: int) -> SessionStep:
        session = self._sessions.get((group, member_id))
        if epoch < FINAL_EPOCH:
            return SessionStep(INVALID_SHARE_SESSION_EPOCH, None, [])
        if session is None:
            return SessionStep(SHARE_SESSION_NOT_FOUND, None, [])
        if epoch == FINAL_EPOCH:
            return SessionStep(NONE, session, [self._end(session)], True)
        if epoch != session.next_epoch:
            return SessionStep(INVALID_SHARE_SESSION_EPOCH, None, [])
        session.next_epoch = next_epoch(epoch)
        return SessionStep(NONE, session, [])

    def connection_closed(self, owner) -> list[ShareSession]:
        """The sessions ``owner`` created (and that were not replaced since) end."""
        keys = self._by_owner.pop(id(owner), set())
        ended = []
        for key in sorted(keys):
            session = self._sessions.get(key)
            if session is not None and session.owner is owner:
                ended.append(self._end(session))
        return ended

    def close_all(self) -> list[ShareSession]:
        """Every session ends (server shutdown)."""
        return [self._end(session) for session in list(self._sessions.values())]

    def _end(self, session: ShareSession) -> ShareSession:
        key = session.key
        if self._sessions.get(key) is session:
            del self._sessions[key]
        keys = self._by_owner.get(id(session.owner))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_owner[id(session.owner)]
        session.ended = True
        return session
