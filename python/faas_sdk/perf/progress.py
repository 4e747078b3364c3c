"""A live progress line for long measurements: carriage-return updates on a terminal's stderr,
an updating display in Jupyter, nothing anywhere else (pipes, CI logs, files)."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

__all__ = ["Progress", "detect_mode"]

TERMINAL = "terminal"
NOTEBOOK = "notebook"
SILENT = "silent"


def _in_notebook() -> bool:
    # Never import IPython ourselves: if it is not loaded, we are not in a notebook.
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return False
    try:
        shell = ipython_mod.get_ipython()
    except Exception:
        return False
    # ZMQInteractiveShell: Jupyter notebook/lab kernels; TerminalInteractiveShell is a terminal.
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def detect_mode(stream: Optional[TextIO] = None) -> str:
    """"notebook" inside a Jupyter kernel, "terminal" when `stream` (default stderr) is a TTY,
    else "silent"."""
    if _in_notebook():
        return NOTEBOOK
    stream = stream if stream is not None else sys.stderr
    try:
        return TERMINAL if stream is not None and stream.isatty() else SILENT
    except (AttributeError, ValueError):  # closed or replaced stream
        return SILENT


class Progress:
    """A progress bar over a fraction in [0, 1] with a free-form status text.

    ``enabled``: None detects (see ``detect_mode``), False never shows anything, True shows it
    on stderr even when stderr is not a TTY (still as a notebook display inside Jupyter).
    Updates are drawn at most every `min_interval` seconds; call ``close()`` at the end (or use
    it as a context manager) to draw the final state and end the line.
    """

    def __init__(self, description: str = "", *, enabled: Optional[bool] = None,
                 stream: Optional[TextIO] = None, width: int = 24,
                 min_interval: float = 0.1) -> None:
        self.description = description
        self.width = width
        self.min_interval = min_interval
        self._stream = stream
        if enabled is False:
            self.mode = SILENT
        else:
            detected = detect_mode(stream)
            self.mode = TERMINAL if enabled and detected == SILENT else detected
        self._last_draw = 0.0
        self._last_len = 0
        self._handle: Any = None
        self._closed = False
        self._fraction = 0.0
        self._status = ""

    @property
    def active(self) -> bool:
        return self.mode != SILENT

    def update(self, fraction: float, status: str = "", force: bool = False) -> None:
        """Sets the progress (clamped to [0, 1]) and status; redraws when due."""
        self._fraction = min(1.0, max(0.0, fraction))
        self._status = status
        if not self.active or self._closed:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._draw()

    def close(self) -> None:
        if self._closed:
            return
        if self.active:
            self._draw()
            if self.mode == TERMINAL:
                self._write("\n")
        self._closed = True

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- drawing -----------------------------------------------------------------------------

    def text(self) -> str:
        """The line as drawn on a terminal."""
        filled = int(round(self._fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        head = f"{self.description} " if self.description else ""
        return f"{head}[{bar}] {self._fraction * 100:5.1f}%  {self._status}".rstrip()

    def _write(self, s: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            stream.write(s)
            stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing
            self.mode = SILENT

    def _draw(self) -> None:
        if self.mode == TERMINAL:
            line = self.text()
            pad = " " * max(0, self._last_len - len(line))  # erase a longer previous line
            self._last_len = len(line)
            self._write("\r" + line + pad)
        elif self.mode == NOTEBOOK:
            self._draw_notebook()

    def _draw_notebook(self) -> None:
        try:
            from IPython.display import HTML, display
        except ImportError:
            self.mode = SILENT
            return
        import html
        head = html.escape(self.description)
        body = (f"<div style='font-family:monospace'>{head} "
                f"<progress value='{self._fraction:.4f}' max='1' style='width:16em'></progress> "
                f"{self._fraction * 100:5.1f}% {html.escape(self._status)}</div>")
        obj = HTML(body)
        if self._handle is None:
            self._handle = display(obj, display_id=True)
        else:
            self._handle.update(obj)
