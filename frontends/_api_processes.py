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

:class:`APIProcesses` starts them and waits until each listens, starts again any that dies,
and stops them with serve; each watches its serve and stops by itself when serve is gone,
even if serve was SIGKILLed.
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

from zoomreel.errors import InputError

__all__ = ["APIProcesses", "default_count", "bind_shared", "exit_with_parent", "child_argv",
           "report_ready", "can_share_ports"]

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


class APIProcesses:
    """``count`` API processes running ``argv`` (plus ``--ready-fd N``) with ``env``.

    Args:
        count: how many to keep running.
        argv: their command line (``zoomreel serve ... --parent-pid PID``).
        env: their environment.
    """

    def __init__(self, count: int, argv: Sequence[str], env: dict[str, str]) -> None:
        self.count = count
        self.argv = list(argv)
        self.env = env
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start them, wait until each listens, and supervise them from a side thread.

        Raises:
            InputError: one exited, or did not listen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            ready = [self._launch(slot) for slot in range(self.count)]
        try:
            for slot, fd in enumerate(ready):
                left = max(0.0, deadline - time.monotonic())
                if not select.select([fd], [], [], left)[0] or os.read(fd, 1) != b"1":
                    proc = self.processes[slot]
                    status = None if proc is None else proc.poll()
                    raise InputError("an API process did not start" + (
                        " in time" if status is None else f" (exit status {status})"))
        finally:
            for fd in ready:
                os.close(fd)
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="api-supervisor")
        self._watcher.start()

    def _launch(self, slot: int) -> int:
        """Start the process of ``slot``; return the pipe it says it listens on."""
        read_fd, write_fd = os.pipe()
        try:
            # A session of their own: a terminal's Ctrl-C reaches serve alone, which
            # then stops them in order.
            self.processes[slot] = subprocess.Popen(
                [*self.argv, "--ready-fd", str(write_fd)], env=self.env,
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return read_fd

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            with self._lock:
                for slot, proc in enumerate(self.processes):
                    if self._stopping.is_set() or proc is None or proc.poll() is None:
                        continue  # poll() reaps a dead child: no zombie is left
                    log.error("API process %d exited (status %s); starting another",
                              proc.pid, proc.returncode)
                    try:
                        os.close(self._launch(slot))  # it answers once it has started
                    except OSError as exc:
                        log.error("could not start an API process: %s", exc)

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


def report_ready(fd: int | None) -> None:
    """In an API process: tell serve (on the pipe ``fd``) that it listens."""
    if fd is None:
        return
    with contextlib.suppress(OSError):  # serve stopped waiting: nobody reads
        os.write(fd, b"1")
    with contextlib.suppress(OSError):
        os.close(fd)


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
