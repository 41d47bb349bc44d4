"""Canonicalising a JSON Lines stream on every core, in order.

Appending is bound by parsing and re-serialising JSON, which in CPython holds
the GIL.  So the stream is cut into blocks of whole lines, each block is
canonicalised in a worker process, and the results come back in input order
while the parent process stores the previous block.  At most a few blocks are
in flight, so memory stays flat however long the input is.

A bad line anywhere stops the stream with an :class:`EntryError` naming its
line number; the caller stores the stream in one transaction, so nothing of
the batch is kept.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO

from custodes._proc import exit_with_parent
from custodes.errors import EntryError
from custodes.records.canonical import canonicalize_lines

__all__ = ["BLOCK_SIZE", "canonical_entries", "read_blocks"]

BLOCK_SIZE = 1 << 20
"""Bytes of input per block handed to a worker."""

_INLINE_LIMIT = 1 << 18
"""Inputs smaller than this are not worth starting workers for."""


BOM = b"\xef\xbb\xbf"


def read_blocks(stream: IO[bytes], block_size: int = BLOCK_SIZE) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, block)``; each block holds whole lines.

    A UTF-8 byte-order mark before the first line (as some editors on Windows
    write) and blank lines at the very end of the stream are not entries, and
    are dropped; a blank line anywhere else is still refused.
    """
    held: tuple[int, bytes] | None = None  # the last block: its blank tail is not known yet
    for item in _raw_blocks(stream, block_size):
        if held is not None:
            yield held
        held = item
    if held is not None:
        lineno, block = held
        body = block.rstrip(b" \t\r\n")
        if body:
            yield lineno, body + b"\n"


def _raw_blocks(stream: IO[bytes], block_size: int) -> Iterator[tuple[int, bytes]]:
    lineno = 1
    carry = b""
    first = True
    while True:
        chunk = stream.read(block_size)
        if first:
            while len(chunk) < len(BOM) and chunk and BOM.startswith(chunk):
                more = stream.read(block_size)
                if not more:
                    break
                chunk += more
            chunk = chunk.removeprefix(BOM)
            first = False
        if not chunk:
            if carry:
                yield lineno, carry
            return
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        block, carry = data[: cut + 1], data[cut + 1 :]
        yield lineno, block
        lineno += block.count(b"\n")


def _split(block: bytes) -> list[bytes]:
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


_Result = tuple[list[bytes], int] | tuple[None, int, str]


def _work(task: tuple[int, bytes]) -> _Result:
    first, block = task
    lines = _split(block)
    try:
        return list(canonicalize_lines(lines, first)), len(lines)
    except EntryError as err:
        return None, err.line or first, err.reason


def _unpack(result: _Result) -> tuple[list[bytes], int]:
    if result[0] is None:
        _, line, reason = result
        raise EntryError(reason, line=line)
    return result


def canonical_entries(
    stream: IO[bytes],
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The canonical form of every line of ``stream``, in order.

    ``workers`` defaults to the number of cores; 0 or 1 canonicalises here.
    ``progress`` is called with the number of lines done, block by block.
    """
    blocks = read_blocks(stream)
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count <= 1 or (second is None and len(first[1]) < _INLINE_LIMIT):
        for task in (first,) if second is None else _chain(first, second, blocks):
            entries, n = _unpack(_work(task))
            yield from entries
            if progress is not None:
                progress(n)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(count, initializer=exit_with_parent) as pool:
        inflight: deque[multiprocessing.pool.AsyncResult[_Result]] = deque()
        tasks = _chain(first, second, blocks) if second is not None else iter((first,))
        for task in tasks:
            inflight.append(pool.apply_async(_work, (task,)))
            if len(inflight) > 2 * count:
                entries, n = _unpack(inflight.popleft().get())
                yield from entries
                if progress is not None:
                    progress(n)
        while inflight:
            entries, n = _unpack(inflight.popleft().get())
            yield from entries
            if progress is not None:
                progress(n)


def _chain(
    first: tuple[int, bytes], second: tuple[int, bytes], rest: Iterator[tuple[int, bytes]]
) -> Iterator[tuple[int, bytes]]:
    yield first
    yield second
    yield from rest
