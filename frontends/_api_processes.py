"""serve's API processes: Python interpreters of their own that answer HTTP on serve's port.

One Python process answers HTTP on one core at most, whatever its thread count: waitress's
I/O thread and its request threads share one interpreter lock, and each status answer's
Redis round trip hands it back and forth. That lock is what held the status route near
1 400 answers/s on two cores while a bare Falcon app answered 3 700 (benchmarks/load.py).
``zoomreel serve --http-processes N`` (N > 1) therefore answers HTTP in N processes of
its own and keeps only the workers and the supervision: a render never holds up an answer.
They own nothing: jobs, keys and files are in Redis and the data dir, shared by all.

Each process listens on the port with ``SO_REUSEPORT``, so Linux spreads the connections
evenly between them (one shared listening socket would not: a burst of connections could
all land in whichever process woke first). serve binds the port first, without listening,
to hold it, after checking that nothing else has it.

:class:`APIProcesses` starts them and waits until each listens, starts again any that dies
or hangs, and stops them with serve; each watches its serve and stops by itself when serve
is gone, even if serve was SIGKILLed.

A process can also stop answering without dying (SIGSTOP, a deadlock, a loop stuck in a
call): the kernel still hands it its share of the connections, which then time out. So
each process and serve share a socket pair: the process says on it that it listens, then
its event loop (waitress's, the one that accepts connections) answers each check serve
sends, every half second. A process that has not answered for ``hang_after`` seconds is
killed and replaced like a dead one. (A request aimed at it over TCP could not check
one process: with ``SO_REUSEPORT`` the kernel picks which one answers.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from zoomreel.errors import InputError

__all__ = ["APIProcesses", "default_count", "bind_shared", "exit_with_parent", "child_argv",
           "answer_checks", "can_share_ports"]

log = logging.getLogger("zoomreel")


def can_share_ports() -> bool:
    """Whether this system spreads connections between sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def default_count() -> int:
    """Processes answering HTTP when not told: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


def bind_shared(host: str, port: int, *, check_free: bool = False) -> list[socket.socket]:
    """Sockets bound to every address of ``host:port`` (as waitress resolves it) with
    ``SO_REUSEPORT``, not listening. Port 0 picks a free port, the same for every address.

    Args:
        check_free: first make sure that no socket at all is bound there: sharing a port
            with another serve of the same user would mix two services.

    Raises:
        InputError: no such host or port, or the address is taken.
    """
    from waitress.adjustments import Adjustments

    try:
        addresses = Adjustments(host=host, port=port).listen
    except ValueError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc}") from None
    sockets: list[socket.socket] = []
    try:
        for family, socktype, proto, address in addresses:
            if sockets:  # port 0: the one the first address got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            if check_free:
                with socket.socket(family, socktype, proto) as probe:
                    _options(probe, family)
                    probe.bind(address)  # fails when anything is bound there
                    address = (address[0], probe.getsockname()[1], *address[2:])
            sock = socket.socket(family, socktype, proto)
            sockets.append(sock)
            _options(sock, family)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
    except BaseException as exc:
        for sock in sockets:
            sock.close()
        if isinstance(exc, OSError):
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        raise
    return sockets


def _options(sock: socket.socket, family: int) -> None:
    """What waitress sets on the sockets it binds itself."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def child_argv() -> list[str]:
    """The command that runs ``zoomreel`` with this interpreter."""
    return [sys.executable, "-m", "zoomreel.frontends.cli"]


#: Seconds between serve's checks of its API processes.
CHECK_EVERY = 0.5
_CHECK, _READY, _ANSWER = b"?", b"1", b"!"


class APIProcesses:
    """``count`` API processes running ``argv`` (plus ``--ready-fd N``) with ``env``.

    Args:
        count: how many to keep running.
        argv: their command line (``zoomreel serve ... --parent-pid PID``).
        env: their environment.
        hang_after: seconds without an answer to serve's checks after which a process
            that listens is taken for hung, killed and replaced.
        start_timeout: seconds a process may take to start listening.
    """

    def __init__(self, count: int, argv: Sequence[str], env: dict[str, str], *,
                 hang_after: float = 5.0, start_timeout: float = 60.0) -> None:
        self.count = count
        self.argv = list(argv)
        self.env = env
        self.hang_after = hang_after
        self.start_timeout = start_timeout
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self._checks: list[socket.socket | None] = [None] * count
        self._heard = [0.0] * count  # when each last answered (or was started)
        self._ready = [False] * count
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start them, wait until each listens, and supervise them from a side thread.

        Raises:
            InputError: one exited, or did not listen within ``start_timeout`` seconds.
        """
        deadline = time.monotonic() + self.start_timeout
        with self._lock:
            for slot in range(self.count):
                self._launch(slot)
        for slot, check in enumerate(self._checks):
            assert check is not None
            left = max(0.0, deadline - time.monotonic())
            if not select.select([check], [], [], left)[0] or check.recv(1) != _READY:
                proc = self.processes[slot]
                status = None if proc is None else proc.poll()
                self._close_checks()
                raise InputError("an API process did not start" + (
                    " in time" if status is None else f" (exit status {status})"))
            self._ready[slot] = True
            self._heard[slot] = time.monotonic()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="api-supervisor")
        self._watcher.start()

    def _launch(self, slot: int) -> None:
        """Start the process of ``slot``, with its end of a new check socket pair."""
        ours, theirs = socket.socketpair()
        try:
            # A session of their own: a terminal's Ctrl-C reaches serve alone, which
            # then stops them in order.
            self.processes[slot] = subprocess.Popen(
                [*self.argv, "--ready-fd", str(theirs.fileno())], env=self.env,
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        old = self._checks[slot]
        if old is not None:
            old.close()
        self._checks[slot] = ours
        self._ready[slot] = False
        self._heard[slot] = time.monotonic()

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_EVERY):
            with self._lock:
                for slot, proc in enumerate(self.processes):
                    if self._stopping.is_set() or proc is None:
                        continue
                    if proc.poll() is not None:  # poll() reaps a dead child: no zombie
                        log.error("API process %d exited (status %s); starting another",
                                  proc.pid, proc.returncode)
                    elif not self._answers(slot):
                        log.error("API process %d has not answered for %.0f s; killing it "
                                  "and starting another", proc.pid,
                                  time.monotonic() - self._heard[slot])
                        proc.kill()  # SIGKILL ends a stopped process too
                        proc.wait()
                    else:
                        continue
                    try:
                        self._launch(slot)  # it answers once it has started
                    except OSError as exc:
                        log.error("could not start an API process: %s", exc)

    def _answers(self, slot: int) -> bool:
        """Read what the process of ``slot`` said, send it the next check; False once it
        has been silent too long (``hang_after``, or ``start_timeout`` while starting)."""
        check = self._checks[slot]
        now = time.monotonic()
        assert check is not None
        try:
            said = check.recv(4096)
        except BlockingIOError:
            said = b""
        except OSError:  # its end is closed: it is ending (poll() will see it)
            said = b""
        if said:
            self._heard[slot] = now
            self._ready[slot] = True
        limit = self.hang_after if self._ready[slot] else self.start_timeout
        if now - self._heard[slot] > limit:
            return False
        if self._ready[slot]:
            with contextlib.suppress(OSError):  # full or closed: it is not reading
                check.send(_CHECK)
        return True

    def terminate(self) -> None:
        """Stop supervising and SIGTERM them all (:meth:`wait` for them to end)."""
        self._stopping.set()
        with self._lock:
            for proc in self.processes:
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds in all for them to end; SIGKILL what is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for proc in self.processes:
                if proc is None:
                    continue
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("API process %d did not stop in time; killing it", proc.pid)
                    proc.kill()
                    proc.wait()
            self._close_checks()

    def _close_checks(self) -> None:
        for slot, check in enumerate(self._checks):
            if check is not None:
                check.close()
                self._checks[slot] = None


def answer_checks(fd: int | None, socket_map: dict[int, Any]) -> None:
    """In an API process: tell serve, on its check socket ``fd``, that it listens; then
    answer each of serve's checks from the event loop of ``socket_map`` (waitress's),
    so that the answers stop when that loop stops turning."""
    if fd is None:
        return
    from waitress import wasyncore

    class CheckAnswers(wasyncore.dispatcher):  # type: ignore[misc]  # waitress: no type hints
        def handle_read(self) -> None:
            if self.recv(64):  # b"" once serve is gone: closed (exit_with_parent stops us)
                self.send(_ANSWER)

        def writable(self) -> bool:
            return False

        def handle_close(self) -> None:
            self.close()

    check = socket.socket(fileno=fd)
    try:
        check.sendall(_READY)
    except OSError:  # serve stopped waiting: nobody reads
        check.close()
        return
    CheckAnswers(check, socket_map)


def exit_with_parent(parent: int, every: float = 0.5) -> None:
    """In an API process: SIGTERM this process once the serve that started it (process
    id ``parent``) is gone, so that none outlives a killed serve; at once if it is gone
    already (it can die while this one starts)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        log.warning("serve (pid %d) is gone; this API process stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
