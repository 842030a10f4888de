"""What breaks under transaction or statement pooling, found in pg_stat_statements texts.

knowledge/poolers.md §2.2 (H1-H10, H13), node names checked on pglast 8.8. Imported lazily by
the PB11-PB15/PB18 checks only (pglast is a C extension); parsing is shared with
`advisor.workload` (cached per text). A text that does not parse yields nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from advisor.workload import _func_name, _parse, _walk

# The session advisory-lock family (the _xact_ variants end with the transaction: safe).
SESSION_ADVISORY = frozenset(
    {
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_advisory_unlock",
        "pg_advisory_unlock_shared",
        "pg_advisory_unlock_all",
    }
)
SESSION_SET_KINDS = frozenset(
    {"VAR_SET_VALUE", "VAR_SET_DEFAULT", "VAR_SET_CURRENT", "VAR_RESET", "VAR_RESET_ALL"}
)
CURSOR_OPT_HOLD = 0x20
_DEALLOCATE_PARAM = re.compile(r"(?i)^\s*deallocate\s+(prepare\s+)?\$\d+\s*;?\s*$")


@dataclass(frozen=True, slots=True)
class Hazard:
    rule: str  # PB11 session SET, PB12 LISTEN, PB13 advisory lock, PB14 PREPARE, PB15, PB18
    what: str  # "SET search_path", "LISTEN jobs", "pg_advisory_lock()", ...
    critical: bool = False  # search_path, role: other clients read or act as the wrong thing


def _set_hazard(body: dict[str, Any], tracked: frozenset[str]) -> Hazard | None:
    if body.get("is_local"):
        return None
    kind = str(body.get("kind", ""))
    name = str(body.get("name") or "").lower()
    if kind == "VAR_SET_MULTI":
        if name == "session characteristics":
            return Hazard("PB11", "SET SESSION CHARACTERISTICS AS TRANSACTION ...")
        return None  # SET TRANSACTION ...: this transaction only
    if kind not in SESSION_SET_KINDS:
        return None
    if kind == "VAR_RESET_ALL":
        return Hazard("PB11", "RESET ALL")
    if name in tracked:
        return None
    verb = "RESET" if kind == "VAR_RESET" else "SET"
    critical = name in ("search_path", "role", "session_authorization")
    shown = "SESSION AUTHORIZATION" if name == "session_authorization" else name
    return Hazard("PB11", f"{verb} {shown}", critical)


@lru_cache(maxsize=4096)
def hazards(text: str, tracked: frozenset[str] = frozenset()) -> tuple[Hazard, ...]:
    """The pooling hazards of one pg_stat_statements text; `tracked` = parameters PgBouncer
    restores per client (lower case), whose session SET is harmless."""
    stmts = _parse(text)
    if not stmts:
        # PG 17+ records `DEALLOCATE name` as `DEALLOCATE $1`, which does not parse; on those
        # versions EXECUTE is counted under the bare inner query, so this is all that is left.
        if _DEALLOCATE_PARAM.match(text):
            return (Hazard("PB14", "DEALLOCATE (SQL-level prepared statements)"),)
        return ()
    found: list[Hazard] = []
    for kind, body in stmts:
        if kind == "VariableSetStmt":
            h = _set_hazard(body, tracked)
            if h:
                found.append(h)
        elif kind == "ListenStmt":
            found.append(Hazard("PB12", f"LISTEN {body.get('conditionname', '')}"))
        elif kind == "UnlistenStmt":
            found.append(Hazard("PB12", f"UNLISTEN {body.get('conditionname') or '*'}"))
        elif kind == "PrepareStmt":
            found.append(Hazard("PB14", f"PREPARE {body.get('name', '')}"))
        elif kind == "ExecuteStmt":
            found.append(Hazard("PB14", f"EXECUTE {body.get('name', '')}"))
        elif kind == "DeallocateStmt" and not body.get("isall"):
            found.append(Hazard("PB14", f"DEALLOCATE {body.get('name', '')}"))
        elif kind == "DeclareCursorStmt" and int(body.get("options", 0)) & CURSOR_OPT_HOLD:
            found.append(Hazard("PB15", f"DECLARE {body.get('portalname', '')} ... WITH HOLD"))
        elif kind == "LoadStmt":
            found.append(Hazard("PB15", f"LOAD '{body.get('filename', '')}'"))
        elif kind == "TransactionStmt" and body.get("kind") in (
            "TRANS_STMT_BEGIN",
            "TRANS_STMT_START",
        ):
            found.append(Hazard("PB18", "BEGIN" if body["kind"] == "TRANS_STMT_BEGIN" else "START"))
        temp = _temp_table(kind, body)
        if temp:
            found.append(Hazard("PB15", temp))
        for key, value in _walk(body):
            if key != "FuncCall" or not isinstance(value, dict):
                continue
            fn = _func_name(value)
            if fn in SESSION_ADVISORY:
                found.append(Hazard("PB13", f"{fn}()"))
            elif fn == "set_config" and _set_config_is_session(value):
                found.append(Hazard("PB11", "set_config(..., false)", critical=True))
    unique = dict.fromkeys(found)  # keep order, drop repeats within one text
    return tuple(unique)


def _set_config_is_session(call: dict[str, Any]) -> bool:
    args = call.get("args") or []
    if len(args) < 3:
        return False
    const = args[2].get("A_Const", {}) if isinstance(args[2], dict) else {}
    boolval = const.get("boolval")
    if isinstance(boolval, dict):
        return not boolval.get("boolval", False)
    return False


def _temp_table(kind: str, body: dict[str, Any]) -> str | None:
    """`CREATE TEMP TABLE` that outlives the transaction (no ON COMMIT DROP)."""
    if kind == "CreateStmt":
        rel, oncommit = body.get("relation", {}), body.get("oncommit")
    elif kind == "CreateTableAsStmt":
        into = body.get("into", {})
        rel, oncommit = into.get("rel", {}), into.get("onCommit")
    else:
        return None
    if rel.get("relpersistence") != "t" or oncommit == "ONCOMMIT_DROP":
        return None
    return f"CREATE TEMP TABLE {rel.get('relname', '')}"
