"""Endpoints, rates and sizes, copy jobs: the pure parts of the transfer engine."""

import json

import pytest

from difpipe_tui.core.config import Config, Host
from difpipe_tui.core.errors import UsageError
from difpipe_tui.core.transfer.endpoints import parse_endpoint
from difpipe_tui.core.transfer.job import CopyJob, job_from_mapping, job_schema
from difpipe_tui.core.transfer.ratelimit import TokenBucket, parse_rate, parse_size

CONFIG = Config(hosts={"edge": Host(name="edge", address="192.0.2.1")})


@pytest.mark.parametrize(
    ("text", "kind", "host", "path"),
    [
        ("edge:/var/log/x", "remote", "edge", "/var/log/x"),
        ("edge:relative name", "remote", "edge", "relative name"),
        ("-", "stdio", None, ""),
        ("/tmp/a:b", "local", None, "/tmp/a:b"),
        ("./edge:x", "local", None, "./edge:x"),
        ("plain.txt", "local", None, "plain.txt"),
    ],
)
def test_parse_endpoint(text, kind, host, path):
    ep = parse_endpoint(text, CONFIG)
    assert (ep.kind, ep.host, ep.path) == (kind, host, path)
    if kind != "local":
        assert str(ep) == text


def test_unknown_host_prefix_is_a_usage_error_with_the_local_escape():
    with pytest.raises(UsageError) as info:
        parse_endpoint("cloud:/x", CONFIG)
    assert 'no host named "cloud"' in str(info.value) and "./cloud:/x" in str(info.value)
    with pytest.raises(UsageError, match="needs a path"):
        parse_endpoint("edge:", CONFIG)


@pytest.mark.parametrize(
    ("text", "value"),
    [("20M", 20e6), ("20MB", 20e6), ("1.5Gi", 1.5 * 2**30), ("800k", 800e3), ("100", 100.0)],
)
def test_parse_rate(text, value):
    assert parse_rate(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["", "fast", "-1M", "0", "10X"])
def test_parse_rate_refuses(bad):
    with pytest.raises(UsageError, match="--rate-limit"):
        parse_rate(bad)


def test_parse_size():
    assert parse_size("64M", "x") == 64 * 2**20
    assert parse_size("1GiB", "x") == 2**30
    with pytest.raises(UsageError, match="--buffer"):
        parse_size("lots", "--buffer")


def test_token_bucket_paces_to_the_rate():
    now = [0.0]
    bucket = TokenBucket(1000, burst=100, clock=lambda: now[0])
    assert bucket.delay_for(100) == 0
    assert bucket.delay_for(500) == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.delay_for(0) == 0
    now[0] += 10  # idle time refills only up to the burst
    assert bucket.delay_for(300) == pytest.approx(0.2)


def test_job_validation_messages():
    with pytest.raises(UsageError, match="at least one destination"):
        CopyJob(source="a", destinations=())
    with pytest.raises(UsageError, match="listed twice"):
        CopyJob(source="a", destinations=("b", "b"))
    with pytest.raises(UsageError, match="also a destination"):
        CopyJob(source="a", destinations=("a",))
    with pytest.raises(UsageError, match=r"compress: expected one of auto, zstd, lz4, none"):
        CopyJob(source="a", destinations=("b",), compress="gzip")
    with pytest.raises(UsageError, match=r"zstd takes 1\.\.19"):
        CopyJob(source="a", destinations=("b",), compress="zstd", level=40)
    with pytest.raises(UsageError, match="stdin"):
        CopyJob(source="-", destinations=("b",), parallel=2)


def test_job_from_mapping_coerces_strings_and_names_bad_fields():
    job = job_from_mapping(
        {"source": "edge:/x", "destinations": "cloud:/y", "rate_limit": "20M", "buffer": "8M"}
    )
    assert job.destinations == ("cloud:/y",) and job.rate_limit == 20e6 and job.buffer == 8 * 2**20
    with pytest.raises(
        UsageError, match='unknown field ratelimit \\(did you mean "rate_limit"\\?\\)'
    ):
        job_from_mapping({"source": "a", "destinations": ["b"], "ratelimit": "1M"})
    with pytest.raises(UsageError, match="retries: expected an integer"):
        job_from_mapping({"source": "a", "destinations": ["b"], "retries": "3"})
    with pytest.raises(UsageError, match="destinations is required"):
        job_from_mapping({"source": "a"})


def test_job_key_ignores_tuning_but_not_what_moves_where():
    a = CopyJob(source="s", destinations=("x", "y"))
    assert a.key() == CopyJob(source="s", destinations=("y", "x"), rate_limit=5.0).key()
    assert a.key() != CopyJob(source="s", destinations=("x",)).key()


def test_schema_lists_every_job_field():
    schema = job_schema()
    fields = set(CopyJob.__dataclass_fields__)
    assert set(schema["properties"]) == fields
    assert schema["additionalProperties"] is False
    json.dumps(schema)
    # a job written from the schema's defaults parses
    sample = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    job_from_mapping({**sample, "source": "a", "destinations": ["b"]})


@pytest.mark.parametrize(
    ("size", "n"), [(0, 4), (1, 4), (10 * 2**20, 4), (10 * 2**20 + 5, 3), (3 * 2**20, 8)]
)
def test_split_ranges_cover_the_file_on_aligned_offsets(size, n):
    from difpipe_tui.core.transfer.parallel import ALIGN, split_ranges

    ranges = split_ranges(size, n)
    assert len(ranges) <= n
    pos = 0
    for offset, length in ranges:
        assert offset == pos and offset % ALIGN == 0
        pos += length
    assert pos == size
