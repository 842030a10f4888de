"""Wall-clock timing of whole commands, repeated: median and spread, no assertions."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Timing:
    label: str
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.runs), max(self.runs)

    def line(self) -> str:
        lo, hi = self.spread
        return (
            f"{self.label}: median {self.median * 1000:.1f} ms "
            f"(min {lo * 1000:.1f}, max {hi * 1000:.1f}, n={len(self.runs)})"
        )


def user_env() -> dict[str, str]:
    """The environment a user's shell has: bytecode caching on (some sandboxes turn it off
    with PYTHONDONTWRITEBYTECODE, which would time compiling our sources on every run)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_command(label: str, cmd: Sequence[str], runs: int = 15, warmup: int = 2) -> Timing:
    """Median wall time of `cmd`; warm-up runs also write the .pyc files, as a first use would."""
    env = user_env()
    for _ in range(warmup):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False, env=env)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False, env=env)
        samples.append(time.perf_counter() - start)
    return Timing(label, samples)
