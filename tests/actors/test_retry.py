"""Retries of storage steps: which errors are transient, the backoff, the final report."""

import errno

import pytest

from tracklift.actors.retry import RetryPolicy, StorageUnavailable, call_with_retry, is_transient
from tracklift.errors import DataError


def test_transient_and_permanent_errors():
    from botocore.exceptions import ClientError, EndpointConnectionError

    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert is_transient(OSError(errno.EIO, "We encountered an internal error"))  # s3fs's 5xx
    slow = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"
    )
    assert is_transient(slow)
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "Get"
    )
    assert not is_transient(denied)
    for exc in (
        FileNotFoundError("x"),
        PermissionError("x"),
        OSError(errno.ENOSPC, "disk full"),
        DataError("s3://b/k", "corrupt"),
        ValueError("bad"),
    ):
        assert not is_transient(exc), exc


def test_outputs_lost_before_status_json_are_written_again():
    from tracklift.labeling.outputs import OutputsMissing

    calls = []

    def write_outputs():
        calls.append(1)
        if len(calls) == 1:
            raise OutputsMissing("written but not on storage: s3://b/labels/pred/x.txt")
        return "written"

    policy = RetryPolicy(attempts=3, base_delay_s=0.0)
    assert call_with_retry(write_outputs, "write the outputs", policy, sleep=lambda s: None) == "written"
    assert len(calls) == 2


def test_backoff_grows_and_is_capped():
    assert RetryPolicy(attempts=5, base_delay_s=0.5, factor=2, max_delay_s=3).delays() == [0.5, 1.0, 2.0, 3.0]
    assert RetryPolicy(attempts=1).delays() == []


def test_transient_failures_are_retried_then_succeed():
    calls, waits, logs = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("endpoint down")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay_s=0.25)
    assert call_with_retry(flaky, "write x", policy, log=logs.append, sleep=waits.append) == "ok"
    assert len(calls) == 3 and waits == [0.25, 0.5]
    assert len(logs) == 2 and "write x" in logs[0] and "attempt 1/4" in logs[0]


def test_exhausted_retries_are_reported_with_the_last_error():
    waits = []

    def down():
        raise ConnectionRefusedError("endpoint down")

    with pytest.raises(StorageUnavailable, match="read y failed 3 times.*endpoint down") as info:
        call_with_retry(down, "read y", RetryPolicy(attempts=3, base_delay_s=1), sleep=waits.append)
    assert waits == [1.0, 2.0] and isinstance(info.value.__cause__, ConnectionRefusedError)


def test_permanent_errors_are_raised_at_once():
    calls = []

    def corrupt():
        calls.append(1)
        raise DataError("s3://b/scene/depth/3.png", "corrupt or unreadable image")

    with pytest.raises(DataError, match="depth/3.png"):
        call_with_retry(corrupt, "read", RetryPolicy(attempts=5), sleep=lambda s: None)
    assert len(calls) == 1


def test_storage_unavailable_pickles():
    import pickle

    e = StorageUnavailable("write", 5, ConnectionRefusedError("down"))
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e)


def test_the_overall_deadline_stops_retries_before_the_attempts_run_out():
    now, waits, calls = [0.0], [], []

    def down():
        calls.append(now[0])
        now[0] += 0.5  # each try takes half a second (a request timing out)
        raise ConnectionRefusedError("endpoint down")

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    policy = RetryPolicy(attempts=10, base_delay_s=1.0, factor=2.0, max_delay_s=30.0, deadline_s=6.0)
    with pytest.raises(StorageUnavailable, match=r"failed 3 times \(deadline 6 s reached\)") as info:
        call_with_retry(down, "write z", policy, sleep=sleep, clock=lambda: now[0])
    # tries at 0, 1.5, 4.0; the next wait (4 s) would end at 8.5 > 6: given up, 7 attempts unused
    assert calls == [0.0, 1.5, 4.0] and waits == [1.0, 2.0]
    assert info.value.deadline_s == 6.0 and isinstance(info.value.__cause__, ConnectionRefusedError)
    assert str(pickle_roundtrip(info.value)) == str(info.value)


def pickle_roundtrip(e):
    import pickle

    return pickle.loads(pickle.dumps(e))
