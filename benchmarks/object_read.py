"""Reading a RudderStack backup from S3 against reading the same objects from a local folder.

    python -m benchmarks.object_read [--quick]

Writes a backup of 200,000 events (40 gzipped objects of 5,000 archive lines, in RudderStack's
layout, hours and instances out of key order) to a folder and uploads it to moto's S3 server on
loopback (in this process); then reads it with `EventReader` in a fresh process each way, so
that peak RSS is the reader's own. Targets (issue 17): S3 at least 0.5 of the local events/s,
and its peak memory within 1.3x of the local run's (objects are streamed, never held whole).
Each way is then read once more with its modules imported stage by stage, for `breakdown_mb`:
the RSS (MB) that Python and rpd's reader add, then the store's own modules (fsspec for the
folder; for S3 the standard library modules rpd's S3 client uses, then the client, io/s3.py),
the listing, and reading.
"""

from __future__ import annotations

import gzip
import importlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.measure import peak_mb, status_mb
from benchmarks.verdict import check, main_for, result
from benchmarks.workload import make_event

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "rpd-bench"
RATE_RATIO = 0.5  # S3 events/s / local events/s, at least
MEMORY_RATIO = 1.3  # S3 peak RSS / local peak RSS, at most


def backup(events: int, per_object: int) -> dict[str, bytes]:
    """Object key -> gzipped archive lines, in the layout; FIRST grows with the event number."""
    start = 1_714_521_600  # 2024-05-01T00:00:00Z
    objects: dict[str, bytes] = {}
    for first_event in range(0, events, per_object):
        count = min(per_object, events - first_event)
        lines = []
        for number in range(first_event, first_event + count):
            event = make_event(number)
            lines.append(
                orjson.dumps(
                    {
                        "userId": event["userId"],
                        "payload": {"batch": [event]},
                        "createdAt": "2024-05-01T12:34:56.789Z",
                        "messageId": event["messageId"],
                    }
                )
                + b"\n"
            )
        index = first_event // per_object
        first, last = start + index * 600, start + index * 600 + 599
        hour = (first - start) // 3600
        instance = f"i-{index % 3}"
        name = f"src-1/gw/2024-05-01/{hour}/{instance}/{first}_{last}_ws-1.json.gz"
        objects[name] = gzip.compress(b"".join(lines), compresslevel=6)
    return objects


def measure(path: str, env: dict[str, str], work: Path, *, staged: bool = False) -> dict[str, Any]:
    """Read `path` in a fresh process: events, seconds, peak MB; `staged`, the RSS each stage
    adds (a run of its own: importing the S3 modules one by one moves the peak by ~0.4 MB)."""
    out = work / "object-read.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.object_read", "--child", path, str(out)]
        + (["--staged"] if staged else []),
        check=True,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    figures: dict[str, Any] = orjson.loads(out.read_bytes())
    return figures


def rss_mb() -> float:
    return status_mb("VmRSS")


# What reading each way loads beyond the reader, in the order measured: each stage's modules
# with what they import and the stages before did not.
LOCAL_IMPORTS = (("fsspec (a folder is its local filesystem)", ("fsspec",)),)
S3_IMPORTS = (
    (
        "http.client, ssl, hmac, hashlib, xml.etree and configparser (standard library)",
        ("http.client", "ssl", "hmac", "hashlib", "xml.etree.ElementTree", "configparser"),
    ),
    ("rpd's S3 client (io/s3.py)", ("rudder_pipedrive_cli.io.s3",)),
)


def child(path: str, out: str, staged: bool) -> None:
    """Read `path` as `rpd` does; `staged`, with the store's modules imported stage by stage
    first, the RSS each stage adds (MB), in `breakdown_mb`."""
    breakdown: dict[str, float] = {}
    mark = 0.0

    def stage(name: str) -> float:
        nonlocal mark
        now = rss_mb()
        breakdown[name] = round(now - mark, 1)
        mark = now
        return now

    from rudder_pipedrive_cli.io.readers import EventReader

    start = time.perf_counter()
    stage("Python, this benchmark and rpd's reader")
    if staged:
        for name, modules in S3_IMPORTS if path.startswith("s3://") else LOCAL_IMPORTS:
            for module in modules:
                importlib.import_module(module)
            stage(name)
    reader = EventReader([path])  # lists the objects: the store's client is made by now
    listed = stage("the store's client and the listing")
    events = sum(1 for item in reader if item.decided is None)
    seconds = time.perf_counter() - start
    peak = peak_mb()
    breakdown["reading (the peak's rise over the listing)"] = round(peak - listed, 1)
    figures = {
        "events": events,
        "seconds": seconds,
        "peak_mb": peak,
        "listed_mb": listed,
    }
    if staged:
        figures["breakdown_mb"] = breakdown
    Path(out).write_bytes(orjson.dumps(figures))


def run(quick: bool) -> dict[str, Any]:
    """Events/s and peak RSS reading a backup from S3 (moto on loopback) and from a folder."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    started = time.perf_counter()
    events, per_object = (20, 10) if quick else (200_000, 5_000)
    objects = backup(events, per_object)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            local = work / "backup"
            for name, data in objects.items():
                (local / name).parent.mkdir(parents=True, exist_ok=True)
                (local / name).write_bytes(data)
                client.put_object(Bucket=BUCKET, Key=f"rs/{name}", Body=data)
            s3_env = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            local_run = measure(str(local), {}, work)
            s3_run = measure(f"s3://{BUCKET}/rs", s3_env, work)
            local_run["breakdown_mb"] = measure(str(local), {}, work, staged=True)["breakdown_mb"]
            s3_run["breakdown_mb"] = measure(f"s3://{BUCKET}/rs", s3_env, work, staged=True)[
                "breakdown_mb"
            ]
    finally:
        server.stop()
    for run_figures in (local_run, s3_run):
        assert run_figures["events"] == events, run_figures
        run_figures["events_per_s"] = round(events / run_figures["seconds"])
        # What reading adds once the objects are listed (the store's libraries and client are
        # loaded by then): the memory that would grow if objects were held whole.
        run_figures["reading_mb"] = round(run_figures["peak_mb"] - run_figures["listed_mb"], 1)
        run_figures["peak_mb"] = round(run_figures["peak_mb"], 1)
        run_figures["listed_mb"] = round(run_figures["listed_mb"], 1)
    rate = round(s3_run["events_per_s"] / local_run["events_per_s"], 3)
    memory = round(s3_run["peak_mb"] / local_run["peak_mb"], 3)
    reading = round(s3_run["reading_mb"] / max(local_run["reading_mb"], 1.0), 3)
    return result(
        "objects: reading a backup from S3 (moto, loopback) against a local folder",
        bound="CPU: gunzip and JSON parsing; the S3 fetch overlaps them on the read-ahead thread",
        figures={
            "events": events,
            "objects": len(objects),
            "stored_mb": round(sum(map(len, objects.values())) / 1e6, 1),
            "local": local_run,
            "s3": s3_run,
        },
        baseline={"local_events_per_s": local_run["events_per_s"]},
        targets=[
            check(
                "S3 events/s / local folder events/s",
                rate,
                at_least=RATE_RATIO,
                baseline=f"{local_run['events_per_s']:,} events/s",
            ),
            check(
                "S3 peak RSS / local folder peak RSS",
                memory,
                at_most=MEMORY_RATIO,
                baseline=f"{local_run['peak_mb']} MB",
            ),
            check(
                "S3 / local folder: RSS added by reading, after listing",
                reading,
                at_most=MEMORY_RATIO,
                baseline=f"{local_run['reading_mb']} MB",
            ),
        ],
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:4], staged="--staged" in sys.argv[4:])
    else:
        main_for(run, __doc__)
