"""What ``scene_url`` may name (tracklift.serving.access), without a server: the HTTP behaviour is in
test_hardening.py."""

from __future__ import annotations

import os

import pytest

from tracklift.serving.access import check_prefixes, check_scene_url
from tracklift.serving.codec import RequestError


def _status(url: str, prefixes: list[str]) -> int:
    try:
        check_scene_url(url, prefixes)
    except RequestError as e:
        return e.status
    return 200


def test_local_prefixes_compare_resolved_whole_segments(tmp_path):
    allowed = tmp_path / "scans"
    (allowed / "a").mkdir(parents=True)
    (tmp_path / "scans_evil" / "a").mkdir(parents=True)
    os.symlink(tmp_path / "scans_evil", allowed / "out")
    prefixes = [str(allowed)]
    assert check_scene_url(str(allowed / "a"), prefixes) == os.path.realpath(allowed / "a")
    assert _status("file://" + str(allowed / "a"), prefixes) == 200
    assert _status(str(allowed), [str(allowed) + "/"]) == 200
    assert _status(str(tmp_path / "scans_evil" / "a"), prefixes) == 403
    assert _status(str(allowed / "out" / "a"), prefixes) == 403  # a symlink leading outside
    assert _status(str(allowed) + "/../../../etc", prefixes) == 400
    assert _status(str(allowed / "a" / ".." / "a"), prefixes) == 400
    assert _status("s3://bucket/scans/a", prefixes) == 403  # an s3 URL needs an s3 prefix


def test_s3_prefixes_and_refused_forms():
    prefixes = ["s3://bucket/scans"]
    assert check_scene_url("s3://bucket/scans/a", prefixes) == "s3://bucket/scans/a"
    assert _status("s3://bucket/scans_evil/a", prefixes) == 403
    assert _status("s3://bucket/scans/../private", prefixes) == 400
    assert _status("/bucket/scans/a", prefixes) == 403
    for url in ("http://169.254.169.254/", "foo://x", "memory://a", "zip://a::s3://bucket/scans/x.zip"):
        assert _status(url, prefixes) == 400, url
    assert _status("s3://bucket/scans/a", []) == 403  # nothing configured: nothing readable


@pytest.mark.parametrize("bad", ["relative/dir", "http://host/x", "s3://", "/a/../b", "zip://x::/a"])
def test_bad_prefixes_are_named(bad):
    assert check_prefixes([bad]) and bad in check_prefixes([bad])[0]
    assert check_prefixes(["/data/scans", "s3://b/scans/", "file:///data"]) == []


def test_control_characters_are_a_400_not_a_500(tmp_path):
    """A NUL byte used to reach os.path.realpath and raise ValueError (a 500)."""
    with pytest.raises(RequestError) as e:
        check_scene_url(str(tmp_path / "a\x00b"), [str(tmp_path)])
    assert e.value.status == 400
