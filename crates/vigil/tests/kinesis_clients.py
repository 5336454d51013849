"""Kinesis Data Streams through the clients people use: boto3, the AWS CLI v1, and the AWS SDK
for Java's CBOR wire (built with cbor2 and signed with botocore, byte for byte as the Java SDK
v2 writes it), against a running `vigil serve`.

Run by crates/vigil/tests/cli/kinesis.rs with the venv of scripts/aws-venv.sh:

    python kinesis_clients.py ENDPOINT ACCESS_KEY SECRET REGION ACCOUNT [TEST...]

Each test_* function is one check; the script prints one line per test and exits non-zero if
any failed. Everything goes through the public wire: nothing here knows Vigil's internals
beyond what a client sees.
"""

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

import boto3
import botocore
import cbor2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT, KEY, SECRET, REGION, ACCOUNT = sys.argv[1:6]
ONLY = sys.argv[6:]
TWO_128 = 1 << 128


def client():
    return boto3.client(
        "kinesis",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        # No retries: a test must see the first answer.
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


K = client()


def arn(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def expect_error(code, status, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code, f"expected {code}, got {got}: {e}"
        assert got_status == status, f"{code}: expected HTTP {status}, got {got_status}"
        return e.response["Error"].get("Message", "")
    raise AssertionError(f"expected {code}, the call succeeded")


def read_shard(stream, shard_id, start="TRIM_HORIZON", limit=None):
    """Every record of a shard from `start` to its end (closed) or to the tip (open), and the
    last GetRecords response."""
    it = K.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType=start)[
        "ShardIterator"
    ]
    records = []
    last = None
    for _ in range(10_000):
        kwargs = {"ShardIterator": it}
        if limit:
            kwargs["Limit"] = limit
        last = K.get_records(**kwargs)
        records.extend(last["Records"])
        it = last.get("NextShardIterator")
        if it is None or (not last["Records"] and last["MillisBehindLatest"] == 0):
            break
    return records, last


def md5_hash(key):
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


# ---- control plane ----


def test_streams_tags_retention_encryption_monitoring_limits():
    K.create_stream(StreamName="ctl-a", ShardCount=2)
    K.get_waiter("stream_exists").wait(StreamName="ctl-a", WaiterConfig={"Delay": 1})
    K.create_stream(StreamName="ctl-b", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    K.create_stream(StreamName="ctl-c", ShardCount=1, Tags={"team": "home"})
    expect_error("ResourceInUseException", 400, K.create_stream, StreamName="ctl-a", ShardCount=1)

    d = K.describe_stream(StreamName="ctl-a")["StreamDescription"]
    assert d["StreamStatus"] == "ACTIVE", d
    assert d["StreamARN"] == arn("ctl-a"), d["StreamARN"]
    assert d["RetentionPeriodHours"] == 24
    assert d["HasMoreShards"] is False
    assert d["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert d["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert d["EncryptionType"] == "NONE"
    assert isinstance(d["StreamCreationTimestamp"], datetime.datetime)
    shards = d["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000", "shardId-000000000001"]
    assert shards[0]["HashKeyRange"] == {
        "StartingHashKey": "0",
        "EndingHashKey": str(TWO_128 // 2 - 1),
    }
    assert shards[1]["HashKeyRange"]["StartingHashKey"] == "170141183460469231731687303715884105728"
    assert shards[1]["HashKeyRange"]["EndingHashKey"] == str(TWO_128 - 1)
    for s in shards:
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"], s
        assert "ParentShardId" not in s, s
        assert len(s["SequenceNumberRange"]["StartingSequenceNumber"]) == 56

    page = K.describe_stream(StreamName="ctl-a", Limit=1)["StreamDescription"]
    assert len(page["Shards"]) == 1 and page["HasMoreShards"] is True
    rest = K.describe_stream(
        StreamName="ctl-a", ExclusiveStartShardId=page["Shards"][0]["ShardId"]
    )["StreamDescription"]
    assert [s["ShardId"] for s in rest["Shards"]] == ["shardId-000000000001"]

    s = K.describe_stream_summary(StreamARN=arn("ctl-a"))["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 2 and s["StreamName"] == "ctl-a", s
    od = K.describe_stream_summary(StreamName="ctl-b")["StreamDescriptionSummary"]
    assert od["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"} and od["OpenShardCount"] == 4

    # ListStreams: pages of one, through the paginator (NextToken), and the legacy cursor.
    names = []
    for p in K.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}):
        names.extend(p["StreamNames"])
        for summary in p["StreamSummaries"]:
            assert summary["StreamARN"] == arn(summary["StreamName"])
            assert summary["StreamStatus"] == "ACTIVE"
    assert [n for n in names if n.startswith("ctl-")] == ["ctl-a", "ctl-b", "ctl-c"], names
    after = K.list_streams(ExclusiveStartStreamName="ctl-a")["StreamNames"]
    assert after[:2] == ["ctl-b", "ctl-c"], after
    expect_error("InvalidArgumentException", 400, K.list_streams, NextToken="bm90LWEtdG9rZW4=")

    # Retention.
    K.increase_stream_retention_period(StreamName="ctl-a", RetentionPeriodHours=48)
    assert K.describe_stream_summary(StreamName="ctl-a")["StreamDescriptionSummary"][
        "RetentionPeriodHours"
    ] == 48
    expect_error(
        "InvalidArgumentException", 400,
        K.increase_stream_retention_period, StreamName="ctl-a", RetentionPeriodHours=24,
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.increase_stream_retention_period, StreamName="ctl-a", RetentionPeriodHours=8761,
    )
    K.decrease_stream_retention_period(StreamARN=arn("ctl-a"), RetentionPeriodHours=24)
    expect_error(
        "InvalidArgumentException", 400,
        K.decrease_stream_retention_period, StreamName="ctl-a", RetentionPeriodHours=23,
    )

    # Tags, by name and by ARN.
    assert K.list_tags_for_stream(StreamName="ctl-c")["Tags"] == [{"Key": "team", "Value": "home"}]
    K.add_tags_to_stream(StreamName="ctl-c", Tags={"a": "1", "b": "2"})
    t = K.list_tags_for_stream(StreamName="ctl-c", Limit=2)
    assert [x["Key"] for x in t["Tags"]] == ["a", "b"] and t["HasMoreTags"] is True
    t = K.list_tags_for_stream(StreamName="ctl-c", ExclusiveStartTagKey="b")
    assert [x["Key"] for x in t["Tags"]] == ["team"] and t["HasMoreTags"] is False
    K.remove_tags_from_stream(StreamName="ctl-c", TagKeys=["a", "missing"])
    K.tag_resource(ResourceARN=arn("ctl-c"), Tags={"c": "3"})
    K.untag_resource(ResourceARN=arn("ctl-c"), TagKeys=["b"])
    tags = K.list_tags_for_resource(ResourceARN=arn("ctl-c"))["Tags"]
    assert tags == [{"Key": "c", "Value": "3"}, {"Key": "team", "Value": "home"}], tags
    expect_error(
        "InvalidArgumentException", 400,
        K.add_tags_to_stream, StreamName="ctl-c", Tags={f"k{i}": "v" for i in range(49)},
    )

    # Encryption: the setting shows in the descriptions and on every record.
    K.start_stream_encryption(StreamName="ctl-c", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    s = K.describe_stream_summary(StreamName="ctl-c")["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "KMS" and s["KeyId"] == "alias/aws/kinesis", s
    put = K.put_record(StreamName="ctl-c", Data=b"x", PartitionKey="p")
    assert put["EncryptionType"] == "KMS", put
    K.stop_stream_encryption(StreamName="ctl-c", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    assert K.put_record(StreamName="ctl-c", Data=b"x", PartitionKey="p")["EncryptionType"] == "NONE"
    expect_error(
        "InvalidArgumentException", 400,
        K.start_stream_encryption, StreamName="ctl-c", EncryptionType="NONE", KeyId="k",
    )

    # Enhanced monitoring (a setting: reported, not acted on).
    m = K.enable_enhanced_monitoring(StreamName="ctl-a", ShardLevelMetrics=["IncomingBytes"])
    assert m["CurrentShardLevelMetrics"] == [] and m["DesiredShardLevelMetrics"] == ["IncomingBytes"]
    m = K.enable_enhanced_monitoring(StreamName="ctl-a", ShardLevelMetrics=["ALL"])
    assert len(m["DesiredShardLevelMetrics"]) == 7, m
    m = K.disable_enhanced_monitoring(StreamName="ctl-a", ShardLevelMetrics=["ALL"])
    assert m["DesiredShardLevelMetrics"] == [], m
    expect_error(
        "ValidationException", 400,
        K.enable_enhanced_monitoring, StreamName="ctl-a", ShardLevelMetrics=["Bogus"],
    )

    # Limits, account settings, mode and record size.
    lim = K.describe_limits()
    assert lim["OpenShardCount"] >= 7 and lim["OnDemandStreamCount"] >= 1, lim
    assert lim["ShardLimit"] >= lim["OpenShardCount"], lim
    assert K.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"] == "DISABLED"
    K.update_stream_mode(StreamARN=arn("ctl-c"), StreamModeDetails={"StreamMode": "ON_DEMAND"})
    assert K.describe_stream_summary(StreamName="ctl-c")["StreamDescriptionSummary"][
        "StreamModeDetails"
    ] == {"StreamMode": "ON_DEMAND"}
    expect_error(
        "ValidationException", 400,
        K.update_shard_count, StreamName="ctl-c", TargetShardCount=2, ScalingType="UNIFORM_SCALING",
    )
    K.update_max_record_size(StreamARN=arn("ctl-a"), MaxRecordSizeInKiB=2048)
    assert K.describe_stream_summary(StreamName="ctl-a")["StreamDescriptionSummary"][
        "MaxRecordSizeInKiB"
    ] == 2048
    big = os.urandom(1536 * 1024)
    K.put_record(StreamName="ctl-a", Data=big, PartitionKey="big")
    expect_error(
        "ValidationException", 400,
        K.put_record, StreamName="ctl-b", Data=big, PartitionKey="big",
    )
    expect_error(
        "ValidationException", 400,
        K.update_max_record_size, StreamARN=arn("ctl-a"), MaxRecordSizeInKiB=10241,
    )

    # Deletion, and the waiter that watches for it.
    for name in ["ctl-a", "ctl-b", "ctl-c"]:
        K.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    K.get_waiter("stream_not_exists").wait(StreamName="ctl-a", WaiterConfig={"Delay": 1})
    expect_error("ResourceNotFoundException", 400, K.describe_stream_summary, StreamName="ctl-b")


def test_errors_by_name_and_status():
    msg = expect_error("ResourceNotFoundException", 400, K.describe_stream, StreamName="nope")
    assert msg == f"Stream nope under account {ACCOUNT} not found.", msg
    expect_error("ValidationException", 400, K.describe_stream, StreamName="bad name")
    expect_error("ValidationException", 400, K.describe_stream, StreamName="x" * 129)
    expect_error(
        "ResourceNotFoundException", 400,
        K.describe_stream, StreamARN=f"arn:aws:kinesis:{REGION}:999999999999:stream/x",
    )
    expect_error("ValidationException", 400, K.describe_stream, StreamARN="notanarn")
    expect_error("InvalidArgumentException", 400, K.describe_stream_summary)
    expect_error("InvalidArgumentException", 400, K.create_stream, StreamName="no-count")
    K.create_stream(StreamName="err", ShardCount=1)
    expect_error(
        "InvalidArgumentException", 400,
        K.describe_stream, StreamName="err", StreamARN=arn("other"),
    )
    expect_error(
        "ValidationException", 400,
        K.put_records, StreamName="err",
        Records=[{"Data": b"x", "PartitionKey": "p"}] * 501,
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.put_records, StreamName="err",
        Records=[{"Data": os.urandom(1000 * 1000), "PartitionKey": "p"}] * 6,
    )
    expect_error(
        "ValidationException", 400,
        K.put_record, StreamName="err", Data=os.urandom(1024 * 1024), PartitionKey="p",
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.put_record, StreamName="err", Data=b"x", PartitionKey="p",
        ExplicitHashKey=str(TWO_128),
    )
    expect_error(
        "ValidationException", 400,
        K.put_record, StreamName="err", Data=b"x", PartitionKey="p" * 257,
    )
    expect_error(
        "ValidationException", 400,
        K.get_shard_iterator, StreamName="err", ShardId="shardId-000000000000",
        ShardIteratorType="BOGUS",
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.get_shard_iterator, StreamName="err", ShardId="shardId-000000000000",
        ShardIteratorType="AT_SEQUENCE_NUMBER",
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.get_shard_iterator, StreamName="err", ShardId="shardId-000000000000",
        ShardIteratorType="LATEST", StartingSequenceNumber="1",
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.get_shard_iterator, StreamName="err", ShardId="shardId-000000000000",
        ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber="123",
    )
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    expect_error(
        "InvalidArgumentException", 400,
        K.get_shard_iterator, StreamName="err", ShardId="shardId-000000000000",
        ShardIteratorType="AT_TIMESTAMP", Timestamp=future,
    )
    expect_error(
        "ResourceNotFoundException", 400,
        K.get_shard_iterator, StreamName="err", ShardId="shardId-000000000007",
        ShardIteratorType="LATEST",
    )
    it = K.get_shard_iterator(
        StreamName="err", ShardId="shardId-000000000000", ShardIteratorType="LATEST"
    )["ShardIterator"]
    expect_error("InvalidArgumentException", 400, K.get_records, ShardIterator=it, Limit=10001)
    # The tag's last byte changed (XOR 1: replacing it with a constant would leave it as
    # it was one time in 256).
    raw = bytearray(base64.b64decode(it))
    raw[-1] ^= 1
    tampered = base64.b64encode(bytes(raw)).decode()
    expect_error("InvalidArgumentException", 400, K.get_records, ShardIterator=tampered)
    expect_error("InvalidArgumentException", 400, K.get_records, ShardIterator="AAAA")
    # What Vigil does not implement answers a clear 400, never a 5xx that clients retry.
    msg = expect_error(
        "InvalidArgumentException", 400, K.list_stream_consumers, StreamARN=arn("err")
    )
    assert "does not implement ListStreamConsumers" in msg, msg
    # An iterator of a stream deleted and made again names no stream any more.
    K.delete_stream(StreamName="err")
    K.create_stream(StreamName="err", ShardCount=1)
    expect_error("ResourceNotFoundException", 400, K.get_records, ShardIterator=it)
    K.delete_stream(StreamName="err")
    # An operation that does not exist.
    r = raw_json("Kinesis_20131202.NoSuchOperation", {})
    assert r[0] == 400 and r[1]["__type"] == "UnknownOperationException", r
    # A body that is not JSON.
    r = raw_json("Kinesis_20131202.ListStreams", b"{not json")
    assert r[0] == 400 and r[1]["__type"] == "SerializationException", r


def raw_json(target, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = AWSRequest(
        method="POST",
        url=ENDPOINT + "/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    SigV4Auth(Credentials(KEY, SECRET), "kinesis", REGION).add_auth(req)
    p = req.prepare()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method="POST")
        ) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


# ---- data plane ----


def test_put_records_batches_of_500_read_back_exactly_once():
    K.create_stream(StreamName="batch", ShardCount=4)
    sent = {}
    for batch in range(3):
        records = []
        for i in range(500):
            key = f"pk-{batch}-{i}"
            data = f"{batch}:{i}:".encode() + os.urandom(i % 7 * 100)
            records.append({"Data": data, "PartitionKey": key})
        out = K.put_records(StreamName="batch", Records=records)
        assert out["FailedRecordCount"] == 0, out["FailedRecordCount"]
        assert len(out["Records"]) == 500
        assert out["EncryptionType"] == "NONE"
        for r, entry in zip(records, out["Records"]):
            assert "ErrorCode" not in entry, entry
            assert len(entry["SequenceNumber"]) == 56
            sent[entry["SequenceNumber"]] = (entry["ShardId"], r["PartitionKey"], r["Data"])
    # Every record is in the shard its partition key hashes to.
    shards = {
        s["ShardId"]: (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
        for s in K.list_shards(StreamName="batch")["Shards"]
    }
    for shard_id, key, _ in sent.values():
        lo, hi = shards[shard_id]
        assert lo <= md5_hash(key) <= hi, (key, shard_id)
    got = {}
    for shard_id in shards:
        records, last = read_shard("batch", shard_id, limit=321)
        assert last["MillisBehindLatest"] == 0
        seqs = [int(r["SequenceNumber"]) for r in records]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "ordered, no repeats"
        for r in records:
            assert r["SequenceNumber"] not in got, "read twice"
            got[r["SequenceNumber"]] = (shard_id, r["PartitionKey"], r["Data"])
            assert isinstance(r["ApproximateArrivalTimestamp"], datetime.datetime)
    assert got == sent, f"{len(got)} read, {len(sent)} sent"
    # An explicit hash key overrides the partition key.
    out = K.put_record(StreamName="batch", Data=b"e", PartitionKey="any", ExplicitHashKey=str(TWO_128 - 1))
    assert out["ShardId"] == "shardId-000000000003", out
    # AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER of a record read.
    first_seq = min(s for s, v in sent.items() if v[0] == "shardId-000000000000")
    at = K.get_shard_iterator(
        StreamName="batch", ShardId="shardId-000000000000",
        ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=first_seq,
    )["ShardIterator"]
    assert K.get_records(ShardIterator=at, Limit=1)["Records"][0]["SequenceNumber"] == first_seq
    after = K.get_shard_iterator(
        StreamName="batch", ShardId="shardId-000000000000",
        ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=first_seq,
    )["ShardIterator"]
    assert K.get_records(ShardIterator=after, Limit=1)["Records"][0]["SequenceNumber"] > first_seq
    # A sequence number of another shard is refused there.
    expect_error(
        "InvalidArgumentException", 400,
        K.get_shard_iterator, StreamName="batch", ShardId="shardId-000000000001",
        ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=first_seq,
    )
    # LATEST sees only what comes after; a reader at the tip gets nothing, at once.
    latest = K.get_shard_iterator(
        StreamName="batch", ShardId="shardId-000000000003", ShardIteratorType="LATEST"
    )["ShardIterator"]
    started = time.monotonic()
    empty = K.get_records(ShardIterator=latest)
    assert empty["Records"] == [] and empty["MillisBehindLatest"] == 0
    assert time.monotonic() - started < 2, "GetRecords does not wait"
    K.put_record(StreamName="batch", Data=b"new", PartitionKey="x", ExplicitHashKey=str(TWO_128 - 1))
    new = K.get_records(ShardIterator=empty["NextShardIterator"])
    assert [r["Data"] for r in new["Records"]] == [b"new"], new
    K.delete_stream(StreamName="batch")


def test_reshards_keep_every_record_once_in_order():
    K.create_stream(StreamName="reshard", ShardCount=1)
    keys = [f"key-{i}" for i in range(20)]
    sent = []  # (key, data) in the order put

    def put_round(r):
        for k in keys:
            data = f"{r}:{k}".encode()
            K.put_record(StreamName="reshard", Data=data, PartitionKey=k)
            sent.append((k, data))

    put_round(0)
    up = K.update_shard_count(StreamName="reshard", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    assert up["CurrentShardCount"] == 1 and up["TargetShardCount"] == 2, up
    put_round(1)
    K.update_shard_count(StreamName="reshard", TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    put_round(2)
    open_shards = [
        s for s in K.list_shards(StreamName="reshard", ShardFilter={"Type": "AT_LATEST"})["Shards"]
    ]
    assert len(open_shards) == 3, open_shards
    ranges = sorted(int(s["HashKeyRange"]["StartingHashKey"]) for s in open_shards)
    assert ranges == [0, TWO_128 // 3, 2 * TWO_128 // 3], ranges
    # Split and merge by hand too.
    a = sorted(open_shards, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    lo, hi = int(a[0]["HashKeyRange"]["StartingHashKey"]), int(a[0]["HashKeyRange"]["EndingHashKey"])
    K.split_shard(StreamName="reshard", ShardToSplit=a[0]["ShardId"], NewStartingHashKey=str((lo + hi) // 2))
    put_round(3)
    K.merge_shards(StreamName="reshard", ShardToMerge=a[1]["ShardId"], AdjacentShardToMerge=a[2]["ShardId"])
    put_round(4)
    expect_error(
        "ResourceInUseException", 400,
        K.split_shard, StreamName="reshard", ShardToSplit=a[1]["ShardId"], NewStartingHashKey="5",
    )
    now_open = K.list_shards(StreamName="reshard", ShardFilter={"Type": "AT_LATEST"})["Shards"]
    later = [s for s in now_open if int(s["HashKeyRange"]["StartingHashKey"]) > 5]
    expect_error(
        "InvalidArgumentException", 400,
        K.split_shard, StreamName="reshard", ShardToSplit=later[0]["ShardId"], NewStartingHashKey="5",
    )
    expect_error(
        "ResourceNotFoundException", 400,
        K.split_shard, StreamName="reshard", ShardToSplit="shardId-000000009999", NewStartingHashKey="5",
    )
    expect_error(
        "InvalidArgumentException", 400,
        K.update_shard_count, StreamName="reshard", TargetShardCount=9, ScalingType="UNIFORM_SCALING",
    )

    # A reader that starts at the roots and follows ChildShards, reading a child once all its
    # parents are read to their end (as the KCL does), sees every record exactly once, and
    # each partition key's records in the order they were put.
    all_shards = {s["ShardId"]: s for s in K.list_shards(StreamName="reshard")["Shards"]}
    done = set()
    pending = [sid for sid, s in all_shards.items() if "ParentShardId" not in s]
    assert pending == ["shardId-000000000000"], pending
    seen = []
    while pending:
        sid = pending.pop(0)
        records, last = read_shard("reshard", sid, limit=7)
        seqs = [int(r["SequenceNumber"]) for r in records]
        assert seqs == sorted(seqs)
        seen.extend((r["PartitionKey"], r["Data"], sid) for r in records)
        done.add(sid)
        if "EndingSequenceNumber" in all_shards[sid]["SequenceNumberRange"]:
            assert last.get("NextShardIterator") is None, f"{sid} is closed: no next iterator"
            for child in last["ChildShards"]:
                assert sid in child["ParentShards"]
                if all(p in done for p in child["ParentShards"]) and child["ShardId"] not in done:
                    if child["ShardId"] not in pending:
                        pending.append(child["ShardId"])
    assert len(seen) == len(sent), f"{len(seen)} read, {len(sent)} sent"
    assert sorted((k, d) for k, d, _ in seen) == sorted(sent), "every record once"
    for k in keys:
        assert [d for kk, d, _ in seen if kk == k] == [d for kk, d in sent if kk == k], k
    # A closed shard's ending sequence number is at or after its last record, and its
    # children start above it.
    for sid, s in all_shards.items():
        end = s["SequenceNumberRange"].get("EndingSequenceNumber")
        for child in all_shards.values():
            if child.get("ParentShardId") == sid or child.get("AdjacentParentShardId") == sid:
                assert end is not None
                assert int(child["SequenceNumberRange"]["StartingSequenceNumber"]) >= int(end)
    # ListShards filters.
    assert {s["ShardId"] for s in K.list_shards(StreamName="reshard", ShardFilter={"Type": "AT_TRIM_HORIZON"})["Shards"]} == {"shardId-000000000000"}
    # A filter holds across pages.
    latest, token = [], None
    while True:
        kw = {"NextToken": token} if token else {"StreamName": "reshard", "ShardFilter": {"Type": "AT_LATEST"}}
        p = K.list_shards(MaxResults=1, **kw)
        latest.extend(p["Shards"])
        token = p.get("NextToken")
        if not token:
            break
    # Three open: three after the uniform scaling, one split (four), two merged (three).
    assert len(latest) == 3 and all("EndingSequenceNumber" not in s["SequenceNumberRange"] for s in latest), latest
    page = K.list_shards(StreamName="reshard", MaxResults=2)
    assert len(page["Shards"]) == 2 and "NextToken" in page
    rest = K.list_shards(NextToken=page["NextToken"])
    assert len(page["Shards"]) + len(rest["Shards"]) == len(all_shards)
    after = K.list_shards(StreamName="reshard", ExclusiveStartShardId="shardId-000000000001")["Shards"]
    assert all(int(s["ShardId"][8:]) > 1 for s in after)
    expect_error(
        "InvalidArgumentException", 400,
        K.list_shards, NextToken=page["NextToken"], ExclusiveStartShardId="shardId-000000000001",
    )
    K.delete_stream(StreamName="reshard")


def test_at_timestamp():
    K.create_stream(StreamName="ts", ShardCount=1)
    K.put_records(StreamName="ts", Records=[{"Data": b"old", "PartitionKey": "k"}] * 3)
    # boto3 sends whole seconds: wait into the next second and take its start.
    time.sleep(1.1)
    cut = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    time.sleep(0.05)
    K.put_records(StreamName="ts", Records=[{"Data": b"new", "PartitionKey": "k"}] * 2)
    it = K.get_shard_iterator(
        StreamName="ts", ShardId="shardId-000000000000", ShardIteratorType="AT_TIMESTAMP", Timestamp=cut
    )["ShardIterator"]
    got = K.get_records(ShardIterator=it)["Records"]
    assert [r["Data"] for r in got] == [b"new", b"new"], got
    for r in got:
        assert r["ApproximateArrivalTimestamp"] >= cut
    early = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    it = K.get_shard_iterator(
        StreamName="ts", ShardId="shardId-000000000000", ShardIteratorType="AT_TIMESTAMP", Timestamp=early
    )["ShardIterator"]
    assert len(K.get_records(ShardIterator=it)["Records"]) == 5, "before the trim horizon: all"
    K.delete_stream(StreamName="ts")


# ---- the AWS CLI ----


def aws(*args):
    env = dict(os.environ)
    env.update({
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    })
    cli = os.path.join(os.path.dirname(sys.executable), "aws")
    out = subprocess.run(
        [cli, "--endpoint-url", ENDPOINT, "--output", "json", "kinesis", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )
    return out


def test_the_aws_cli():
    def ok(*args):
        out = aws(*args)
        assert out.returncode == 0, f"aws kinesis {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}

    ok("create-stream", "--stream-name", "cli", "--shard-count", "2")
    ok("wait", "stream-exists", "--stream-name", "cli")
    put = ok("put-record", "--stream-name", "cli", "--partition-key", "pk", "--data", "aGVsbG8=")
    assert put["ShardId"].startswith("shardId-") and len(put["SequenceNumber"]) == 56, put
    it = ok(
        "get-shard-iterator", "--stream-name", "cli", "--shard-id", put["ShardId"],
        "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]
    records = ok("get-records", "--shard-iterator", it)["Records"]
    # CLI v1 base64-encodes the text it is given, and prints Data base64-encoded.
    assert [base64.b64decode(r["Data"]) for r in records] == [b"aGVsbG8="], records
    assert "cli" in ok("list-streams")["StreamNames"]
    summary = ok("describe-stream-summary", "--stream-name", "cli")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    shards = ok("list-shards", "--stream-name", "cli")["Shards"]
    assert len(shards) == 2
    bad = aws("describe-stream", "--stream-name", "missing")
    assert bad.returncode != 0 and "ResourceNotFoundException" in bad.stderr, bad.stderr
    ok("delete-stream", "--stream-name", "cli")


# ---- CBOR, as the AWS SDK for Java v2 and the KCL speak it ----


def indefinite_map(d):
    """A map as Jackson's CBORGenerator writes it: 0xBF, keys and values, 0xFF."""
    return b"\xbf" + b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in d.items()) + b"\xff"


def millis(dt):
    """AWS CBOR 1.1's timestamp: tag 1 around an integer of epoch milliseconds."""
    return cbor2.CBORTag(1, int(dt.timestamp() * 1000))


def cbor_call(target, body):
    req = AWSRequest(
        method="POST",
        url=ENDPOINT + "/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-cbor-1.1",
            "X-Amz-Target": "Kinesis_20131202." + target,
        },
    )
    SigV4Auth(Credentials(KEY, SECRET), "kinesis", REGION).add_auth(req)
    p = req.prepare()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method="POST")
        ) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type")
    assert ctype == "application/x-amz-cbor-1.1", ctype
    # Tag 1 kept raw: its value is milliseconds, which cbor2 would read as seconds.
    value = cbor2.loads(raw, semantic_decoders={1: lambda v, *_: ("EPOCH_MILLIS", v)}) if raw else {}
    return status, value


def test_cbor_wire():
    K.create_stream(StreamName="cbor", ShardCount=1)
    before = int(time.time() * 1000)
    status, put = cbor_call(
        "PutRecord",
        indefinite_map({"StreamName": "cbor", "Data": b"\x00\xffhello", "PartitionKey": "pk"}),
    )
    assert status == 200 and put["ShardId"] == "shardId-000000000000", (status, put)
    status, out = cbor_call(
        "PutRecords",
        indefinite_map({
            "StreamName": "cbor",
            "Records": [{"Data": bytes([i]) * i, "PartitionKey": f"k{i}"} for i in range(1, 4)],
        }),
    )
    assert status == 200 and out["FailedRecordCount"] == 0 and len(out["Records"]) == 3, out
    status, it = cbor_call(
        "GetShardIterator",
        indefinite_map({
            "StreamName": "cbor",
            "ShardId": "shardId-000000000000",
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": millis(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)),
        }),
    )
    assert status == 200, it
    status, got = cbor_call("GetRecords", indefinite_map({"ShardIterator": it["ShardIterator"]}))
    assert status == 200, got
    datas = [r["Data"] for r in got["Records"]]
    assert datas == [b"\x00\xffhello", b"\x01", b"\x02\x02", b"\x03\x03\x03"], datas
    for r in got["Records"]:
        kind, ms = r["ApproximateArrivalTimestamp"]
        assert kind == "EPOCH_MILLIS" and isinstance(ms, int), r
        assert before - 5000 <= ms <= int(time.time() * 1000) + 5000, (before, ms)
    assert got["MillisBehindLatest"] == 0 and isinstance(got["NextShardIterator"], str)
    status, summary = cbor_call("DescribeStreamSummary", indefinite_map({"StreamName": "cbor"}))
    kind, created = summary["StreamDescriptionSummary"]["StreamCreationTimestamp"]
    assert kind == "EPOCH_MILLIS" and abs(created - before) < 60_000, summary
    # The same record through JSON: the same bytes, the same second.
    it = K.get_shard_iterator(StreamName="cbor", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")
    first = K.get_records(ShardIterator=it["ShardIterator"], Limit=1)["Records"][0]
    assert first["Data"] == b"\x00\xffhello"
    # Errors are CBOR too, with the same name and status.
    status, err = cbor_call("DescribeStream", indefinite_map({"StreamName": "missing"}))
    assert status == 400 and err["__type"] == "ResourceNotFoundException", (status, err)
    assert "missing" in err["message"], err
    status, err = cbor_call("PutRecord", b"\xbf\x61")
    assert status == 400 and err["__type"] == "SerializationException", (status, err)
    K.delete_stream(StreamName="cbor")


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    if ONLY:
        tests = [(n, f) for n, f in tests if n in ONLY]
    failed = 0
    for name, fn in tests:
        started = time.monotonic()
        try:
            fn()
            print(f"ok   {name} ({time.monotonic() - started:.1f} s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed (boto3 {boto3.__version__}, "
          f"botocore {botocore.__version__}, cbor2 {cbor2.__version__ if hasattr(cbor2, '__version__') else '?'})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
