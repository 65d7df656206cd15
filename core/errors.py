"""Every exception this pack raises on purpose.

Owns the error hierarchy shared by ``core`` and the ComfyUI adapter:

* :class:`WIError` - base of all of them, so boundaries can catch "our" errors in one clause.
* :class:`ParamSyntaxError` - a parameter's value text is invalid; carries the source text and the span of
  the bad part so the message can underline it (routes map it to HTTP 400).
* :class:`LimitExceededError` - too many values or combinations, detected before anything is materialised.
* :class:`UnknownBatchError` - a batch id nobody knows (HTTP 404).
* :class:`InvalidBatchState` - an illegal batch lifecycle transition (HTTP 409).

Plain Python: must not import torch, comfy*, server, nodes, execution, folder_paths, comfy_execution or aiohttp.
"""
from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "WIError",
    "ParamSyntaxError",
    "LimitExceededError",
    "UnknownBatchError",
    "InvalidBatchState",
]


_MAX_QUOTED = 60  # longest offending text quoted in the first line
_MAX_SNIPPET = 100  # longest underline
_SNIPPET_CONTEXT = 40  # characters of context kept either side of the bad span on long lines


class WIError(Exception):
    """Base of every error this pack raises on purpose."""


class ParamSyntaxError(WIError, ValueError):
    """A parameter's value text could not be parsed or validated.

    Attributes:
        param: Parameter name (may be ``""`` when unknown).
        source: The full value text the user wrote.
        position: 0-based character offset of the bad part in ``source``, or ``None`` when not tied to a spot.
        length: Number of characters of the bad part (at least 1 when ``position`` is known).
        message: Short reason, without the parameter name or position.

    ``str(e)`` reads ``parameter "cfg": <reason> at position 4: "1-x"`` and, when the position is known, is
    followed by the source line and a caret line underlining the bad span::

        parameter "cfg": invalid FLOAT value at position 3: "x"
            1, x, 3
               ^
    """

    def __init__(
        self,
        message: str,
        *,
        param: str = "",
        source: str = "",
        position: int | None = None,
        length: int | None = None,
    ) -> None:
        self.message = message
        self.param = param
        self.source = source
        if position is not None:
            position = max(0, min(position, len(source)))
            if length is None:
                length = 1
            length = max(1, length)
        self.position = position
        self.length = length
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments break the default exception pickling (used by multiprocessing / logging).
        return (
            _rebuild_param_error,
            (type(self), self.message, self.param, self.source, self.position, self.length),
        )

    @property
    def offending_text(self) -> str:
        """The text under the caret span, or ``""`` when no position is known."""
        if self.position is None or self.length is None:
            return ""
        return self.source[self.position : self.position + self.length]

    def with_param(self, param: str) -> ParamSyntaxError:
        """Return a copy of this error carrying ``param`` as the parameter name (same class)."""
        return type(self)(
            self.message, param=param, source=self.source, position=self.position, length=self.length
        )

    def headline(self) -> str:
        """The first line of ``str(self)``: parameter, reason, position and offending text."""
        text = f'parameter "{self.param}": {self.message}' if self.param else self.message
        if self.position is not None:
            text += f" at position {self.position}"
            line_no = self._locate()[0]
            if "\n" in self.source:
                text += f" (line {line_no})"
            # Quote only the first line of the span; a caret line below shows where it sits.
            bad = self.offending_text.split("\n", 1)[0]
            if len(bad) > _MAX_QUOTED:
                bad = bad[: _MAX_QUOTED - 3] + "..."
            if bad:
                text += f': "{bad}"'
        return text

    def _locate(self) -> tuple[int, int, int, int]:
        """Return (1-based line number, column, line start, line end) of ``position`` within ``source``.

        Offsets rather than the line itself: a pasted 20 MB value is one line, and copying it (twice, for
        the headline and the snippet) used to cost more than parsing up to the error.
        """
        pos = self.position or 0
        line_start = self.source.rfind("\n", 0, pos) + 1
        line_end = self.source.find("\n", pos)
        if line_end == -1:
            line_end = len(self.source)
        line_no = self.source.count("\n", 0, pos) + 1
        return line_no, pos - line_start, line_start, line_end

    def __str__(self) -> str:
        text = self.headline()
        if self.position is None or not self.source:
            return text
        _line_no, col, line_start, line_end = self._locate()
        line_length = line_end - line_start
        width = max(1, min(self.length or 1, line_length - col, _MAX_SNIPPET))
        # Long lines (a pasted prompt) are shown as a window around the bad span.
        lead = ""
        window_start = line_start
        if col > _SNIPPET_CONTEXT and line_length > _MAX_SNIPPET:
            window_start, col, lead = line_start + col - _SNIPPET_CONTEXT, _SNIPPET_CONTEXT, "..."
        window_end, tail = line_end, ""
        if line_end - window_start > col + width + _SNIPPET_CONTEXT:
            window_end, tail = window_start + col + width + _SNIPPET_CONTEXT, "..."
        line = self.source[window_start:window_end]
        # Keep tabs in the caret prefix so the caret lines up with the source line however tabs render.
        prefix = " " * len(lead) + "".join(ch if ch == "\t" else " " for ch in line[:col])
        return f"{text}\n    {lead}{line}{tail}\n    {prefix}{'^' * width}"


def _rebuild_param_error(
    cls: type[ParamSyntaxError],
    message: str,
    param: str,
    source: str,
    position: int | None,
    length: int | None,
) -> ParamSyntaxError:
    return cls(message, param=param, source=source, position=position, length=length)


class LimitExceededError(ParamSyntaxError):
    """Too many values for one parameter, or too many combinations; raised before materialising them."""


class UnknownBatchError(WIError, KeyError):
    """No batch with this id is known (expired, cleaned up, or never existed). Routes map it to HTTP 404.

    Args:
        batch_id: The id that was looked up.
        message: Optional full message; defaults to ``unknown batch "<batch_id>"``.
    """

    def __init__(self, batch_id: str, message: str | None = None) -> None:
        self.batch_id = batch_id
        self.message = message if message is not None else f'unknown batch "{batch_id}"'
        super().__init__(batch_id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.batch_id, self.message))

    def __str__(self) -> str:
        # KeyError.__str__ would repr-quote the argument; show the readable message instead.
        return self.message


class InvalidBatchState(WIError):
    """An operation asked for a batch lifecycle transition that is not allowed. Routes map it to HTTP 409."""
