"""Webhook receivers that hang hold only their own deliveries.

A delivery holds a webhook thread until its receiver answers, for up to the delivery
time-out (15 s). With four threads, eight receivers that never answered held every
thread and a healthy receiver's webhook waited 26 s, longer with each more. So there
are many threads, and each process counts its deliveries in flight per receiver: the
URL without its query (one endpoint, whatever it is told about the job; two paths of
one server are two receivers, so that a path that hangs holds up no other).

* a receiver whose last attempt was answered within :data:`SLOW_S` seconds may have
  :data:`PER_RECEIVER` deliveries in flight; one not seen yet, one;
* one whose last attempt took :data:`SLOW_S` seconds or more (it hung, or answers that
  slowly), one, and all such receivers together at most half the threads.

A webhook whose receiver has no room is not attempted: its message comes back after
:func:`Receivers.busy_delay_ms`, and no attempt is counted. So receivers hanging for
the first time hold one thread each until their attempts time out, receivers known to
hang half of the threads at most however many they are, and the other threads stay
free for the receivers that answer.

The counts are this process's: each process (serve, each ``zoomreel worker``) keeps
its own.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["PER_RECEIVER", "SLOW_S", "Receivers", "receiver_of"]

#: Deliveries in flight to one receiver that answers at most (per process).
PER_RECEIVER = 2
#: An attempt that takes this long (seconds) marks its receiver slow until one does not.
SLOW_S = 5.0
# A webhook whose receiver is busy comes back after about this long (ms): soon for a
# receiver that answers (its deliveries end quickly), later for a slow one.
_BUSY_MS = 1_000
_SLOW_BUSY_MS = 5_000


def receiver_of(url: str) -> str:
    """The receiver of a webhook URL: its scheme, host, port and path."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").rstrip(".").lower()
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{host}:{port}{parts.path or '/'}"


@dataclass
class _Receiver:
    in_flight: int = 0
    answers: bool = False  # its last attempt was answered within SLOW_S
    slow: bool = False  # its last attempt took SLOW_S or more
    slow_in_flight: int = 0  # of in_flight, those taken while it was slow


#: Receivers remembered at most; past it, those with nothing in flight are forgotten.
_REMEMBERED = 10_000


class Receivers:
    """Deliveries in flight per receiver, in one process.

    Args:
        threads: the process's webhook threads; slow receivers share half of them.
    """

    def __init__(self, threads: int = 32) -> None:
        self.threads = threads
        self._receivers: dict[str, _Receiver] = {}
        self._slow_in_flight = 0
        self._lock = threading.Lock()

    def take(self, url: str) -> bool:
        """Take a delivery slot for ``url``'s receiver; False when it has none free
        (call :meth:`give_back` after each True)."""
        key = receiver_of(url)
        with self._lock:
            receiver = self._receivers.get(key)
            if receiver is None:
                if len(self._receivers) >= _REMEMBERED:
                    self._forget_idle()
                receiver = self._receivers[key] = _Receiver()
            if receiver.slow:
                if receiver.in_flight >= 1 or self._slow_in_flight >= max(1, self.threads // 2):
                    return False
                self._slow_in_flight += 1
                receiver.slow_in_flight += 1
            elif receiver.in_flight >= (PER_RECEIVER if receiver.answers else 1):
                return False
            receiver.in_flight += 1
            return True

    def give_back(self, url: str, seconds: float) -> None:
        """Give back a slot taken for ``url``, whose attempt took ``seconds``."""
        key = receiver_of(url)
        with self._lock:
            receiver = self._receivers[key]
            receiver.in_flight -= 1
            if receiver.slow_in_flight:
                receiver.slow_in_flight -= 1
                self._slow_in_flight -= 1
            receiver.slow = seconds >= SLOW_S  # the last attempt tells
            receiver.answers = not receiver.slow

    def _forget_idle(self) -> None:
        for key in [k for k, r in self._receivers.items() if not r.in_flight]:
            del self._receivers[key]

    def is_slow(self, url: str) -> bool:
        """Whether ``url``'s receiver is marked slow."""
        with self._lock:
            receiver = self._receivers.get(receiver_of(url))
            return receiver is not None and receiver.slow

    def busy_delay_ms(self, url: str) -> int:
        """How long a webhook whose receiver has no free slot waits before it is looked
        at again, with jitter so that they do not all come back at once."""
        base = _SLOW_BUSY_MS if self.is_slow(url) else _BUSY_MS
        return int(base * random.uniform(0.5, 1.5))

