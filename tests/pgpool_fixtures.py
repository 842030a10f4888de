"""A real pgpool-II in front of a real primary and a real streaming standby, for the PP tests
and for scripts/capture_pgpool_snapshots.py.

`PgpoolCluster(conf_overrides)` starts PostgreSQL 15 (Debian) as primary, clones it with
`pg_basebackup -R` into a hot standby, and starts Debian's `/usr/sbin/pgpool` (4.3.5) in
streaming-replication mode with load balancing, everything in one temp dir owned by the
unprivileged server user when we are root. pgpool runs in the foreground (`-n`) as a child we
stop by its pid. `require_pgpool()` skips locally and fails under CI=true, like
`require_server`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg

from advisor.pgserver import PgServer, SettingValue, _free_port
from tests.conftest import require_server, server_settings, unavailable

PGPOOL = Path(os.environ.get("ADVISOR_PGPOOL", "/usr/sbin/pgpool"))
PG_MAJOR = 15  # Debian's server, the one pgpool 4.3.5 ships for
PRIMARY_MAX_CONNECTIONS = 30
STANDBY_MAX_CONNECTIONS = 40  # a hot standby needs at least the primary's value

# What every test pgpool gets; a scenario overrides single keys.
BASE_CONF: dict[str, SettingValue] = {
    "backend_clustering_mode": "streaming_replication",
    "listen_addresses": "127.0.0.1",
    "enable_pool_hba": False,
    "num_init_children": 3,
    "max_pool": 1,
    "child_life_time": 300,
    "reserved_connections": 0,
    "load_balance_mode": True,
    "statement_level_load_balance": False,
    "disable_load_balance_on_write": "transaction",
    "sr_check_period": 1,
    "sr_check_user": "postgres",
    "sr_check_password": "",
    "delay_threshold": 10000000,
    "health_check_period": 5,
    "health_check_user": "postgres",
    "health_check_password": "",
    "log_destination": "stderr",
    "log_per_node_statement": True,
    "failover_on_backend_error": False,
    "use_watchdog": False,
    "client_idle_limit": 0,
}


def require_pgpool() -> Path:
    """The pgpool binary, or skip (locally) / fail (CI=true) with the install hint."""
    if PGPOOL.is_file() and os.access(PGPOOL, os.X_OK):
        return PGPOOL
    unavailable(f"pgpool-II not found at {PGPOOL}: apt-get install pgpool2")


def conf_value(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def render_conf(settings: Mapping[str, SettingValue]) -> str:
    return "".join(f"{k} = {conf_value(v)}\n" for k, v in settings.items())


class Standby(PgServer):
    """A hot standby made with `pg_basebackup -R` from `primary` instead of initdb."""

    def __init__(self, primary: PgServer, **kwargs: Any) -> None:
        super().__init__(bin_dir=primary.bin, **kwargs)
        self.primary = primary

    def _initdb(self) -> None:
        self._run_as_server(
            [
                str(self.bin.exe("pg_basebackup")),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary.port),
                "-U",
                "postgres",
                "-D",
                str(self.datadir),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-d",
                f"host=127.0.0.1 port={self.primary.port} user=postgres application_name=standby1",
            ]
        )
        os.chmod(self.datadir, 0o700)


class PgpoolCluster:
    """Primary + standby + pgpool; `dsn` reaches pgpool, `primary`/`standby` the servers."""

    def __init__(self, **conf: SettingValue) -> None:
        require_pgpool()
        bins = require_server(PG_MAJOR)
        self.primary = PgServer(
            bin_dir=bins,
            settings=server_settings(
                PG_MAJOR, max_connections=PRIMARY_MAX_CONNECTIONS, wal_level="replica"
            ),
        )
        self.standby: Standby | None = None
        self.conf_overrides = conf
        self.port = 0
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- paths ------------------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "pgpool.conf"

    @property
    def log_path(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "pgpool.log"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres sslmode=disable"

    def settings(self) -> dict[str, SettingValue]:
        assert self.tmp is not None and self.standby is not None
        conf: dict[str, SettingValue] = dict(BASE_CONF)
        conf.update(
            port=self.port,
            pcp_port=_free_port(),
            pcp_listen_addresses="127.0.0.1",
            socket_dir=str(self.tmp),  # 4.3 name (4.4+: unix_socket_directories)
            pcp_socket_dir=str(self.tmp),
            pid_file_name=str(self.tmp / "pgpool.pid"),
            logdir=str(self.tmp),
            wd_ipc_socket_dir=str(self.tmp),
        )
        for n, (pg, weight, name) in enumerate(
            ((self.primary, 0, "primary0"), (self.standby, 1, "standby1"))
        ):
            conf[f"backend_hostname{n}"] = "127.0.0.1"
            conf[f"backend_port{n}"] = pg.port
            conf[f"backend_weight{n}"] = weight
            conf[f"backend_flag{n}"] = "ALLOW_TO_FAILOVER"
            conf[f"backend_application_name{n}"] = name
        conf.update(self.conf_overrides)
        return conf

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> PgpoolCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PgpoolCluster:
        self.primary.start()
        with self.primary.connect(autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.standby = Standby(
            self.primary,
            settings=server_settings(PG_MAJOR, max_connections=STANDBY_MAX_CONNECTIONS),
        )
        self.standby.start()
        self._wait_streaming()
        self.tmp = Path(tempfile.mkdtemp(prefix="pgadvisor-pgpool-"))
        uid = self.primary._uid
        for attempt in range(3):
            self.port = _free_port()
            self.conf_path.write_text(render_conf(self.settings()))
            (self.tmp / "pcp.conf").write_text("")
            (self.tmp / "pool_hba.conf").write_text("")
            if uid is not None:
                for p in (self.tmp, *self.tmp.iterdir()):
                    os.chown(p, uid, self.primary._gid or uid)
            if self._launch(uid):
                return self
            self._terminate()
            if "Address already in use" not in self.read_log() or attempt == 2:
                raise RuntimeError(f"pgpool did not start:\n{self.read_log()[-3000:]}")
        return self  # pragma: no cover

    def _launch(self, uid: int | None) -> bool:
        assert self.tmp is not None
        kwargs: dict[str, Any] = {}
        if uid is not None:
            kwargs.update(user=uid, group=self.primary._gid, extra_groups=[])
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(PGPOOL),
                "-n",
                "-f",
                str(self.conf_path),
                "-F",
                str(self.tmp / "pcp.conf"),
                "-a",
                str(self.tmp / "pool_hba.conf"),
            ],
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
            **kwargs,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(psycopg.Error), self.connect() as c:
                c.execute("SELECT 1")
                return True
            time.sleep(0.2)
        return False

    def _wait_streaming(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.primary.connect(autocommit=True) as c:
            while time.monotonic() < deadline:
                row = c.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
                if row and row[0]:
                    return
                time.sleep(0.1)
        raise RuntimeError("the standby did not start streaming")

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.dsn, **kwargs)

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown of pgpool and its children
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def stop(self) -> None:
        self._terminate()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self.standby is not None:
            self.standby.stop()
            self.standby = None
        self.primary.stop()

    def wait_replayed(self, timeout: float = 15) -> None:
        """Until the standby has replayed everything the primary wrote so far."""
        assert self.standby is not None
        with self.primary.connect(autocommit=True) as p:
            lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert lsn is not None
        deadline = time.monotonic() + timeout
        with self.standby.connect(autocommit=True) as s:
            while time.monotonic() < deadline:
                row = s.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn[0],)
                ).fetchone()
                if row and row[0]:
                    return
                time.sleep(0.1)
        raise RuntimeError("the standby did not catch up")


# -- workloads and scenarios shared by the tests and scripts/capture_pgpool_snapshots.py -------

MISCONFIGURED: dict[str, SettingValue] = {
    # 8 x 2 = 16 (+1 sr check) fits the primary's 27 slots, 32 (+1) with cancels does not;
    # the standby's 37 slots hold both: PP01 on node 0 only.
    "num_init_children": 8,
    "max_pool": 2,
    "load_balance_mode": False,
    "health_check_period": 0,
    "delay_threshold": 0,
    "sr_check_password": "s3cret-pw",
    "allow_clear_text_frontend_auth": True,
    "listen_addresses": "*",
}


def setup_schema(cluster: PgpoolCluster) -> None:
    """Table t (1000 rows), a STABLE and a VOLATILE (the default) SQL function, on the
    primary; waits until the standby has them."""
    with cluster.primary.connect(autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        c.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
        c.execute("CREATE FUNCTION f_stable(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1'")
        c.execute("CREATE FUNCTION app_flag(int) RETURNS bool LANGUAGE sql AS 'SELECT $1 % 2 = 0'")
        c.execute("SELECT pg_stat_statements_reset()")
    cluster.wait_replayed()


def run_reads(cluster: PgpoolCluster, *, pinned: bool, n: int = 150) -> None:
    """Autocommit reads through pgpool: plain and STABLE-function reads (balanced), or with
    `pinned` reads with a volatile function and reads behind a leading comment, which pgpool
    sends to the primary."""
    with cluster.connect() as c:
        for i in range(1, n + 1):
            if not pinned:
                c.execute("SELECT v FROM t WHERE id = %s", (i,))
                c.execute("SELECT f_stable(id) FROM t WHERE id = %s", (i,))
            else:
                c.execute("SELECT id, app_flag(id) FROM t WHERE id = %s", (i,))
                c.execute("SELECT id, random() FROM t WHERE id = %s", (i,))
                c.execute("/* tracing */ SELECT v FROM t WHERE id = %s", (i,))


def select_counts(cluster: PgpoolCluster) -> dict[int, int]:
    with cluster.connect() as c:
        rows = c.execute("SHOW POOL_NODES").fetchall()
    return {int(r[0]): int(r[8]) for r in rows}


class HeldClients:
    """`idle` clients that connect through pgpool and stay idle, plus `queued` clients started
    `delay` seconds later (they wait for a child: pgpool queues, it does not refuse)."""

    def __init__(self, cluster: PgpoolCluster, idle: int, queued: int = 0, delay: float = 1.0):
        import threading

        self.cluster = cluster
        self.conns = [cluster.connect() for _ in range(idle)]
        for c in self.conns:
            c.execute("SELECT 1")
        self.stop = threading.Event()
        self.queued_connected: list[float] = []
        self.threads = [
            threading.Thread(target=self._queued, args=(delay,), daemon=True) for _ in range(queued)
        ]
        for t in self.threads:
            t.start()

    def _queued(self, delay: float) -> None:
        time.sleep(delay)
        start = time.monotonic()
        with contextlib.suppress(psycopg.Error), self.cluster.connect(connect_timeout=60) as c:
            self.queued_connected.append(time.monotonic() - start)
            c.execute("SELECT 1")

    def close(self) -> None:
        for c in self.conns:
            c.close()
        for t in self.threads:
            t.join(timeout=60)


def write_conf(cluster: PgpoolCluster, path: Path, **overrides: SettingValue) -> Path:
    """The running pgpool's settings with `overrides`, as a pgpool.conf at `path`."""
    path.write_text(render_conf({**cluster.settings(), **overrides}))
    return path
