"""Run the `dhal` command in-process and capture what it prints (shared by the CLI-level tests)."""

from __future__ import annotations

import contextlib
import io
from typing import NamedTuple

SHORT_EPISODES = ("--override", "sim.episode_length_s=0.3", "--no-progress")
"""15 control steps per episode: shorter than one push/glide cycle, enough to exercise a command."""


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def run_dhal(*args: str) -> CliResult:
    from dhal.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return CliResult(code, out.getvalue(), err.getvalue())
