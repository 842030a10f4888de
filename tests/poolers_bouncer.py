"""A real PgBouncer (Debian's /usr/sbin/pgbouncer, 1.18 on bookworm) for tests and captures.

PgBouncer refuses to run as root, so as root it runs as the unprivileged `pgadvisor` user that
`advisor.pgserver` creates for PostgreSQL. Missing binary: skip locally, fail under CI=true
(same policy as `require_server`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest

from advisor.pgserver import SERVER_USER, PgServer, _ensure_system_user, _free_port
from tests.conftest import unavailable

PGBOUNCER = os.environ.get("ADVISOR_PGBOUNCER", "/usr/sbin/pgbouncer")
INSTALL_HINT = "PgBouncer is not installed: apt-get install pgbouncer"


def require_pgbouncer() -> str:
    if os.access(PGBOUNCER, os.X_OK):
        return PGBOUNCER
    unavailable(INSTALL_HINT)


class PgBouncer:
    """One PgBouncer process in front of `pg`, with trust auth on 127.0.0.1 and `postgres` as
    admin user. `databases` maps a client db name to extra connection-string keys."""

    def __init__(
        self,
        pg: PgServer,
        *,
        settings: Mapping[str, str | int] | None = None,
        databases: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        logins: tuple[str, ...] = (),
        nofile: int | None = None,
    ) -> None:
        self.pg = pg
        self.binary = require_pgbouncer()
        self.settings = dict(settings or {})
        self.databases = dict(databases or {"postgres": ""})
        self.users = dict(users or {})
        self.logins = ("postgres", *logins)  # auth_file entries (trust still checks the name)
        self.nofile = nofile  # soft RLIMIT_NOFILE for the process (PB04)
        self.port = 0
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ini_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "pgbouncer.ini"

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "pgbouncer.log"

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    @property
    def admin_dsn(self) -> str:
        return self.dsn("pgbouncer")

    def ini_text(self) -> str:
        assert self.tmp is not None
        lines = ["[databases]"]
        for name, extra in self.databases.items():
            lines.append(
                f"{name} = host=127.0.0.1 port={self.pg.port} dbname=postgres {extra}".rstrip()
            )
        if self.users:
            lines += ["", "[users]"] + [f"{u} = {v}" for u, v in self.users.items()]
        base: dict[str, str | int] = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.tmp / "userlist.txt"),
            "admin_users": "postgres",
            "stats_users": "postgres",
            "logfile": str(self.log_path),
            "pidfile": str(self.tmp / "pgbouncer.pid"),
            "ignore_startup_parameters": "extra_float_digits",
        }
        base.update(self.settings)
        lines += ["", "[pgbouncer]"] + [f"{k} = {v}" for k, v in base.items()]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> PgBouncer:
        self.tmp = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.port = _free_port()
        (self.tmp / "userlist.txt").write_text("".join(f'"{u}" ""\n' for u in self.logins))
        self.ini_path.write_text(self.ini_text())
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = _ensure_system_user(SERVER_USER)
            for p in (self.tmp, *self.tmp.iterdir()):
                os.chown(p, user.pw_uid, user.pw_gid)
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        if self.nofile is not None:
            soft = self.nofile

            def limit() -> None:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

            kwargs["preexec_fn"] = limit
        self.proc = subprocess.Popen(
            [self.binary, str(self.ini_path)],
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **kwargs,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.read_log()
                self.stop()
                raise RuntimeError(f"pgbouncer exited at start:\n{log}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("pgbouncer did not listen in time")

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # SIGINT: safe shutdown of pgbouncer
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def make_bouncer() -> Iterator[Callable[..., PgBouncer]]:
    """Factory: `make_bouncer(pg, settings={...}, databases={...})` -> started PgBouncer."""
    started: list[PgBouncer] = []

    def make(pg: PgServer, **kwargs: Any) -> PgBouncer:
        b = PgBouncer(pg, **kwargs).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


CGROUP = Path("/sys/fs/cgroup")


def _cpu_cgroup_base() -> tuple[Path, str] | None:
    """Where a CPU-limited cgroup can be made: (parent dir, "v1"|"v2"), or None."""
    if (CGROUP / "cgroup.controllers").is_file():  # pure v2
        try:
            if "cpu" not in (CGROUP / "cgroup.subtree_control").read_text().split():
                (CGROUP / "cgroup.subtree_control").write_text("+cpu")
        except OSError:
            return None
        return CGROUP, "v2"
    for name in ("cpu", "cpu,cpuacct"):
        if (CGROUP / name / "cpu.cfs_quota_us").is_file():
            return CGROUP / name, "v1"
    return None


@contextmanager
def cpu_quota(pid: int, cores: float) -> Iterator[None]:
    """Move `pid` into a new cgroup whose CPU quota is `cores` (a container's limit). Skips
    when cgroups cannot be written here (not root, read-only /sys/fs/cgroup): a capability
    of the machine, not a package CI could install."""
    base = _cpu_cgroup_base()
    if base is None or os.geteuid() != 0:
        unavailable("needs root and a writable cgroup cpu controller (/sys/fs/cgroup)")
    parent, kind = base
    cg = parent / f"advisor-pgbouncer-{pid}"
    try:
        cg.mkdir()
        period = 100_000
        if kind == "v2":
            (cg / "cpu.max").write_text(f"{int(cores * period)} {period}")
        else:
            (cg / "cpu.cfs_quota_us").write_text(str(int(cores * period)))
        (cg / "cgroup.procs").write_text(str(pid))
    except OSError as exc:
        with contextlib.suppress(OSError):
            cg.rmdir()
        unavailable(f"cannot make a CPU-limited cgroup here: {exc}")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            for p in (cg / "cgroup.procs").read_text().split():
                (parent / "cgroup.procs").write_text(p)
        with contextlib.suppress(OSError):
            cg.rmdir()


@contextmanager
def looping(dsns: list[str], body: Callable[[psycopg.Connection[Any]], object]) -> Iterator[None]:
    """One thread per DSN, each running `body` on its own connection until the block ends."""
    stop = threading.Event()

    def worker(dsn: str) -> None:
        with suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                body(conn)

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in dsns]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(10)
