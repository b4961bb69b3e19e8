"""A worker's share of the node, and the state a node's workers share."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from media_node.calls import CallRegistry, SharedRecords
from media_node.health import SharedReadiness
from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector_core.config import Settings, load_settings
from voice_connector_core.shared_files import ExpirySweeper
from voice_connector_core.twilio.security import ReplayGuard
from voice_connector_core.workers import WorkerShard


def settings(**env: str) -> Settings:
    return load_settings("cfg/voice-connector.ini", env=env)


def test_every_session_key_belongs_to_exactly_one_worker() -> None:
    keys = [f"B2B.{i}.{i * 7}.{i * 13}.{1700000000 + i}" for i in range(3000)]
    shards = [WorkerShard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(k)] for k in keys]
    assert all(len(o) == 1 for o in owners)
    counts = [sum(o == [i] for o in owners) for i in range(3)]
    assert min(counts) > 800  # an even split (1000 each), not a lopsided one
    assert all(WorkerShard().owns(k) for k in keys[:10])


def test_workers_split_calls_ports_and_event_sockets() -> None:
    base = settings(VC_GENERAL_MAX_CALLS="41", VC_OPENSIPS_RTP_PORT_RANGE="40000-40999")
    shares = [WorkerShard(i, 4).apply(base) for i in range(4)]
    assert [s.general.max_calls for s in shares] == [11] * 4
    assert len({s.opensips.event_port for s in shares}) == 4
    assert shares[0].opensips.event_port == base.opensips.event_port
    ranges = [s.opensips.ports for s in shares]
    ports = [set(range(low, high + 1)) for low, high in ranges]
    assert all(p <= set(range(40000, 41000)) for p in ports)
    assert sum(len(p) for p in ports) == len(set().union(*ports)) == 1000  # disjoint
    assert WorkerShard().apply(base) is base


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="fewer ports"):
        WorkerShard(0, 4).apply(settings(VC_OPENSIPS_RTP_PORT_RANGE="40000-40002"))
    with pytest.raises(ValueError, match="outside"):
        WorkerShard(2, 2)


def test_a_call_token_opens_one_stream_across_the_workers(tmp_path: Path) -> None:
    now = [1000.0]
    first, second = (ReplayGuard(lambda: now[0], directory=tmp_path) for _ in range(2))
    assert first.use("nonce-1", expires=1060.0)
    assert not second.use("nonce-1", expires=1060.0)  # the other worker sees it spent
    assert not first.use("nonce-1", expires=1060.0)
    assert second.use("nonce-2", expires=1060.0)
    now[0] = 1100.0  # both expired: their files are cleared
    assert second.use("nonce-3", expires=1160.0)
    assert len(list(tmp_path.iterdir())) == 1


def test_any_worker_answers_for_a_call_another_one_ran(tmp_path: Path) -> None:
    shared = SharedRecords(tmp_path)
    ran_it = CallRegistry(settings(), shared=shared)
    other = CallRegistry(settings(), shared=SharedRecords(tmp_path))
    record = CallRecord(call_id="CA-elsewhere", transport="twilio", flavor="default")
    record.end_with(CallOutcome.CALLER_HANGUP)
    ran_it.recent[record.call_id] = record
    shared.save(record)
    assert other.get("CA-elsewhere") is None
    assert other.get_json("CA-elsewhere") == record.to_json()
    assert other.get_json("CA-unknown") is None
    (tmp_path / "garbage.json").write_text("{not json")
    old = time.time() - 7200
    for path in tmp_path.glob("*.json"):
        os.utime(path, (old, old))
    shared.prune()
    assert list(tmp_path.glob("*.json")) == []


def test_the_node_is_ready_only_while_every_worker_says_so(tmp_path: Path) -> None:
    first, second = (SharedReadiness(tmp_path, i, 2) for i in range(2))
    assert first.node() == (False, "worker 0: not started")
    first.publish(True, "ok")
    second.publish(False, "models: loading")
    assert second.node() == (False, "worker 1: models: loading")
    second.publish(True, "ok")
    assert first.node() == (True, "2 workers ready") == second.node()
    stale = json.loads((tmp_path / "1.json").read_text())
    stale["at"] -= SharedReadiness.STALE_SECS + 5  # worker 1 hung or died
    (tmp_path / "1.json").write_text(json.dumps(stale))
    ok, why = first.node()
    assert not ok and why.startswith("worker 1: silent for")


def test_expired_shared_files_are_swept_at_most_once_a_minute(tmp_path: Path) -> None:
    now = [10_000.0]
    sweeper = ExpirySweeper(tmp_path, clock=lambda: now[0])
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    for path, mtime in ((old, 5_000.0), (fresh, 9_999.0)):
        path.write_text("x")
        os.utime(path, (mtime, mtime))
    sweeper.sweep(cutoff=9_000.0)
    assert not old.exists() and fresh.exists()
    os.utime(fresh, (5_000.0, 5_000.0))
    now[0] += 30  # within the minute: the sweep on this call is skipped
    sweeper.sweep(cutoff=9_000.0)
    assert fresh.exists()
    now[0] += 31
    sweeper.sweep(cutoff=9_000.0)
    assert not fresh.exists()
