"""Run a program in a real pseudo-terminal and read its screen, as a reader would see it.

`run_in_terminal` starts the program on a pty of a given size (so tqdm sees a terminal, and
Ctrl-C typed there is a real SIGINT to the foreground job), collects everything it writes, and
`screen` replays those bytes on a small VT100 model (carriage return, line feed, cursor up and
down, erase in line, autowrap) to give the lines left on the screen and in its scrollback.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import termios
import time
from dataclasses import dataclass

CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


@dataclass
class Session:
    raw: bytes  # everything the program wrote to the terminal
    lines: list[str]  # the screen and its scrollback, trailing blanks removed
    status: int  # exit status (128 + n for signal n)


def screen(raw: bytes, cols: int) -> list[str]:
    """The lines a terminal `cols` wide shows after receiving `raw` (scrollback included)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    pending = False  # autowrap: the cursor sits past the last column until the next character
    text = raw.decode("utf-8", errors="replace")
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\x1b":
            m = CSI.match(text, i)
            if m is None:
                i += 1
                continue
            args, op = m.group(1), m.group(2)
            n = int(args) if args.isdigit() else 1
            if op == "A":
                row = max(0, row - n)
            elif op == "B":
                row += n
            elif op == "C":
                col = min(cols - 1, col + n)
            elif op == "D":
                col = max(0, col - n)
            elif op == "K":
                while len(lines) <= row:
                    lines.append([])
                line = lines[row]
                if args in ("", "0"):
                    del line[col:]
                elif args == "2":
                    line[:] = [" "] * len(line)
            pending = False
            i = m.end()
            continue
        if c == "\r":
            col, pending = 0, False
        elif c == "\n":
            row, pending = row + 1, False
        elif c == "\b":
            col, pending = max(0, col - 1), False
        elif c >= " ":
            if pending:
                row, col, pending = row + 1, 0, False
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = c
            if col == cols - 1:
                pending = True
            else:
                col += 1
        while len(lines) <= row:
            lines.append([])
        i += 1
    shown = ["".join(line).rstrip() for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


def run_in_terminal(argv: list[str], *, cols: int = 140, rows: int = 40, cwd=None, env=None,
                    timeout: float = 240, ctrl_c_after: str | None = None) -> Session:
    """Run `argv` on a pty `cols` x `rows`; with `ctrl_c_after`, type Ctrl-C once that text
    has appeared on the terminal. Returns what was written, the screen and the exit status."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            if cwd is not None:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env if env is not None else os.environ)
        finally:
            os._exit(127)
    raw, typed, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the program has ended and closed the terminal
                    break
                if not chunk:
                    break
                raw += chunk
            if ctrl_c_after and not typed and ctrl_c_after.encode() in raw:
                os.write(fd, b"\x03")  # the terminal turns it into SIGINT
                typed = True
        else:
            os.kill(pid, 9)
            raise TimeoutError(f"{argv} ran past {timeout} s; it wrote:\n{raw.decode()[-3000:]}")
    finally:
        _, wait = os.waitpid(pid, 0)
        os.close(fd)
    status = os.waitstatus_to_exitcode(wait)
    return Session(raw, screen(raw, cols), status if status >= 0 else 128 - status)
