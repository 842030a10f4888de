"""One-line progress on stderr for the long parts of `advisor collect` and `advisor report --dsn`.

Shown only when stderr is a terminal and --quiet was not given; each step overwrites the
last ("advisor: statements ..."), and `done()` clears the line so the report starts clean.
NO_COLOR (https://no-color.org) drops the dim styling. Plain ANSI: no rich on this path.
"""

from __future__ import annotations

import os
import sys
from typing import IO


class Progress:
    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):  # a closed or odd stream
            tty = False
        self.enabled = tty and not quiet
        self.color = self.enabled and not os.environ.get("NO_COLOR")
        self.shown = False

    def __call__(self, step: str) -> None:
        if not self.enabled:
            return
        text = f"advisor: {step} ..."
        if self.color:
            text = f"\x1b[2m{text}\x1b[0m"
        self.stream.write(f"\r\x1b[2K{text}")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False
