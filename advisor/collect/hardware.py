"""Cores and memory of the database server, with where each number came from.

Only a local server (unix socket or loopback) can be measured from here. The server process's
cgroup is read when its pid is visible in /proc (same pid namespace), else our own. cgroup v2
(`cpu.max`, `cpuset.cpus.effective`, `memory.max`) and v1 (`cpu.cfs_quota_us` /
`cpu.cfs_period_us`, `cpuset.effective_cpus` / `cpuset.cpus`, `memory.limit_in_bytes`) are
understood; a limit anywhere between the process's cgroup and the mount root applies. A remote
server gives "unknown" unless the user says (`--cores`, `--memory`).

No psycopg here: the CLI imports `parse_size` without paying for a database driver.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from advisor.report import Hardware

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")
# cgroup v1 reports "no limit" as LONG_MAX rounded down to a page (9223372036854771712).
_V1_UNLIMITED = 1 << 62

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """'16GB' -> 17179869184. Units as PostgreSQL reads them (kB, MB, GB, TB are powers of
    1024; KiB/MiB/GiB/TiB and bare k/M/G/T are accepted too); no unit means bytes."""
    m = _SIZE_RE.match(text)
    if m is None or m[2].lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 16GB, 512MB, 1.5TB, 8589934592)")
    value = float(m[1]) * _UNITS[m[2].lower()]
    if value <= 0 or not math.isfinite(value):
        raise ValueError(f"{text!r} is not a positive size")
    return int(value)


def parse_cpu_list(text: str) -> int:
    """'0-3,8,10-11' -> 7 (the cpuset list format)."""
    count = 0
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        count += (int(hi) - int(lo) + 1) if hi else 1
    return count


# -- cgroups ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """What the cgroup files say; None = no limit there (or nothing readable)."""

    version: int  # 1 or 2
    cpu_quota: float | None = None  # quota / period, in cores
    cpuset: int | None = None  # CPUs in the effective cpuset
    memory_bytes: int | None = None
    read: tuple[str, ...] = ()  # the files that gave the numbers, for the evidence

    @property
    def cores(self) -> float | None:
        found = [c for c in (self.cpu_quota, self.cpuset) if c is not None]
        return min(found) if found else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _proc_cgroups(pid: int | str, proc: Path) -> tuple[dict[str, str], str | None]:
    """(/proc/<pid>/cgroup v1 controller -> path, v2 path)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    text = _read(proc / str(pid) / "cgroup") or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            v2 = path
            continue
        for ctl in controllers.split(","):
            v1[ctl] = path
        v1["@" + controllers] = path  # the joined name, e.g. "@cpu,cpuacct"
    return v1, v2


def _chain(mount: Path, path: str) -> list[Path]:
    """The process's cgroup dir and its ancestors up to the mount. Inside a cgroup namespace
    (or when the path is not visible) the mount itself is the process's cgroup."""
    leaf = mount / path.lstrip("/") if path else mount
    if not leaf.is_dir():
        return [mount]
    dirs = [leaf]
    while dirs[-1] != mount and mount in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return dirs


def _v1_mount(root: Path, v1: dict[str, str], controller: str) -> tuple[Path, str] | None:
    joined = [k[1:] for k in v1 if k.startswith("@") and controller in k[1:].split(",")]
    for name in [*joined, controller]:
        mount = root / name
        if mount.is_dir():
            return mount, v1.get(controller, "/")
    if (root / controller).is_dir():
        return root / controller, "/"
    return None


def _min(values: Iterator[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


def _v2_cpu_max(d: Path) -> float | None:
    text = _read(d / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        return int(quota) / int(period or "100000")
    except (ValueError, ZeroDivisionError):
        return None


def _int_file(d: Path, name: str) -> int | None:
    text = _read(d / name)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _v1_quota(d: Path) -> float | None:
    quota = _int_file(d, "cpu.cfs_quota_us")
    period = _int_file(d, "cpu.cfs_period_us")
    if quota is None or quota <= 0 or not period:
        return None
    return quota / period


def _v2_memory_max(d: Path) -> int | None:
    text = _read(d / "memory.max")
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _v1_memory(d: Path) -> int | None:
    value = _int_file(d, "memory.limit_in_bytes")
    return value if value is not None and 0 < value < _V1_UNLIMITED else None


def _cpuset(dirs: list[Path], files: tuple[str, ...]) -> tuple[int | None, str | None]:
    """The first non-empty cpuset list from the leaf upwards (an empty v2 cpuset.cpus means
    'inherit')."""
    for d in dirs:
        for name in files:
            text = _read(d / name)
            if text:
                return parse_cpu_list(text), str(d / name)
    return None, None


def read_cgroup_limits(
    pid: int | str = "self", *, root: Path = CGROUP_ROOT, proc: Path = PROC
) -> CgroupLimits | None:
    """Limits of `pid`'s cgroups, or None when no cgroup filesystem is mounted at `root`."""
    v1, v2 = _proc_cgroups(pid, proc)
    read: list[str] = []

    def note(d: Path, name: str, value: object) -> None:
        if value is not None:
            read.append(f"{d / name} -> {value}")

    if (root / "cgroup.controllers").is_file():  # pure v2 (unified hierarchy)
        dirs = _chain(root, v2 or "/")
        quota = _min(_v2_cpu_max(d) for d in dirs)
        mems = [m for d in dirs if (m := _v2_memory_max(d)) is not None]
        for d in dirs:
            note(d, "cpu.max", _v2_cpu_max(d))
            note(d, "memory.max", _v2_memory_max(d))
        cpus, where = _cpuset(dirs, ("cpuset.cpus.effective", "cpuset.cpus"))
        if where:
            read.append(f"{where} -> {cpus} CPUs")
        return CgroupLimits(2, quota, cpus, min(mems) if mems else None, tuple(read))

    cpu = _v1_mount(root, v1, "cpu")
    cpuset = _v1_mount(root, v1, "cpuset")
    mem = _v1_mount(root, v1, "memory")
    if cpu is None and cpuset is None and mem is None:
        return None
    quota = None
    memory: int | None = None
    cpus = None
    if cpu is not None:
        dirs = _chain(*cpu)
        quota = _min(_v1_quota(d) for d in dirs)
        for d in dirs:
            note(d, "cpu.cfs_quota_us", _v1_quota(d))
    if cpuset is not None:
        cpus, where = _cpuset(_chain(*cpuset), ("cpuset.effective_cpus", "cpuset.cpus"))
        if where:
            read.append(f"{where} -> {cpus} CPUs")
    if mem is not None:
        dirs = _chain(*mem)
        limits = [m for d in dirs if (m := _v1_memory(d)) is not None]
        memory = min(limits) if limits else None
        for d in dirs:
            note(d, "memory.limit_in_bytes", _v1_memory(d))
    return CgroupLimits(1, quota, cpus, memory, tuple(read))


# -- the probe --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    hardware: Hardware
    details: dict[str, str] = field(default_factory=dict)  # "cores"/"memory" -> where from


def _host_cores() -> int | None:
    return os.cpu_count()


def _host_memory() -> int | None:
    try:
        import psutil

        total: int = psutil.virtual_memory().total
        return total
    except Exception:  # psutil unsupported on this platform: fall back to sysconf
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None


def _server_pid_visible(pid: int, proc: Path) -> bool:
    comm = _read(proc / str(pid) / "comm")
    return comm is not None and comm.startswith("postgres")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}"  # pragma: no cover


def probe(
    *,
    local: bool,
    server_pid: int | None = None,
    cores: float | None = None,
    memory: int | None = None,
    host: str | None = None,
    root: Path = CGROUP_ROOT,
    proc: Path = PROC,
) -> Probe:
    """Cores and memory of the server with provenance. `cores`/`memory` from the user win;
    a remote server (`local=False`) gives "unknown" for whatever the user did not say."""
    details: dict[str, str] = {}
    hw = Hardware()
    limits: CgroupLimits | None = None
    whose = ""
    if local and (cores is None or memory is None):
        if server_pid is not None and _server_pid_visible(server_pid, proc):
            limits = read_cgroup_limits(server_pid, root=root, proc=proc)
            whose = f"the server backend's cgroup (pid {server_pid})"
        else:
            limits = read_cgroup_limits("self", root=root, proc=proc)
            whose = "the advisor's own cgroup (the server process is not visible from here)"
    remote = f"the server ({host or 'remote'}) is not local"

    if cores is not None:
        hw.cores, hw.cores_source = float(cores), "user"
        details["cores"] = "given with --cores"
    elif local:
        host_cores = _host_cores()
        cg = limits.cores if limits is not None else None
        if cg is not None and (host_cores is None or cg < host_cores):
            hw.cores, hw.cores_source = cg, "cgroup"
            details["cores"] = (
                f"cgroup v{limits.version if limits else '?'} limit from {whose}: "
                f"quota {_num(limits.cpu_quota if limits else None)}, "
                f"cpuset {_num(limits.cpuset if limits else None)}; the host has {host_cores}"
            )
        elif host_cores is not None:
            hw.cores, hw.cores_source = float(host_cores), "host"
            details["cores"] = f"os.cpu_count() = {host_cores}; no tighter cgroup limit in {whose}"
        else:
            details["cores"] = "the CPU count is not readable on this platform"
    else:
        details["cores"] = f"{remote}: pass --cores"

    if memory is not None:
        hw.memory_bytes, hw.memory_source = int(memory), "user"
        details["memory"] = "given with --memory"
    elif local:
        host_mem = _host_memory()
        cg_mem = limits.memory_bytes if limits is not None else None
        if cg_mem is not None and (host_mem is None or cg_mem < host_mem):
            hw.memory_bytes, hw.memory_source = cg_mem, "cgroup"
            details["memory"] = (
                f"cgroup v{limits.version if limits else '?'} memory limit "
                f"{_fmt_bytes(cg_mem)} from {whose}; the host has "
                f"{_fmt_bytes(host_mem) if host_mem else 'unknown'}"
            )
        elif host_mem is not None:
            hw.memory_bytes, hw.memory_source = host_mem, "host"
            details["memory"] = (
                f"host memory {_fmt_bytes(host_mem)}; no tighter cgroup limit in {whose}"
            )
        else:
            details["memory"] = "the memory size is not readable on this platform"
    else:
        details["memory"] = f"{remote}: pass --memory"

    if limits is not None and limits.read:
        details["cgroup_files"] = "; ".join(limits.read)
    return Probe(hw, details)


def storage_of(path: str, sys_root: Path = Path("/sys")) -> tuple[str, str] | None:
    """('ssd' | 'rotational', how it was seen) for the block device holding `path`, from
    /sys/dev/block/MAJ:MIN (or its parent disk, for a partition) queue/rotational; None for
    virtual file systems (overlay, tmpfs, NFS: no block device to ask) or when unreadable."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    found = rotational(os.major(st.st_dev), os.minor(st.st_dev), sys_root)
    return (found[0], f"{found[1]} for {path}") if found is not None else None


def rotational(major: int, minor: int, sys_root: Path = Path("/sys")) -> tuple[str, str] | None:
    """('ssd' | 'rotational', which sysfs file said so) for block device MAJ:MIN."""
    if major == 0:
        return None
    try:
        dev = (sys_root / "dev" / "block" / f"{major}:{minor}").resolve(strict=True)
    except OSError:
        return None
    for d in (dev, dev.parent):
        flag = _read(d / "queue" / "rotational")
        if flag is not None and flag.strip() in ("0", "1"):
            kind = "ssd" if flag.strip() == "0" else "rotational"
            return kind, f"{d.name}/queue/rotational = {flag.strip()}"
    return None


def _num(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:g}"
