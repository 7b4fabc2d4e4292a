"""The data-center list: the prefix structure, the starter file, and the refresh job that
publishes the configured sources to serving and keeps the last good copy."""

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from redis import Redis

from serving.ivt.networks import AddressRanges, NetworkList, parse_prefixes
from serving.keys import RedisKeys
from serving.tasks import refresh_datacenter_ranges_task

AWS_JSON = b"""{"syncToken": "1", "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "x"}],
 "ipv6_prefixes": [{"ipv6_prefix": "2600:1f14::/35"}]}"""
GCP_JSON = b'{"prefixes": [{"ipv4Prefix": "34.80.0.0/15"}, {"ipv6Prefix": "2600:1900::/35"}]}'


def test_ranges_merge_and_answer_both_families() -> None:
    ranges = AddressRanges.of("10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24")
    assert (ranges.starts, len(ranges)) == ((167772160, 167772928), 2)  # 10.0.0-1 and 10.0.3
    nets = NetworkList.parse("# comment\n3.0.0.0/9  # AWS\n\n2600:1f00::/24\n")
    assert ["3.1.2.3" in nets, "::ffff:3.1.2.3" in nets, "2600:1f00::9" in nets] == [True] * 3
    assert ["4.1.2.3" in nets, "2600:1e00::1" in nets, "not an ip" in nets, "" in nets] == [
        False
    ] * 4


def test_a_bad_line_is_named() -> None:
    with pytest.raises(ValueError, match=r"line 2: '3\.0\.0\.0/99' is not an IP prefix"):
        parse_prefixes("3.0.0.0/9\n3.0.0.0/99\n")


def test_the_starter_file_loads() -> None:
    text = Path(settings.IVT_DATACENTER_FILE).read_text()
    assert len(NetworkList.parse(text)) >= 20
    assert "203.0.113.7" not in NetworkList.parse(text)  # documentation space is no cloud


def test_the_refresh_job_publishes_every_source_and_keeps_the_last_good_one(
    settings: Any, tmp_path: Path, redis_client: Redis
) -> None:
    (tmp_path / "aws.json").write_bytes(AWS_JSON)
    (tmp_path / "gcp.json").write_bytes(GCP_JSON)
    (tmp_path / "ours.txt").write_text("198.51.100.0/24\n")
    settings.IVT_DATACENTER_FILE = str(tmp_path / "ours.txt")
    settings.IVT_DATACENTER_URLS = [str(tmp_path / "aws.json"), str(tmp_path / "gcp.json")]
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)

    assert refresh_datacenter_ranges_task().endswith(": 5 prefixes")
    published: Any = redis_client.hgetall(keys.ivt_datacenter)
    nets = NetworkList.parse(published[b"text"].decode())
    assert ["3.5.141.1" in nets, "34.81.0.1" in nets, "198.51.100.3" in nets] == [True] * 3

    # A source that fails (gone, or not a list) publishes nothing: the last good one stays.
    (tmp_path / "gcp.json").write_text("<html>maintenance</html>")
    assert refresh_datacenter_ranges_task().startswith("kept: ")
    (tmp_path / "gcp.json").unlink()
    assert refresh_datacenter_ranges_task().startswith("kept: ")
    assert redis_client.hgetall(keys.ivt_datacenter) == published
