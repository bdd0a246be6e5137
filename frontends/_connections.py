"""Connections that send no request cannot lock other clients out of an API process.

waitress serves at most ``connection_limit`` connections per process (100 by default)
and, once that many are open, stops accepting: about 200 idle sockets from one address,
or as many sending their request head a byte at a time (slowloris), locked every user of
a two-process serve out, without a key. Here each API process instead:

* accepts up to :data:`MAX_CONNECTIONS` (fewer where the open-files limit is lower),
  polling them with ``poll()`` (``select()`` stops at file descriptor 1024);
* keeps at most :data:`PER_ADDRESS` connections of one address that have no request in
  hand, and :data:`MAX_CONNECTIONS` in all: a new connection over either closes the
  oldest such one (of that address first). A connection whose request is read, being
  answered or waiting for its video (the upstream toolkit's synchronous call) is never
  closed for this; a client's newest connection is the last to go, so a fresh client
  always gets in, even from the flooding address (a reverse proxy's);
* closes a connection whose request head (request line and headers) is not complete
  :data:`HEAD_TIMEOUT_S` seconds after its first byte.

What this does not do, and a reverse proxy in front of a public deployment does: limit
connections and request rates per client, buffer slow request bodies, and hold far more
idle connections than a Python process can (docs/operations.md,
"Behind a reverse proxy").
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections import OrderedDict
from typing import Any

__all__ = ["MAX_CONNECTIONS", "PER_ADDRESS", "HEAD_TIMEOUT_S", "ConnectionGuard",
           "open_files_for"]

log = logging.getLogger("zoomreel")

#: Connections one API process holds at most (fewer where the open-files limit is lower).
MAX_CONNECTIONS = 1000
#: Connections of one address without a request in hand that one API process keeps.
PER_ADDRESS = 200
#: Seconds a request head may take from its first byte to its last.
HEAD_TIMEOUT_S = 10.0
# Files a process needs besides its connections: Redis, logs, uploads, videos, ...
_OTHER_FILES = 64


def open_files_for(connections: int) -> int:
    """Raise this process's open-files limit (soft, up to hard) to fit ``connections``
    connections; return how many it fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + _OTHER_FILES
    if soft != resource.RLIM_INFINITY and soft < want:
        raised = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit to %d: %s", raised, exc)
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(1, min(connections, soft - _OTHER_FILES))


class ConnectionGuard:
    """The connections of one process's waitress server, oldest first, per address.

    Args:
        limit: connections held at most; a new one over it closes the oldest idle one.
        per_address: idle connections kept per address; a new one over it closes that
            address's oldest idle one.
        head_timeout: seconds a request head may take from its first byte.
    """

    def __init__(self, limit: int = MAX_CONNECTIONS, per_address: int = PER_ADDRESS,
                 head_timeout: float = HEAD_TIMEOUT_S) -> None:
        self.limit = limit
        self.per_address = per_address
        self.head_timeout = head_timeout
        self._all: OrderedDict[Any, None] = OrderedDict()
        self._by_address: dict[str, OrderedDict[Any, None]] = {}
        self._lock = threading.Lock()
        self.closed = 0  # connections closed to make room, for the log and the tests

    def channel_class(self, base: type) -> type:
        """A channel class (waitress's ``HTTPChannel`` or a subclass) with this guard's
        rules."""
        guard = self

        class GuardedChannel(base):  # type: ignore[misc]
            head_started: float | None = None

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                guard.admit(self)

            def received(self, data: bytes) -> bool:
                started = self.head_started or time.monotonic()
                result: bool = super().received(data)
                partial = self.request is not None and not self.request.headers_finished
                self.head_started = started if partial else None
                return result

            def readable(self) -> bool:
                if self.head_started is not None:
                    now = time.monotonic()
                    if self.requests:  # a head pipelined behind an answer: not read yet
                        self.head_started = now
                    elif now - self.head_started > guard.head_timeout:
                        self.head_started = None
                        self.will_close = True  # closed by the loop, as its own time-out
                return bool(super().readable())

            def del_channel(self, map: Any = None) -> None:
                guard.forget(self)
                super().del_channel(map)

        return GuardedChannel

    def admit(self, channel: Any) -> None:
        """Count a new connection; close the oldest idle ones over the limits."""
        address = _address_of(channel)
        with self._lock:
            mine = self._by_address.setdefault(address, OrderedDict())
            mine[channel] = None
            self._all[channel] = None
            if len(mine) > self.per_address:
                self._close_oldest(mine, channel)
            if len(self._all) > self.limit:
                self._close_oldest(self._all, channel)

    def forget(self, channel: Any) -> None:
        """A connection closed."""
        with self._lock:
            self._drop(channel)

    def _drop(self, channel: Any) -> None:
        self._all.pop(channel, None)
        address = _address_of(channel)
        mine = self._by_address.get(address)
        if mine is not None:
            mine.pop(channel, None)
            if not mine:
                del self._by_address[address]

    def _close_oldest(self, channels: OrderedDict[Any, None], newest: Any) -> None:
        for channel in channels:
            if channel is not newest and _idle(channel):
                channel.will_close = True  # the loop closes it at its next turn
                self._drop(channel)
                self.closed += 1
                if self.closed in (1, 100) or self.closed % 10_000 == 0:
                    log.warning("connections without a request closed to make room: %d "
                                "so far (one address holds %d)", self.closed,
                                len(self._by_address.get(_address_of(channel), ())))
                return


def _address_of(channel: Any) -> str:
    addr = getattr(channel, "addr", None)
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


def _idle(channel: Any) -> bool:
    """Whether a connection has no request in hand: none read, answered or being sent,
    and no request body coming in (an upload is never cut off for this)."""
    request = channel.request
    return bool(not channel.requests and not channel.total_outbufs_len
                and not channel.will_close
                and (request is None or not request.headers_finished))
