"""The fault-injecting S3 proxy, and what s3fs/botocore do when S3 misbehaves (moto behind the proxy).

Observed behaviour pinned down here (s3fs 2026.9, aiobotocore 3.10, moto 5.2):
- a write that fails part-way leaves a dangling multipart upload: s3fs never aborts it;
- an exception inside ``with fs.open(path, "wb")`` still commits what was written so far;
- botocore retries 500/503, resets and read timeouts; aiohttp additionally re-sends an idempotent
  request (PUT/GET/DELETE, not POST) once when a kept-alive connection is reset;
- a CompleteMultipartUpload whose response is lost is retried, and moto answers the retry 200.
"""

from __future__ import annotations

import http.client
import time
from types import SimpleNamespace

import botocore.retryhandler
import pytest
import s3fs

from tests.helpers.s3_fault_proxy import S3FaultProxy, classify

MiB = 2**20
BIG = bytes(range(256)) * (6 * MiB // 256)  # a multipart upload of two parts: 5 MiB + 1 MiB


@pytest.fixture(scope="module")
def proxy(s3):
    with S3FaultProxy(s3["endpoint"]) as p:
        yield p


@pytest.fixture(autouse=True)
def _fresh_proxy(proxy, monkeypatch):
    """No faults left over; botocore's retry jitter pinned (0.1 s, 0.2 s, ...) for fast, steady tests."""
    monkeypatch.setattr(botocore.retryhandler, "random", SimpleNamespace(random=lambda: 0.1))
    proxy.clear()
    yield
    proxy.clear()
    assert proxy.wait_idle(10)


@pytest.fixture
def direct(s3):
    """s3fs straight to moto, to see the real state behind the proxy."""
    return s3fs.S3FileSystem(**s3["storage_options"], skip_instance_cache=True)


def through(proxy: S3FaultProxy, outer_retries: int = 1, **config) -> s3fs.S3FileSystem:
    """s3fs via the proxy: botocore's legacy retries (max_attempts = retries after the first
    attempt) and s3fs's own retry loop (``fs.retries``) kept small so tests stay fast."""
    config = {"retries": {"max_attempts": 1}, "read_timeout": 5, "connect_timeout": 1, **config}
    fs = s3fs.S3FileSystem(
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": proxy.endpoint},
        config_kwargs=config,
        skip_instance_cache=True,
    )
    fs.retries = outer_retries
    return fs


def write_in_parts(fs: s3fs.S3FileSystem, path: str, data: bytes = BIG) -> None:
    """Multipart upload: each 5 MiB write fills the block and becomes one part."""
    with fs.open(path, "wb", block_size=5 * MiB) as f:
        for i in range(0, len(data), 5 * MiB):
            f.write(data[i : i + 5 * MiB])


def outcomes(proxy: S3FaultProxy, kind: str) -> list[int | str]:
    return [e.outcome for e in proxy.entries(kind)]


def uploads(fs: s3fs.S3FileSystem, bucket: str) -> list[str]:
    """Keys with an unfinished multipart upload in the bucket."""
    return [u["Key"] for u in fs.list_multipart_uploads(bucket.removeprefix("s3://"))]


@pytest.mark.parametrize(
    "method, target, headers, kind, key",
    [
        ("PUT", "/b/k?x-id=PutObject", {}, "put_object", "k"),
        ("PUT", "/b/k?partNumber=2&uploadId=u", {}, "upload_part", "k"),
        ("PUT", "/b/k", {"x-amz-copy-source": "/b/j"}, "copy_object", "k"),
        ("PUT", "/b", {}, "create_bucket", ""),
        ("POST", "/b/d/k?uploads", {}, "create_multipart", "d/k"),
        ("POST", "/b/k?uploadId=u", {}, "complete_multipart", "k"),
        ("DELETE", "/b/k?uploadId=u", {}, "abort_multipart", "k"),
        ("DELETE", "/b/k", {}, "delete_object", "k"),
        ("GET", "/b?uploads", {}, "list_multipart", ""),
        ("GET", "/b?list-type=2&prefix=k", {}, "list", ""),
        ("GET", "/b/a%20b/c", {}, "get", "a b/c"),
        ("HEAD", "/b/k", {}, "head", "k"),
    ],
)
def test_requests_are_classified_by_method_path_and_query(method, target, headers, kind, key):
    path, _, query = target.partition("?")
    assert classify(method, path, query, headers) == (kind, key)


def test_small_object_round_trips_through_the_proxy(proxy, bucket, direct):
    fs = through(proxy)
    fs.pipe(f"{bucket}/dir/small.bin", b"hello proxy")
    assert fs.cat(f"{bucket}/dir/small.bin") == b"hello proxy"
    assert direct.cat(f"{bucket}/dir/small.bin") == b"hello proxy"
    assert fs.ls(f"{bucket}/dir", detail=False) == [f"{bucket.removeprefix('s3://')}/dir/small.bin"]
    assert fs.info(f"{bucket}/dir/small.bin")["size"] == 11
    fs.rm(f"{bucket}/dir/small.bin")
    direct.invalidate_cache()
    assert not direct.exists(f"{bucket}/dir/small.bin")
    assert outcomes(proxy, "put_object") == [200]
    assert outcomes(proxy, "delete_objects") + outcomes(proxy, "delete_object") == [200]
    assert proxy.injected == 0 and all(isinstance(e.outcome, int) and e.outcome < 300 for e in proxy.log)


def test_multipart_upload_round_trips_through_the_proxy(proxy, bucket, direct):
    fs = through(proxy)
    write_in_parts(fs, f"{bucket}/big.bin")
    assert outcomes(proxy, "create_multipart") == [200]
    assert outcomes(proxy, "upload_part") == [200, 200]
    assert outcomes(proxy, "complete_multipart") == [200]
    assert direct.cat(f"{bucket}/big.bin") == BIG
    assert fs.cat(f"{bucket}/big.bin") == BIG
    assert uploads(fs, bucket) == [] and outcomes(proxy, "list_multipart") == [200]


def test_chunked_request_body_is_reframed_for_the_upstream(proxy, bucket, direct):
    host, port = proxy.endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    body = [b"first chunk;", b"", b" second chunk"]
    conn.request("PUT", f"/{bucket.removeprefix('s3://')}/chunked.txt", body=iter(body), encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert direct.cat(f"{bucket}/chunked.txt") == b"first chunk; second chunk"


def test_an_injected_500_on_put_object_is_retried_by_botocore(proxy, bucket, direct):
    fault = proxy.add_fault(kind="put_object", action="error", status=500)
    through(proxy).pipe(f"{bucket}/retried.bin", b"payload")
    assert fault.injected == 1
    assert outcomes(proxy, "put_object") == ["error", 200]
    assert direct.cat(f"{bucket}/retried.bin") == b"payload"


def test_slowdown_beyond_botocore_attempts_is_retried_again_by_s3fs(proxy, bucket, direct):
    """botocore gives up after 2 attempts; s3fs's own loop retries 'SlowDown' errors once more."""
    fault = proxy.add_fault(kind="put_object", action="error", status=503, times=2)
    through(proxy, outer_retries=2).pipe(f"{bucket}/slow.bin", b"payload")
    assert fault.injected == 2
    assert outcomes(proxy, "put_object") == ["error", "error", 200]
    assert direct.cat(f"{bucket}/slow.bin") == b"payload"


def test_a_reset_put_object_is_resent(proxy, bucket, direct):
    fault = proxy.add_fault(kind="put_object", action="reset")
    through(proxy).pipe(f"{bucket}/reset.bin", b"payload")
    assert fault.injected == 1
    assert outcomes(proxy, "put_object") == ["reset", 200]
    assert direct.cat(f"{bucket}/reset.bin") == b"payload"


def test_failing_upload_part_raises_and_leaves_a_dangling_multipart_upload(proxy, bucket, direct):
    fault = proxy.add_fault(kind="upload_part", action="error", times=100)
    fs = through(proxy)
    with pytest.raises(OSError, match="injected"):
        write_in_parts(fs, f"{bucket}/failed.bin")
    # write() failed (2 attempts), then __exit__ -> close() tried the same part again (2 more).
    assert fault.injected == 4 and outcomes(proxy, "upload_part") == ["error"] * 4
    assert outcomes(proxy, "complete_multipart") == []
    direct.invalidate_cache()
    assert not direct.exists(f"{bucket}/failed.bin")
    # s3fs never sent AbortMultipartUpload: the upload (and any stored parts) is left behind.
    assert outcomes(proxy, "abort_multipart") == []
    assert uploads(direct, bucket) == ["failed.bin"]
    # Cleaning up is the caller's job: list and abort, through the (now healthy) proxy.
    proxy.clear()
    fs.clear_multipart_uploads(bucket.removeprefix("s3://"))
    assert outcomes(proxy, "abort_multipart") == [204]
    assert uploads(direct, bucket) == []


@pytest.mark.parametrize("size", [7, len(BIG)])
def test_an_exception_inside_the_with_block_still_commits_the_partial_object(proxy, bucket, direct, size):
    fs = through(proxy)
    with pytest.raises(RuntimeError, match="caller failed"):
        with fs.open(f"{bucket}/partial.bin", "wb", block_size=5 * MiB) as f:
            f.write(BIG[:size])
            raise RuntimeError("caller failed")
    assert direct.cat(f"{bucket}/partial.bin") == BIG[:size]
    assert uploads(direct, bucket) == []
    assert outcomes(proxy, "put_object" if size < 5 * MiB else "complete_multipart") == [200]


def test_a_stall_longer_than_the_read_timeout_is_retried(proxy, bucket, direct):
    fs = through(proxy, read_timeout=1, connect_timeout=1, retries={"max_attempts": 2})
    assert fs.ls(bucket) == []  # client set up and connected before the clock starts
    fault = proxy.add_fault(kind="put_object", action="stall", delay=2.5)
    start = time.monotonic()
    fs.pipe(f"{bucket}/stalled.bin", b"payload")
    # 1 s read timeout + 0.1 s backoff: gave up on the stalled attempt, did not wait it out.
    assert 1 <= time.monotonic() - start < 2
    assert fault.injected == 1
    assert outcomes(proxy, "put_object") == ["stall", 200]
    assert direct.cat(f"{bucket}/stalled.bin") == b"payload"
    # The stalled request still reaches S3 late, as with a slow server: a duplicate, same bytes.
    assert proxy.wait_idle(5)
    assert direct.cat(f"{bucket}/stalled.bin") == b"payload"


def test_a_request_stalled_forever_exhausts_the_retries(proxy, bucket, direct):
    fault = proxy.add_fault(kind="put_object", action="stall", times=100)
    fs = through(proxy, read_timeout=1, connect_timeout=1)
    with pytest.raises(Exception, match="Read timeout"):
        fs.pipe(f"{bucket}/never.bin", b"payload")
    assert fault.injected == 2  # first attempt + one botocore retry
    proxy.clear()  # releases (resets) the stalled requests; they never reach S3
    assert proxy.wait_idle(5)
    direct.invalidate_cache()
    assert not direct.exists(f"{bucket}/never.bin")


def test_a_reset_complete_multipart_upload_is_retried(proxy, bucket, direct):
    fault = proxy.add_fault(kind="complete_multipart", action="reset")
    write_in_parts(through(proxy), f"{bucket}/completed.bin")
    assert fault.injected == 1
    assert outcomes(proxy, "complete_multipart") == ["reset", 200]
    assert direct.cat(f"{bucket}/completed.bin") == BIG
    assert uploads(direct, bucket) == []


def test_a_complete_multipart_upload_applied_but_unanswered_is_retried_and_succeeds(proxy, bucket, direct):
    """The upstream completed the upload but the reply was lost; moto answers the retry 200."""
    fault = proxy.add_fault(kind="complete_multipart", action="drop_after_upstream")
    write_in_parts(through(proxy), f"{bucket}/dropped.bin")
    assert fault.injected == 1
    assert outcomes(proxy, "complete_multipart") == ["drop_after_upstream", 200]
    assert direct.cat(f"{bucket}/dropped.bin") == BIG
    assert uploads(direct, bucket) == []


def test_a_write_reported_as_failed_can_still_have_landed(proxy, bucket, direct):
    """Every CompleteMultipartUpload reply lost: s3fs raises, yet the object is complete in S3."""
    fault = proxy.add_fault(kind="complete_multipart", action="drop_after_upstream", times=100)
    with pytest.raises(Exception, match="Could not connect"):
        write_in_parts(through(proxy), f"{bucket}/landed.bin")
    assert fault.injected == 2  # POST is not re-sent by aiohttp; botocore retried once
    assert direct.cat(f"{bucket}/landed.bin") == BIG
    assert uploads(direct, bucket) == []
