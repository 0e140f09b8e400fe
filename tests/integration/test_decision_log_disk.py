"""The decision log on a small real filesystem (a tmpfs) that fills up: `/readyz` says so before entries are
lost, and a SIGTERM while the log cannot be written spills what waits for the next start to replay. Its
files made immutable there: `/readyz` says so in every worker. Mounting and `chattr` need root; elsewhere
these tests skip, saying so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from store.decision_log import Decision, DecisionLog, DecisionLogUnavailable, LogBounds
from store.decision_log.spill import spill_prefix
from tests.support.served import Server, World, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")

#: what the disk in issue 51 had left
LEFT = 28 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted after the test."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk but `leave` bytes with one file, returned so the test can free the disk again."""
    filler = disk / "filler"
    with filler.open("ab") as out:
        out.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


def served(account: str, n: int) -> Decision:
    output: dict[str, object] = {"churn_probability": 0.5, "reasons": [{"text": "x" * 200}] * 5}
    return Decision(f"req-{n}", datetime.now(UTC), "score", account, "model", {}, None, "h", output)  # type: ignore[arg-type]


def test_a_failed_write_on_a_full_disk_makes_the_log_unwritable_though_its_probe_row_still_fits(
    small_disk: Path,
) -> None:
    """With 28 KB left, rewriting the probe row still fit, so the log said it was writable while every
    batch failed and the entries piled up."""
    log = DecisionLog(f"sqlite:///{small_disk}/decisions.db", retry_delays=(0.05,))
    log.start()
    log.submit(served("a-0", 0))
    assert log.flush()
    log.check_writable()
    fill(small_disk, LEFT)
    for n in range(1, 400):
        log.submit(served(f"a-{n}", n))
    assert not log.flush(1.0) and log.stats["pending"] == 399
    with pytest.raises(DecisionLogUnavailable, match=r"its last write failed .*full.*399 entries wait"):
        log.check_writable()
    log.close(timeout=0)


def test_a_log_disk_below_its_floor_or_a_backlog_past_its_bound_is_not_writable(small_disk: Path) -> None:
    url = f"sqlite:///{small_disk}/decisions.db"
    log = DecisionLog(url, bounds=LogBounds(min_free_bytes=1_000_000, max_pending=2))
    log.check_writable()
    fill(small_disk, LEFT)
    DecisionLog(url).check_writable()  # the probe row alone still fits: all `/readyz` asked before
    with pytest.raises(DecisionLogUnavailable, match=r"0\.0\d MB free on its disk, below the floor of 1 MB"):
        log.check_writable()
    for n in range(3):  # its writer never started: they wait
        log.submit(served(f"a-{n}", n))
    with pytest.raises(DecisionLogUnavailable, match="3 entries wait to be written, more than 2"):
        log.check_writable()
    log.close(timeout=0)


def test_an_immutable_log_is_not_writable_though_its_pooled_connection_still_writes_it(
    small_disk: Path,
) -> None:
    """On a tmpfs a connection opened before `chattr +i` goes on writing the file; the probe went through
    it, so the log said it was writable while any connection opened since could only read."""
    log = DecisionLog(f"sqlite:///{small_disk}/decisions.db")
    log.check_writable()
    files = sorted(small_disk.glob("decisions.db*"))
    subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    try:
        with pytest.raises(DecisionLogUnavailable, match="attempt to write a readonly database"):
            log.check_writable()
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)
    log.check_writable()
    log.close(timeout=0)


def readiness_answers(server: Server, times: int = 12) -> list[requests.Response]:
    """`/readyz` asked on a new connection each time, so the operating system hands it to either worker."""
    return [server.call("GET", "/readyz", key=None, headers={"Connection": "close"}) for _ in range(times)]


def test_an_immutable_log_is_not_ready_in_any_worker_though_a_pooled_connection_still_writes_it(
    served_world: World, small_disk: Path, redis_url: str, tmp_path: Path
) -> None:
    """Issue 51, ready means ready: on a tmpfs, a connection SQLite opened before `chattr +i` still writes
    the file, and one opened since can only read it. Each worker's probe went through its pooled
    connection, so `/readyz` said 200 and writable while a worker whose pool had opened one since held
    2,683 entries it could not write."""
    world = served_world
    env = {
        "RETAIN_SERVE__WORKERS": "2",
        "RETAIN_COCKPIT__SESSIONS": "redis",
        "RETAIN_REDIS_URL": redis_url,
        "RETAIN_SERVE__DECISION_LOG_URL": f"sqlite:///{small_disk}/decisions.db",
        "RETAIN_SERVE__LOG_MIN_FREE_MB": "0",
    }
    server = Server(world, tmp_path / "serve.log", world.latest, **env)
    try:
        # every worker that answers has opened its pool's connection, and no write is under way
        assert wait_for(lambda: all(r.status_code == 200 for r in readiness_answers(server)))
        files = sorted(small_disk.glob("decisions.db*"))
        subprocess.run(["chattr", "+i", *map(str, files)], check=True)
        try:
            for account in world.active[:5]:  # served meanwhile: a pool that still writes is no proof
                assert server.call("GET", f"/v1/accounts/{account}/next-best-actions").status_code == 200
            answers = readiness_answers(server)
            assert [r.status_code for r in answers] == [503] * len(answers), [r.text for r in answers]
            for answer in answers:
                body = answer.json()
                assert not body["decision_log_writable"] and "decision_log" in body["errors"], body
        finally:
            subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        assert wait_for(lambda: all(r.status_code == 200 for r in readiness_answers(server)))
    finally:
        server.stop()


def metric(server: Server, name: str) -> float:
    for line in server.call("GET", "/metrics", key=None).text.splitlines():
        if line.startswith(f"retain_decision_log_{name}"):
            return float(line.split()[1])
    raise AssertionError(f"no retain_decision_log_{name} in /metrics")


def test_a_full_log_disk_is_not_ready_and_a_sigterm_spills_what_waits_for_the_next_start(
    served_world: World, small_disk: Path, tmp_path: Path
) -> None:
    """Issue 51, failure 4: `/readyz` ready and writable with 28 KB left while 829 entries waited, and a
    SIGTERM dropped them (180 accepted feedback, 308 decisions) with one log line. The configured spill
    folder is on the full disk too: the spill lands in the store's serving folder instead."""
    world = served_world
    env = {
        "RETAIN_SERVE__DECISION_LOG_URL": f"sqlite:///{small_disk}/decisions.db",
        "RETAIN_SERVE__LOG_MIN_FREE_MB": "0.5",
        "RETAIN_SERVE__LOG_SPILL_DIR": str(small_disk / "spill"),
        "RETAIN_SERVE__LOG_DRAIN_SECONDS": "1",
    }
    server = Server(world, tmp_path / "first.log", world.latest, **env)
    try:
        answer = server.call("GET", f"/v1/accounts/{world.active[0]}/next-best-actions")
        recommended = [a["recommendation_id"] for a in answer.json()["actions"]]
        assert recommended and wait_for(lambda: metric(server, "pending") == 0)
        assert server.call("GET", "/readyz", key=None).status_code == 200
        filler = fill(small_disk, LEFT)

        ready = server.call("GET", "/readyz", key=None)
        assert ready.status_code == 503 and not ready.json()["decision_log_writable"], ready.text
        assert "below the floor of 0.5 MB" in ready.json()["errors"]["decision_log"]
        fill(small_disk, 0)  # now not even a row fits: entries and feedback wait
        scored = server.call(
            "POST", "/v1/score", json={"accounts": [{"account_id": a} for a in world.active]}
        )
        assert scored.status_code == 200
        feedback = server.call(
            "POST",
            f"/v1/recommendations/{recommended[0]}/feedback",
            json={"status": "accepted", "actor": "c"},
        )
        assert feedback.status_code == 202, feedback.text
        queued = 1
        waiting = len(world.active) + queued
        assert wait_for(lambda: metric(server, "pending") == waiting)  # the counts are copied every second
    finally:
        server.process.send_signal(signal.SIGTERM)
        # uvicorn raises the signal again once it has shut down gracefully
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    said = server.log.read_text()
    # only this log's spill: another test's log may have left its own in the store's serving folder
    url = env["RETAIN_SERVE__DECISION_LOG_URL"]
    [spill] = (world.store.serving_dir / "spill").glob(f"{spill_prefix(url)}*.jsonl")
    assert f"{waiting} spilled to {spill} ({waiting - queued} decisions, {queued} feedback)" in said, said[
        -3000:
    ]
    assert len(spill.read_text().splitlines()) == waiting

    filler.unlink()
    restarted = Server(world, tmp_path / "second.log", world.latest, **env)
    try:
        assert wait_for(lambda: metric(restarted, "replayed") == waiting)
        assert not spill.exists() and f"{waiting} entries replayed from {spill}" in restarted.log.read_text()
        assert wait_for(lambda: restarted.call("GET", "/readyz", key=None).status_code == 200)
    finally:
        restarted.stop()
    log = DecisionLog(f"sqlite:///{small_disk}/decisions.db")
    assert feedback.json()["feedback_id"] in {f.feedback_id for f in log.feedback(limit=10)}
    assert len(log.decisions(kind="score", limit=10_000)) == len(world.active)
    log.close()
