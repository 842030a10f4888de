"""pgbouncer.ini as PgBouncer reads it: precedence, %include, errors, secrets, and agreement
with the real Debian 1.18 binary on every quirk (it refuses exactly what the advisor flags)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from poolers_bouncer import SERVER_USER, _ensure_system_user, _free_port, require_pgbouncer

from advisor.engine import Facts, run
from advisor.pooler.pgbouncer import (
    IniError,
    inline_comment,
    parse_connstr,
    parse_ini,
    parse_ini_text,
    pools,
    server_budget,
)
from advisor.report import Report
from advisor.snapshot import PgBouncerFacts, PgBouncerInstance
from tests.conftest import unavailable

ARTIFACT = Path(__file__).resolve().parents[1] / "../shared/knowledge/artifacts/pgbouncer_test.ini"
LAB_INI = """\
[databases]
postgres = host=127.0.0.1 port=55432 dbname=postgres pool_size=3
appdb = host=127.0.0.1 port=55432 dbname=postgres pool_mode=session max_db_connections=5
one = host=127.0.0.1 port=55432 dbname=postgres pool_size=1

[users]
postgres = pool_mode=transaction

[pgbouncer]
listen_addr = 127.0.0.1
pool_mode = transaction
default_pool_size = 2
reserve_pool_size = 1
"""


def test_pool_mode_precedence_user_over_database_over_global() -> None:
    """The lab ini of knowledge/poolers.md §1.1: [users] postgres = pool_mode=transaction beat
    appdb's pool_mode=session live (SHOW POOLS said transaction)."""
    inst = PgBouncerInstance(ini=parse_ini_text(LAB_INI))
    by_db = {p.database: p for p in pools(inst)}
    assert by_db["appdb"].mode == "transaction"
    assert by_db["appdb"].size == 2 and by_db["appdb"].max_db == 5  # default_pool_size
    assert by_db["postgres"].size == 3 and by_db["one"].size == 1
    total, terms = server_budget(inst)
    assert total == (2 + 1) + (3 + 1) + (1 + 1)
    assert "appdb: (2+1) capped at 5 = 3" in terms


def test_later_lines_win_and_include_is_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "pools.ini").write_text("default_pool_size = 9\n")
    main = tmp_path / "conf.d" / "main.ini"
    main.write_text("[pgbouncer]\ndefault_pool_size = 4\n%include conf.d/pools.ini\n")
    fact = parse_ini(str(main), cwd=str(tmp_path))
    assert fact.files == [str(main), str(tmp_path / "conf.d" / "pools.ini")]
    inst = PgBouncerInstance(ini=fact)
    from advisor.pooler.pgbouncer import setting

    value, where = setting(inst, "default_pool_size")
    assert value == "9" and where.endswith("pools.ini:1")
    # relative to the including file's directory is NOT what PgBouncer does
    with pytest.raises(IniError, match=r"main\.ini:3: %include conf\.d/pools\.ini: no such file"):
        parse_ini(str(main), cwd=str(tmp_path / "conf.d"))


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("[pgbouncer]\njustakey\n", 2, "expected 'key = value'"),
        ("[databases\nx = y\n", 1, "closing"),
        ("stray = 1\n[pgbouncer]\n", 1, "before any"),
        ("[databases]\n'my-db' = host=x\n", 2, "expected"),
        ("[pgbouncer]\n%include /nonexistent/x.ini\n", 2, "no such file"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, match: str) -> None:
    with pytest.raises(IniError, match=match) as exc:
        parse_ini_text(text, "my.ini")
    assert str(exc.value).startswith(f"my.ini:{line}:")
    assert "\n" not in str(exc.value)


def test_include_loop_stops_at_the_depth_limit(tmp_path: Path) -> None:
    loop = tmp_path / "loop.ini"
    loop.write_text(f"%include {loop}\n")
    with pytest.raises(IniError, match="nested more than 10"):
        parse_ini(str(loop))


def test_passwords_are_masked() -> None:
    fact = parse_ini_text(
        "[databases]\na = host=x password=s3cr3tpw dbname=a\nb = host=x password='it''s s3cr3t'\n"
    )
    text = fact.model_dump_json()
    assert "s3cr3t" not in text
    assert parse_connstr(fact.entries[0].value)["password"] == "***"


def test_inline_comment_and_connstr_quoting() -> None:
    assert inline_comment("7 ; per db") == "; per db"
    assert inline_comment("host=x # note") == "# note"
    assert inline_comment("host=x password='a ;b'") is None
    assert inline_comment("a;b#c") is None  # no blank before: part of the value, not a comment
    assert parse_connstr("host=x  password='a b\\'c' dbname = d") == {
        "host": "x",
        "password": "a b'c",
        "dbname": "d",
    }
    with pytest.raises(ValueError, match="syntax error"):
        parse_connstr("host=x ; comment")


def _findings(text: str, version: str = "1.18.0") -> list[str]:
    inst = PgBouncerInstance(ini=parse_ini_text(text), version=version, version_source="test")
    facts = Facts(pgbouncer=PgBouncerFacts(instances=[inst]))
    return [f.rule for f in run(facts, Report(), select=["PB01", "PB02"]).findings]


# Each quirk: what PgBouncer 1.18 does with it must match what the advisor says.
BASE = "[databases]\npostgres = host=127.0.0.1 port=1 dbname=postgres\n"
QUIRKS = {
    "clean": "[pgbouncer]\nmax_client_conn = 50\n",
    "duplicate_key": "[pgbouncer]\nmax_client_conn = 5\nmax_client_conn = 7\n",
    "inline_comment_int": "[pgbouncer]\ndefault_pool_size = 7 ; comment\n",
    "inline_comment_db": "[databases]\nx = host=127.0.0.1 pool_size=5 ; comment\n[pgbouncer]\n",
    "unknown_key": "[pgbouncer]\nfoo_bar = 1\n",
    "users_pool_size": "[users]\npostgres = pool_mode=session pool_size=3\n[pgbouncer]\n",
    "reserve_pool_size_db": "[databases]\nx = host=127.0.0.1 reserve_pool_size=1\n[pgbouncer]\n",
    "reserve_pool_db": "[databases]\nx = host=127.0.0.1 reserve_pool=1\n[pgbouncer]\n",
    "peers": "[peers]\n1 = host=/tmp\n[pgbouncer]\n",
    "max_prepared": "[pgbouncer]\nmax_prepared_statements = 100\n",
    "no_equals": "[pgbouncer]\njustakey\n",
    "quoted_name": '[databases]\n"my-db" = host=127.0.0.1\n[pgbouncer]\n',
    "single_quoted_name": "[databases]\n'my-db' = host=127.0.0.1\n[pgbouncer]\n",
    "bad_int": "[pgbouncer]\nmax_client_conn = abc\n",
    "bad_pool_mode": "[pgbouncer]\npool_mode = foo\n",
    "bad_db_pool_size": "[databases]\nx = host=127.0.0.1 pool_size=big\n[pgbouncer]\n",
    "good_enum_case": "[pgbouncer]\npool_mode = transaction\nauth_type = scram-sha-256\n",
}


def _pgbouncer_accepts(binary: str, name: str, text: str) -> bool:
    """Start the real PgBouncer on `text` for 1.5 s: still running = it loaded the file.
    (In a fresh /tmp dir: pytest's tmp_path is not reachable for the unprivileged user.)"""
    tmp = Path(tempfile.mkdtemp(prefix="pgb-ini-"))
    try:
        return _run(binary, tmp, name, text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(binary: str, tmp: Path, name: str, text: str) -> bool:
    port = _free_port()
    ini = tmp / f"{name}.ini"
    (tmp / "users.txt").write_text('"postgres" ""\n')
    ini.write_text(
        f"{BASE}{text}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {tmp / 'users.txt'}\n"
    )
    kwargs = {}
    if os.geteuid() == 0:
        user = _ensure_system_user(SERVER_USER)
        for p in (tmp, ini, tmp / "users.txt"):
            os.chown(p, user.pw_uid, user.pw_gid)
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    proc = subprocess.Popen(
        [binary, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
    )
    try:
        proc.wait(1.5)
        return False
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(10)
        return True


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_advisor_agrees_with_real_pgbouncer(name: str) -> None:
    binary = require_pgbouncer()
    text = QUIRKS[name]
    try:
        flagged = bool(_findings(BASE + text))
    except IniError:
        flagged = True
    accepted = _pgbouncer_accepts(binary, name, text)
    assert flagged == (not accepted), f"{name}: PgBouncer accepted={accepted}, flagged={flagged}"


def test_lab_ini_from_the_research_parses() -> None:
    if not ARTIFACT.is_file():
        unavailable(f"{ARTIFACT} missing: the repository's ../shared (knowledge) is not beside it")
    fact = parse_ini(str(ARTIFACT))
    assert len([e for e in fact.entries if e.section == "databases"]) == 4
