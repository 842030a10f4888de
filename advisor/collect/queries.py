"""Version-specific SQL, one file per query and minimum server version (pg_activity's habit).

`advisor/sql/<name>.sql` serves every supported version unless a `<name>_post_NNNNNN.sql`
exists; `load(name, server_version_num)` picks the file with the largest NNNNNN not above the
server version (the plain file counts as 0). Each file opens with a comment saying what changed
in its version. No if/elif chains on versions anywhere else.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_FILE_RE = re.compile(r"^(?P<name>[a-z_]+?)(?:_post_(?P<num>\d{6}))?\.sql$")


class QueryUnavailable(LookupError):
    """No file of this query serves the given server version (e.g. a view added later)."""


@cache
def _index(directory: Path = SQL_DIR) -> dict[str, tuple[tuple[int, Path], ...]]:
    found: dict[str, list[tuple[int, Path]]] = {}
    for path in directory.glob("*.sql"):
        m = _FILE_RE.match(path.name)
        if m is None:
            raise ValueError(
                f"{path.name}: SQL files are named <name>.sql or <name>_post_NNNNNN.sql"
            )
        found.setdefault(m["name"], []).append((int(m["num"] or 0), path))
    return {name: tuple(sorted(files)) for name, files in found.items()}


def names(directory: Path = SQL_DIR) -> list[str]:
    return sorted(_index(directory))


def versions(name: str, directory: Path = SQL_DIR) -> list[int]:
    """The minimum server versions this query has files for (0 = the plain file)."""
    return [num for num, _ in _index(directory).get(name, ())]


def pick(name: str, server_version_num: int, directory: Path = SQL_DIR) -> Path:
    files = _index(directory).get(name)
    if not files:
        raise KeyError(f"no SQL file for query {name!r} in {directory}")
    usable = [(num, path) for num, path in files if num <= server_version_num]
    if not usable:
        raise QueryUnavailable(f"{name} needs PostgreSQL {_version_text(files[0][0])} or later")
    return usable[-1][1]


def pick_version(name: str, server_version_num: int, directory: Path = SQL_DIR) -> int:
    """The NNNNNN of the file `load` would use (0 = the plain `<name>.sql`)."""
    chosen = pick(name, server_version_num, directory)
    return max(num for num, path in _index(directory)[name] if path == chosen)


@cache
def _read(path: Path) -> str:
    from advisor.collect import mark

    # Marked, so the advisor leaves its own rows of pg_stat_statements out.
    return mark(path.read_text(encoding="utf-8"))


def load(name: str, server_version_num: int, directory: Path = SQL_DIR) -> str:
    """SQL text of `name` for a server of `server_version_num` (e.g. 150004)."""
    return _read(pick(name, server_version_num, directory))


def _version_text(num: int) -> str:
    major, minor = divmod(num, 10000)
    return str(major) if minor == 0 else f"{major}.{minor}"
