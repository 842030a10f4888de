"""pgpool.conf parsing, compiled defaults by branch, and the conf-only rules (no server).

The rules that need only the file (PP04 off, PP06, PP08) are checked on one conf per
misconfiguration plus a clean conf that must give no finding at all; the live tests
(test_pgpool_live.py) run the same conf shapes against a real pgpool-II.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from advisor.cli import run as cli_run
from advisor.engine import Facts, analyse
from advisor.pooler.pgpool import (
    PgpoolConfError,
    PgpoolView,
    compiled_default,
    conf_facts,
    parse_conf,
    parse_version,
    password_kind,
)
from advisor.snapshot import PgpoolFacts
from tests.conftest import unavailable

SHARED = Path(__file__).resolve().parents[2] / "shared" / "knowledge" / "artifacts"

CLEAN = """\
# a clean streaming-replication setup
backend_clustering_mode = 'streaming_replication'
listen_addresses = 'localhost'
port = 9999
backend_hostname0 = 'db0'
backend_port0 = 5432
backend_weight0 = 0
backend_flag0 = 'ALLOW_TO_FAILOVER'
backend_hostname1 = 'db1'
backend_port1 = 5432
backend_weight1 = 1
backend_application_name1 = 'standby1'
num_init_children = 32
max_pool = 1
load_balance_mode = on
health_check_period = 10
health_check_user = 'monitor'
health_check_password = ''
sr_check_period = 10
sr_check_user = 'monitor'
sr_check_password = 'AESK2d3T5tq7KJt2QpGMzPfjA=='
delay_threshold = 10000000
enable_pool_hba = on
"""


def facts_for(text: str, version: str | None = None) -> Facts:
    pf = conf_facts(parse_conf(text, "pgpool.conf"), PgpoolFacts(version=version))
    return Facts(pgpool=pf)


def pp_findings(text: str, version: str | None = None) -> list[tuple[str, str]]:
    report = analyse(facts_for(text, version), select=["PP"])
    return [(f.rule, f.where) for f in report.findings]


# -- the parser -----------------------------------------------------------------------------------


def test_parses_quoting_comments_and_backend_groups() -> None:
    conf = parse_conf(
        "a_key = 'it''s' # comment\n"
        "b_key 'no equals'\n"
        "c_key = 'back\\'slash'\n"
        "   # indented comment\n"
        "reset_query_list = 'ABORT; DISCARD ALL'  # with ; inside quotes\n"
        "backend_hostname0 = 'db0'\nbackend_port0 = 5433\nbackend_hostname2 = db2\n"
        "child_life_time = 5min\nNUM_INIT_CHILDREN = 8\nnum_init_children = 9\n",
        "x.conf",
    )
    assert conf.get("a_key") == "it's"
    assert conf.get("b_key") == "no equals"
    assert conf.get("c_key") == "back'slash"
    assert conf.get("reset_query_list") == "ABORT; DISCARD ALL"
    assert conf.node_ids() == [0, 2]
    assert conf.entries["num_init_children"].value == "9"  # the last one wins
    assert conf.entries["num_init_children"].line == 11
    view = PgpoolView(conf_facts(conf))
    assert view.number("child_life_time") == 300
    assert view.node_address(0) == "db0:5433" and view.node_address(2) == "db2:5432"


def test_reads_the_real_test_conf_of_the_knowledge_base() -> None:
    path = SHARED / "pgpool_test.conf"
    if not path.is_file():
        unavailable(f"{path} missing: the repository's ../shared (knowledge) is not beside it")
    conf = parse_conf(path.read_text(), path.name)
    view = PgpoolView(conf_facts(conf, PgpoolFacts(version="4.3.5 (tamahomeboshi)")))
    assert view.node_ids() == [0, 1]
    assert view.number("num_init_children") == 4 and view.number("max_pool") == 2
    assert view.number("sr_check_period") == 5 and view.load_balancing()


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a = 1\nnum_init_children = lots\n", 2, "num_init_children must be a whole number"),
        ("\n\nb = 'unterminated\n", 3, "unterminated quoted string"),
        ("x = 1\nnum_init_children =\n", 2, "num_init_children has no value"),
        ("load_balance_mode = maybe\n", 1, "load_balance_mode must be on or off"),
        ("= 3\n", 1, "syntax error"),
        ("a = b c\n", 1, "syntax error"),
        ("max_pool = 0\n", 1, "max_pool must be at least 1"),
        ("backend_port1 = 70000\n", 1, "backend_port1 must be a port number"),
        ("backend_weight0 = -1\n", 1, "backend_weight0 must be a number"),
        ("health_check_period1 = soon\n", 1, "health_check_period1 must be a whole number"),
        ("x = 1\nhealth_check_period = -10\n", 2, "health_check_period must be 0 or more"),
        ("delay_threshold = 10 parsecs\n", 1, "syntax error"),
    ],
)
def test_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PgpoolConfError) as err:
        parse_conf(text, "pgpool.conf")
    assert err.value.line == line
    assert str(err.value).startswith(f"pgpool.conf, line {line}: ")
    assert words in str(err.value)


def test_defaults_changed_in_43() -> None:
    """knowledge/poolers.md §3.2: load_balance_mode, listen_backlog_multiplier and
    sr_check_period changed their compiled default in 4.3; sr_check_user in 4.6."""
    assert compiled_default("load_balance_mode", (4, 2)) == "off"
    assert compiled_default("load_balance_mode", (4, 3)) == "on"
    assert compiled_default("listen_backlog_multiplier", (4, 2)) == "32"
    assert compiled_default("listen_backlog_multiplier", (4, 3)) == "2"
    assert compiled_default("sr_check_period", (4, 2)) == "0"
    assert compiled_default("sr_check_period", (4, 4)) == "10"
    assert compiled_default("sr_check_user", (4, 5)) == "nobody"
    assert compiled_default("sr_check_user", (4, 6)) == ""
    assert compiled_default("reserved_connections", (4, 0)) is None  # not there before 4.1
    assert compiled_default("health_check_period1", (4, 3)) == "0"  # per-node keys too
    assert parse_version("4.3.5 (tamahomeboshi)") == (4, 3)


def test_compiled_defaults_match_the_branch_table() -> None:
    """Every branch value of the artifact table that the advisor uses, for the keys it knows."""
    path = SHARED / "pgpool_compiled_defaults_by_branch.txt"
    if not path.is_file():
        unavailable(f"{path} missing: the repository's ../shared (knowledge) is not beside it")
    lines = path.read_text().splitlines()
    branches = [tuple(int(x) for x in b[1:].split("_")) for b in lines[0].split(" | ")[1:]]
    words = {"true": "on", "false": "off", "-": None, "DLBOW_TRANSACTION": "transaction"}
    words |= {'""': "", '"nobody"': "nobody", "CM_STREAMING_REPLICATION": "streaming_replication"}
    words |= {"PM_STATIC": "static"}
    checked = 0
    for row in lines[1:]:
        key, *values = row.split(" | ")
        for branch, raw in zip(branches, values, strict=True):
            if key not in ("num_init_children", "max_pool", "listen_backlog_multiplier") and (
                raw not in words
            ):
                continue
            mine = compiled_default(key, (branch[0], branch[1]))
            if mine is None and key not in ("reserved_connections",) and raw != "-":
                continue  # a key the advisor does not read
            assert mine == words.get(raw, raw), (key, branch, raw, mine)
            checked += 1
    assert checked > 60


def test_unset_load_balance_mode_depends_on_the_version() -> None:
    text = "backend_hostname0 = 'a'\nbackend_hostname1 = 'b'\n"
    assert ("PP04", "pgpool load_balance_mode") in pp_findings(text, "4.2.9 (chichiriboshi)")
    assert "PP04" not in {c for c, _ in pp_findings(text, "4.3.5 (tamahomeboshi)")}


def test_passwords_never_kept() -> None:
    pf = conf_facts(parse_conf("sr_check_password = 'hunter2'\nhealth_check_password1 = ''\n"))
    assert pf.settings["sr_check_password"].value == "clear text"
    assert pf.settings["health_check_password1"].value == ""
    assert "hunter2" not in pf.model_dump_json()
    assert password_kind("md5abc") == "md5" and password_kind("AESxyz") == "AES"
    assert password_kind("TEXTplain") == "clear text"


# -- one conf per misconfiguration, and a clean one -----------------------------------------------


def test_clean_conf_has_no_findings() -> None:
    assert pp_findings(CLEAN) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("load_balance_mode = off", ("PP04", "pgpool load_balance_mode")),
        ("health_check_period = 0", ("PP06", "pgpool health_check_period")),
        ("health_check_period1 = 0", ("PP06", "pgpool health_check_period")),
        ("delay_threshold = 0", ("PP06", "pgpool delay_threshold")),
        ("sr_check_password = 'plain-secret'", ("PP08", "pgpool.conf passwords")),
        ("allow_clear_text_frontend_auth = on", ("PP08", "pgpool allow_clear_text_frontend_auth")),
        ("listen_addresses = '*'\nenable_pool_hba = off", ("PP08", "pgpool enable_pool_hba")),
    ],
)
def test_each_misconfiguration_fires_its_rule(change: str, expected: tuple[str, str]) -> None:
    found = pp_findings(CLEAN + change + "\n")
    assert found == [expected]


def test_health_check_per_node_override_counts() -> None:
    """health_check_period1 = 10 covers node 1 even when the global value is 0."""
    text = CLEAN + "health_check_period = 0\nhealth_check_period0 = 10\nhealth_check_period1 = 10\n"
    assert pp_findings(text) == []


# -- the CLI with the file only -------------------------------------------------------------------


def test_report_with_the_conf_only(tmp_path: Path) -> None:
    conf = tmp_path / "pgpool.conf"
    conf.write_text(CLEAN + "load_balance_mode = off\nsr_check_password = 'pw-in-clear'\n")
    out = io.StringIO()
    code = cli_run(["report", "--pgpool-conf", str(conf), "--json", "--select", "PP"], out=out)
    data = json.loads(out.getvalue())
    assert code == 1
    assert {f["rule"] for f in data["findings"]} == {"PP04", "PP08"}
    skipped = {s["rule"]: s["reason"] for s in data["skipped"]}
    assert "PP01" in skipped and "PP02" in skipped  # need a server / the console
    assert "pw-in-clear" not in out.getvalue()


def test_bad_conf_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    conf = tmp_path / "pgpool.conf"
    conf.write_text("port = 9999\nmax_pool = many\n")
    res = subprocess.run(
        [sys.executable, "-m", "advisor", "report", "--pgpool-conf", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "advisor: pgpool.conf, line 2: max_pool must be a whole number, not 'many'"
    )
    missing = subprocess.run(
        [sys.executable, "-m", "advisor", "report", "--pgpool-conf", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert "Traceback" not in res.stderr + missing.stderr
