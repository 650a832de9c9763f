"""Binary captures (``perf.data``, ``trace.dat``) read as text through their own tools.

``perf record`` and ``trace-cmd record`` write binary files; ``perf script`` and
``trace-cmd report`` print them as the text lines ``trace_lines`` reads. ``sniff`` tells
such a file by its magic; ``converted_lines`` runs the tool and streams its output (ns
timestamps: ``perf script --ns -F +pid`` adds the pid column, ``trace-cmd report -t``
prints full timestamps). A missing tool raises ``ToolMissing`` with the command to run
elsewhere; a tool that fails leaves its message in ``Conversion.problem``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import IO

PERF_MAGIC = b"PERFILE2"
TRACE_DAT_MAGIC = b"\x17\x08\x44tracing"


@dataclass(frozen=True)
class Tool:
    format: str  # what the file is
    argv: tuple[str, ...]  # the command, the file's path appended
    package: str  # what provides it on Debian/Ubuntu


TOOLS = {
    "perf.data": Tool("perf.data", ("perf", "script", "--ns", "-F", "+pid", "-i"),
                      "linux-perf (Debian) / linux-tools (Ubuntu)"),
    "trace.dat": Tool("trace.dat", ("trace-cmd", "report", "-t", "-i"), "trace-cmd"),
}


class ToolMissing(OSError):
    """The file needs a converter that is not installed."""


def sniff(path: str) -> Tool | None:
    """The converter a binary capture needs, or None for anything else (text, gzip...)."""
    with open(path, "rb") as f:
        head = f.read(len(TRACE_DAT_MAGIC))
    if head.startswith(PERF_MAGIC):
        return TOOLS["perf.data"]
    if head.startswith(TRACE_DAT_MAGIC):
        return TOOLS["trace.dat"]
    return None


class Conversion:
    """The converter running over one file: ``with Conversion(tool, path) as c:`` read
    ``c.stdout``; afterwards ``problem`` says whether the tool failed."""

    def __init__(self, tool: Tool, path: str):
        self.tool = tool
        self.command = [*tool.argv, path]
        if shutil.which(tool.argv[0]) is None:
            shown = " ".join(tool.argv + ("FILE",))
            raise ToolMissing(f"{path} is a {tool.format} file: kvmtop reads it through `{shown}`, and "
                              f"{tool.argv[0]} is not installed (install {tool.package}, or run that "
                              f"command where it is and report its output)")
        self.problem: str | None = None
        self.message = ""  # the first line the tool wrote on stderr
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(); a pipe could fill and stall the tool
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=self._err,
                                      stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")

    @property
    def stdout(self) -> IO[str]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    def __enter__(self) -> Conversion:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(stopped_early=exc_type is not None)

    def close(self, stopped_early: bool = True) -> None:
        """Reap the tool (killing it when its output is no longer wanted) and keep its complaint."""
        if self._err.closed:
            return
        if stopped_early and self._proc.poll() is None:
            self._proc.kill()
        self.stdout.close()
        status = self._proc.wait()
        self._err.seek(0)
        self.message = next((line.strip() for line in self._err.read().decode("utf-8", "replace").splitlines()
                             if line.strip() and "not valid for" not in line), "")
        self._err.close()
        if status > 0:
            said = f": {self.message}" if self.message else ""
            self.problem = f"{self.command[0]} exited with status {status}{said}"

    def printed_nothing(self) -> None:
        """The tool printed no line: say so (trace-cmd exits 0, silently, on a damaged file)."""
        if self.problem is None:
            self.problem = f"{' '.join(self.command[:2])} printed nothing" + (
                f": {self.message}" if self.message else f" (is it a complete {self.tool.format} file?)")
