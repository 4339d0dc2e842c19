"""The parent process of ``dockyard serve``: it forks the workers, restarts a worker that
dies, gives up when workers keep dying, and stops them all on SIGTERM or SIGINT.

The parent never serves; it forks, waits and signals. It blocks SIGCHLD, SIGTERM and
SIGINT and takes them with ``sigtimedwait``, so a signal cannot slip in between looking at
the workers and going to sleep. Each worker starts with the parent's original signal mask
and default handlers, and asks the kernel for SIGTERM when the parent dies.

Restarts (the numbers are :class:`RestartPolicy`'s defaults, documented in
docs/deployment.md): a worker that exits for any reason the parent did not ask for (a
signal, a non-zero status, even status 0) is started again under the same index, after
0.25 s, then 0.5 s, 1 s, ... up to 15 s for each further death of that index; a worker
that lived 30 s starts over at 0.25 s. When max(5, 2 * workers) deaths fall within 60 s
the parent gives up: it stops the other workers and exits with status 1, for a service
manager (systemd's ``Restart=on-failure``) to take over.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("dockyard.supervisor")

# The signals the parent takes with sigtimedwait (blocked, so they wait for it).
HANDLED = frozenset({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})
# Exit status of the parent when it gave up on its workers.
GAVE_UP = 1
# Longest sleep of the parent when nothing is due (it wakes at any signal anyway).
IDLE = 5.0


@dataclass(frozen=True)
class RestartPolicy:
    """When dead workers are started again, and when the parent stops trying."""

    #: wait before the first restart of a worker index; doubles with each further death
    first_delay: float = 0.25
    #: the longest wait before a restart
    max_delay: float = 15.0
    #: a worker that lived this long (seconds) is restarted after ``first_delay`` again
    stable_after: float = 30.0
    #: deaths are counted over this many seconds ...
    window: float = 60.0
    #: ... and the parent gives up at max(min_deaths, 2 * workers) of them
    min_deaths: int = 5
    #: after SIGTERM, workers still running this many seconds later are SIGKILLed
    stop_timeout: float = 30.0

    def death_limit(self, workers: int) -> int:
        return max(self.min_deaths, 2 * workers)


def describe_exit(status: int) -> str:
    """How a process ended, from its ``waitpid`` status: ``was killed by SIGKILL``,
    ``exited with status 1``."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"


def die_with_parent(parent: int) -> bool:
    """Ask Linux to SIGTERM this process when its parent dies, so that a killed parent
    never leaves workers serving the port unsupervised. False when the parent is gone
    already (it died before the request took effect)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    return os.getppid() == parent


@dataclass
class _Slot:
    """One worker index: the process serving it now, and when it is due to start again."""

    index: int
    delay: float
    pid: int = 0  # 0: no process
    started: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """Runs ``run_worker(index)`` in ``workers`` forked processes, index 0 to workers - 1,
    and keeps each index served. A worker's index never changes across restarts, so a
    duty given to one index (the upload purger) stays on exactly one process."""

    def __init__(
        self,
        workers: int,
        run_worker: Callable[[int], None],
        policy: RestartPolicy | None = None,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        """``on_exit(pid)`` is told of every worker that ended (to forget its live
        metrics)."""
        self._policy = policy or RestartPolicy()
        self._on_worker_exit = on_exit
        self._run_worker = run_worker
        self._slots = [_Slot(i, self._policy.first_delay) for i in range(max(workers, 1))]
        self._deaths: collections.deque[float] = collections.deque()
        self._stopping = False
        self._stop_deadline = 0.0
        self._killed = False
        self._status = 0
        self._parent = os.getpid()
        self._child_mask: set[int | signal.Signals] = set()

    def run(self) -> int:
        """Supervise until asked to stop (returns 0) or until giving up (returns 1)."""
        self._parent = os.getpid()
        self._child_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        chld = signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # SIG_IGN would reap for us
        try:
            for slot in self._slots:
                if not self._stopping:  # a fork that failed can make us give up
                    self._start(slot)
            while not self._finished():
                self._wait()
                self._start_due()
            return self._status
        finally:
            self._kill_all(signal.SIGKILL)  # only if run() itself failed
            signal.signal(signal.SIGCHLD, chld)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._child_mask)

    # ---------------------------------------------------------------- the parent's loop

    def _finished(self) -> bool:
        return self._stopping and not any(slot.pid for slot in self._slots)

    def _wait(self) -> None:
        """Sleep until a signal or the next thing due; handle what arrived."""
        info = signal.sigtimedwait(HANDLED, self._timeout())
        if info is not None and info.si_signo != signal.SIGCHLD:
            self._on_stop_signal(signal.Signals(info.si_signo))
        self._reap()
        if self._stopping and not self._killed and time.monotonic() >= self._stop_deadline:
            running = [slot.pid for slot in self._slots if slot.pid]
            if running:
                log.warning(
                    "workers %s still running %.0fs after SIGTERM: killing them",
                    running,
                    self._policy.stop_timeout,
                )
                self._kill_all(signal.SIGKILL)

    def _timeout(self) -> float:
        now = time.monotonic()
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        if self._stopping and not self._killed:
            due.append(self._stop_deadline)
        return min([IDLE, *(max(at - now, 0.0) for at in due)])

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is not None:
                self._on_exit(slot, status)

    def _on_exit(self, slot: _Slot, status: int) -> None:
        pid, slot.pid = slot.pid, 0
        if self._on_worker_exit is not None:
            try:
                self._on_worker_exit(pid)
            except Exception:
                log.exception("after worker %d (pid %d) ended", slot.index, pid)
        how = describe_exit(status)
        if self._stopping:
            log.debug("worker %d (pid %d) %s", slot.index, pid, how)
            return
        self._died(slot, f"worker {slot.index} (pid {pid}) {how}")

    def _died(self, slot: _Slot, what: str) -> None:
        """Count a death of ``slot``'s worker; restart it later, or give up."""
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths[0] < now - self._policy.window:
            self._deaths.popleft()
        limit = self._policy.death_limit(len(self._slots))
        if len(self._deaths) >= limit:
            log.error(
                "%s; giving up: %d worker deaths within %.0fs, "
                "stopping the other workers and exiting with status %d",
                what,
                len(self._deaths),
                self._policy.window,
                GAVE_UP,
            )
            self._status = GAVE_UP
            self._begin_stop()
            return
        if now - slot.started >= self._policy.stable_after:
            slot.delay = self._policy.first_delay
        slot.restart_at = now + slot.delay
        log.warning("%s after %.1fs; restarting it in %.2fs", what, now - slot.started, slot.delay)
        slot.delay = min(slot.delay * 2, self._policy.max_delay)

    def _on_stop_signal(self, signum: signal.Signals) -> None:
        if not self._stopping:
            running = sum(1 for slot in self._slots if slot.pid)
            log.info("%s received: stopping %d worker(s)", signum.name, running)
            self._begin_stop()
        elif not self._killed:
            log.warning("%s received again: killing the workers", signum.name)
            self._kill_all(signal.SIGKILL)

    def _begin_stop(self) -> None:
        self._stopping = True
        self._stop_deadline = time.monotonic() + self._policy.stop_timeout
        for slot in self._slots:
            slot.restart_at = None
        self._kill_all(signal.SIGTERM)

    def _kill_all(self, signum: signal.Signals) -> None:
        if signum == signal.SIGKILL:
            self._killed = True
        for slot in self._slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            due = slot.restart_at is not None and slot.restart_at <= now
            if due and not self._stopping and self._start(slot):
                log.info("worker %d restarted (pid %d)", slot.index, slot.pid)

    def _start(self, slot: _Slot) -> bool:
        sys.stdout.flush()
        sys.stderr.flush()
        slot.started, slot.restart_at = time.monotonic(), None
        try:
            pid = os.fork()
        except OSError as exc:  # out of memory or processes: a death like any other
            self._died(slot, f"worker {slot.index} could not be started ({exc.strerror})")
            return False
        if pid == 0:
            self._become_worker(slot.index)
        slot.pid = pid
        log.debug("worker %d started (pid %d)", slot.index, pid)
        return True

    # ---------------------------------------------------------------- in the worker

    def _become_worker(self, index: int) -> None:
        """Run worker ``index`` in this (forked) process, and exit with its status."""
        status = 1
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._child_mask)
            if not die_with_parent(self._parent):
                status = 0
                return
            self._run_worker(index)
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)
