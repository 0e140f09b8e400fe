"""A lean HTTP/1.1 load client for the serving benchmark: it should measure the server, not itself.

One asyncio `Protocol` per connection (on uvloop when installed), one connection per concurrent worker, kept
alive; requests are encoded once up front and cycled. Parsing reads the status line, finds the end of the
headers and takes `Content-Length` bytes (or the chunks of a chunked body); nothing else is decoded. A
general HTTP client such as httpx spends a core of its own at concurrency 16 and would be measuring its
own overhead; the serving benchmark measures this client's ceiling on `/healthz` in the same run.

    python -m experiments.benchmarks.load URL [--requests 2000] [--concurrency 1] [--seconds 10]

Only loopback targets are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np

try:  # a dependency of uvicorn's standard extras; the plain asyncio loop works too, a little slower
    import uvloop

    _LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _LOOP_FACTORY = None

#: how much of the first non-200 answer is kept, to be shown
SAMPLE_BYTES = 300


def encode(
    method: str,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One HTTP/1.1 keep-alive request, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"only loopback targets (127.0.0.1) are measured, not {host!r}")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: `request` writes bytes and resolves with (status, body) when the whole
    answer has arrived."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed mid-answer ({exc})"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        answer = self._parse()
        if answer is not None:
            self.waiter.set_result(answer)

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        start = end + 4
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            size = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buf) < start + size:
                return None
            body = bytes(buf[start : start + size])
            del buf[: start + size]
        elif b"\r\ntransfer-encoding: chunked" in head:
            chunks = self._chunks(start)
            if chunks is None:
                return None
            body, consumed = chunks
            del buf[:consumed]
        else:  # no length: the body runs to the end of the connection (HTTP/1.0 style); not kept alive
            body = b""
            del buf[:start]
        self.close_after = b"\r\nconnection: close" in head
        return status, body

    def _chunks(self, at: int) -> tuple[bytes, int] | None:
        buf, parts = self.buffer, list[bytes]()
        while True:
            line_end = buf.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buf[at:line_end]).split(b";")[0], 16)
            at = line_end + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", at - 2)
                return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else None
            if len(buf) < at + size + 2:
                return None
            parts.append(bytes(buf[at : at + size]))
            at += size + 2

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def _connect(host: str, port: int) -> _Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(_Connection, host, port)
    return protocol


@dataclass
class Result:
    """What one run measured: latency per answered request, the wall time, and the answers that were not
    200 (including dropped connections, counted under status 0)."""

    concurrency: int
    latencies_ms: np.ndarray
    seconds: float
    client_cpu_seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    error_sample: str | None = None

    @property
    def requests(self) -> int:
        return int(self.latencies_ms.size) + self.statuses[0]

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    @property
    def requests_per_s(self) -> float:
        """Answers with status 200 per second of wall time."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms.size else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "p50_ms": round(self.percentile_ms(50), 3),
            "p90_ms": round(self.percentile_ms(90), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "max_ms": round(float(self.latencies_ms.max()), 3) if self.latencies_ms.size else None,
            "requests_per_s": round(self.requests_per_s, 1),
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_sample": self.error_sample,
            "client_cpu_ms_per_request": round(1e3 * self.client_cpu_seconds / max(self.requests, 1), 4),
        }


async def _run(
    host: str, port: int, requests: Sequence[bytes], concurrency: int, total: int, seconds: float
) -> Result:
    connections = [await _connect(host, port) for _ in range(concurrency)]
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    sample: list[str] = []
    left = [total]
    n = len(requests)

    async def worker(index: int) -> None:
        conn = connections[index]
        i = index * max(1, n // concurrency)
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            if conn.closed:
                conn = await _connect(host, port)
            data = requests[i % n]
            i += 1
            started = time.perf_counter_ns()
            try:
                status, body = await conn.request(data)
            except ConnectionError as e:
                statuses[0] += 1
                if not sample:
                    sample.append(str(e))
                conn.closed = True
                continue
            latencies.append(time.perf_counter_ns() - started)
            statuses[status] += 1
            if status != 200 and not sample:
                sample.append(f"{status}: {body[:SAMPLE_BYTES].decode('utf-8', 'replace')}")
            if conn.close_after:
                conn.closed = True
        if conn.transport is not None:
            conn.transport.close()

    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return Result(
        concurrency=concurrency,
        latencies_ms=np.asarray(latencies, dtype=np.float64) / 1e6,
        seconds=elapsed,
        client_cpu_seconds=cpu,
        statuses=statuses,
        error_sample=sample[0] if sample else None,
    )


def _loop_run(coro: Coroutine[Any, Any, Result]) -> Result:
    with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
        return runner.run(coro)


def run(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int = 1,
    total: int = 2_000,
    seconds: float = 60.0,
) -> Result:
    """Send `requests` (cycled; each worker starts at its own offset) over `concurrency` keep-alive
    connections until `total` have been sent or `seconds` have passed, whichever comes first. Connections
    are opened before the clock starts."""
    check_loopback(host)
    if not requests:
        raise ValueError("no requests to send")
    return _loop_run(_run(host, port, requests, concurrency, total, seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="e.g. http://127.0.0.1:8000/healthz")
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--header", action="append", default=[], help="NAME: VALUE, repeatable")
    parser.add_argument("--data", help="a body to POST (JSON)")
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = args.data.encode() if args.data is not None else None
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    path = url.path + (f"?{url.query}" if url.query else "")
    request = encode("POST" if body is not None else "GET", host, port, path or "/", headers, body)
    result = run(
        host, port, [request], concurrency=args.concurrency, total=args.requests, seconds=args.seconds
    )
    print(json.dumps(result.summary(), indent=2))
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
