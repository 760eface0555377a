"""How many requests/s the sandbox serves to 16 concurrent keep-alive clients.

    python benchmarks/sandbox_throughput.py [--clients 16] [--seconds 5] [--url URL | --in-process]

Without --url it starts `rpd sandbox --plan unlimited` in a separate process, so the load
generator does not share the server's interpreter (and GIL). `--in-process` runs the sandbox in a
thread of this process instead, as `rpd send --sandbox` does (server and client share the GIL).
The load generator is asyncio over raw keep-alive sockets, so it costs little next to the server.
Each client repeats rpd's identify + track mix: search the person by userId, create it, patch
it, create a lead.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import orjson

TOKEN = "sandbox-token"
USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
_CONTENT_LENGTH = re.compile(rb"(?i)content-length: (\d+)")


def request(method: str, path: str, body: object | None = None) -> bytes:
    payload = orjson.dumps(body) if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: sandbox\r\nx-api-token: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        raise RuntimeError(f"answer without Content-Length: {head!r}")
    return status, await reader.readexactly(int(length.group(1)))


async def client(
    n: int, host: str, port: int, deadline: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    while time.perf_counter() < deadline:
        user = f"u-{n}-{i}"
        steps = [
            request(
                "GET",
                f"/api/v2/itemSearch/field?term={user}&entity_type=person"
                f"&field={USER_ID_FIELD}&match=exact",
            ),
            request(
                "POST",
                "/api/v2/persons",
                {
                    "name": f"Person {user}",
                    "emails": [{"value": f"{user}@example.com", "primary": True}],
                    "custom_fields": {USER_ID_FIELD: user},
                },
            ),
        ]
        for raw in steps:
            started = time.perf_counter()
            status, body = await exchange(reader, writer, raw)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        person_id = orjson.loads(body)["data"]["id"]
        for raw in (
            request("PATCH", f"/api/v2/persons/{person_id}", {"job_title": "Engineer"}),
            request(
                "POST",
                "/v1/leads",
                {
                    "title": "Signed up",
                    "person_id": person_id,
                    "value": {"amount": 10, "currency": "EUR"},
                    "origin_id": f"rpd:{user}",
                },
            ),
        ):
            started = time.perf_counter()
            status, _ = await exchange(reader, writer, raw)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        i += 1
    writer.close()


async def run(url: str, clients: int, seconds: float) -> None:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            client(n, parts.hostname, parts.port, deadline, latencies, statuses)
            for n in range(clients)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(f"clients: {clients} keep-alive, duration: {elapsed:.1f} s")
    print(f"requests: {len(latencies)}, statuses: {dict(sorted(statuses.items()))}")
    print(f"throughput: {len(latencies) / elapsed:.0f} requests/s")
    print(
        f"latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--url", help="an already running sandbox (plan unlimited)")
    parser.add_argument("--in-process", action="store_true", help="serve from a thread here")
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args.url, args.clients, args.seconds))
        return 0
    if args.in_process:
        from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions

        with Sandbox(SandboxOptions(plan="unlimited")) as sandbox:
            asyncio.run(run(sandbox.url, args.clients, args.seconds))
        return 0
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rudder_pipedrive_cli",
            "sandbox",
            "--port",
            "0",
            "--plan",
            "unlimited",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        asyncio.run(run(url, args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
