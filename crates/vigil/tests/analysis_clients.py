"""Rekognition stream processors through boto3, against a running `vigil serve`: the
processors' lifecycle, validation, errors and tags, every FAILED cause, and live face search on
three cameras pushed with `vigil put --realtime`, read back from the data stream with boto3's
`kinesis` client as a consumer written for Rekognition would.

Run by crates/vigil/tests/cli/analysis.rs with the venv of scripts/aws-venv.sh:

    python analysis_clients.py ENDPOINT KEY SECRET REGION ACCOUNT VIGIL MEDIA_DIR [TEST...]

MEDIA_DIR holds `faces.mkv` (made by the Rust side with ffmpeg from the real photos in
crates/faces/testdata): 16 s of 640x360 at 25 fps, Obama (obama2.jpg) in view from 1 s to
6 s, Joe Biden from 8 s to 13 s, nobody otherwise; and obama.jpg, the photo indexed. Each test_*
function is one check; one line per test, non-zero exit if any failed.
"""

import json
import os
import subprocess
import sys
import time
import traceback

import base64
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT, KEY, SECRET, REGION, ACCOUNT, VIGIL, MEDIA = sys.argv[1:8]
ONLY = sys.argv[8:]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/vigil-tests"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sns_subscriber import Subscriber  # noqa: E402
# Every fragment (ListFragments, by server time).
EVER = {"FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": time.time() + 86400}}


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


REK = client("rekognition")
KIN = client("kinesis")
KVS = client("kinesisvideo")


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code, f"expected {code}, got {got}: {e}"
        assert status == (500 if code == "InternalServerError" else 400), (code, status)
        return e.response["Error"]["Message"]
    raise AssertionError(f"expected {code}, the call succeeded")


def rek_raw(operation, body):
    """A Rekognition call botocore has no method for (Vigil's extensions), signed as boto3
    signs: (status, JSON body)."""
    data = json.dumps(body).encode()
    req = AWSRequest("POST", ENDPOINT + "/", data=data, headers={
        "X-Amz-Target": f"RekognitionService.{operation}",
        "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(KEY, SECRET), "rekognition", REGION).add_auth(req)
    r = urllib.request.Request(req.url, data=data, headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def face_events(processor):
    """Every face event of a processor, page by page."""
    out, token = [], None
    while True:
        body = {"StreamProcessorName": processor, "MaxResults": 3}
        if token:
            body["NextToken"] = token
        status, page = rek_raw("ListFaceEvents", body)
        assert status == 200, (status, page)
        out.extend(page["FaceEvents"])
        token = page.get("NextToken")
        if not token:
            return out


def video_stream(name):
    return KVS.create_stream(StreamName=name, DataRetentionInHours=24)["StreamARN"]


def data_stream(name):
    KIN.create_stream(StreamName=name, ShardCount=1)
    KIN.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    return KIN.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def collection(name, photo="obama.jpg", external="obama"):
    REK.create_collection(CollectionId=name)
    with open(os.path.join(MEDIA, photo), "rb") as f:
        faces = REK.index_faces(
            CollectionId=name, Image={"Bytes": f.read()}, ExternalImageId=external, MaxFaces=1
        )["FaceRecords"]
    assert len(faces) == 1, faces
    return faces[0]["Face"]["FaceId"]


def processor(name, kvs_arn, kin_arn, coll, **extra):
    return REK.create_stream_processor(
        Name=name,
        Input={"KinesisVideoStream": {"Arn": kvs_arn}},
        Output={"KinesisDataStream": {"Arn": kin_arn}},
        Settings={"FaceSearch": {"CollectionId": coll, "FaceMatchThreshold": 85.0}},
        RoleArn=ROLE,
        **extra,
    )["StreamProcessorArn"]


def put(stream, realtime=True):
    args = [VIGIL, "put", stream, "--quiet"]
    if realtime:
        args.append("--realtime")
    args.append(os.path.join(MEDIA, "faces.mkv"))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_status(name, status, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        d = REK.describe_stream_processor(Name=name)
        if d["Status"] == status:
            return d
        assert time.monotonic() < deadline, f"{name} is {d['Status']}, not {status}: {d}"
        time.sleep(0.2)


def test_lifecycle_validation_errors_and_tags():
    kvs = video_stream("life-cam")
    kin = data_stream("life-out")
    collection("life-people")
    arn = processor("life", kvs, kin, "life-people", Tags={"site": "home"},
                    NotificationChannel={"SNSTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"},
                    RegionsOfInterest=[{"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 1.0, "Height": 1.0}}],
                    DataSharingPreference={"OptIn": False})
    assert arn == f"arn:aws:rekognition:{REGION}:{ACCOUNT}:streamprocessor/life", arn
    d = REK.describe_stream_processor(Name="life")
    assert d["Status"] == "STOPPED" and d["StreamProcessorArn"] == arn, d
    assert d["Input"]["KinesisVideoStream"]["Arn"] == kvs
    assert d["Output"]["KinesisDataStream"]["Arn"] == kin
    assert d["Settings"]["FaceSearch"] == {"CollectionId": "life-people", "FaceMatchThreshold": 85.0}, d
    assert d["RoleArn"] == ROLE and d["NotificationChannel"]["SNSTopicArn"].endswith(":alerts")
    assert d["RegionsOfInterest"][0]["BoundingBox"]["Width"] == 1.0, d
    assert d["CreationTimestamp"].year >= 2025
    # Validation and errors, by name.
    expect_error("ResourceInUseException", processor, "life", kvs, kin, "life-people")
    expect_error("ValidationException", processor, "bad name!", kvs, kin, "life-people")
    expect_error("ValidationException", processor, "p2", "arn:aws:s3:::bucket", kin, "life-people")
    expect_error("ValidationException", processor, "p2", kvs, "not-an-arn", "life-people")
    expect_error("InvalidParameterException", processor, "p2",
                 f"arn:aws:kinesisvideo:{REGION}:{ACCOUNT}:stream/missing/1", kin, "life-people")
    expect_error("InvalidParameterException", processor, "p2", kvs,
                 f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/missing", "life-people")
    expect_error("ResourceNotFoundException", processor, "p2", kvs, kin, "no-such-collection")
    expect_error("InvalidParameterException", REK.create_stream_processor, Name="p2",
                 Input={"KinesisVideoStream": {"Arn": kvs}},
                 Output={"KinesisDataStream": {"Arn": kin}},
                 Settings={"ConnectedHome": {"Labels": ["PERSON"]}}, RoleArn=ROLE)
    expect_error("ResourceNotFoundException", REK.describe_stream_processor, Name="missing")
    expect_error("ResourceNotFoundException", REK.start_stream_processor, Name="missing")
    expect_error("ValidationException", REK.start_stream_processor, Name="life",
                 StopSelector={"MaxDurationInSeconds": 121})
    expect_error("InvalidParameterException", REK.start_stream_processor, Name="life",
                 StartSelector={"KVSStreamStartSelector": {"ProducerTimestamp": 1, "FragmentNumber": "1"}})
    expect_error("ResourceInUseException", REK.stop_stream_processor, Name="life")
    # Paging.
    processor("life2", kvs, kin, "life-people")
    page = REK.list_stream_processors(MaxResults=1)
    assert len(page["StreamProcessors"]) == 1 and "NextToken" in page, page
    rest = REK.list_stream_processors(NextToken=page["NextToken"])
    names = [p["Name"] for p in page["StreamProcessors"] + rest["StreamProcessors"]]
    assert "life" in names and "life2" in names, names
    assert all(p["Status"] == "STOPPED" for p in rest["StreamProcessors"])
    expect_error("InvalidPaginationTokenException", REK.list_stream_processors, NextToken="nope")
    # Update: regions and data sharing.
    REK.update_stream_processor(Name="life", RegionsOfInterestForUpdate=[
        {"Polygon": [{"X": 0.0, "Y": 0.0}, {"X": 1.0, "Y": 0.0}, {"X": 0.5, "Y": 1.0}]}],
        DataSharingPreferenceForUpdate={"OptIn": True})
    d = REK.describe_stream_processor(Name="life")
    assert len(d["RegionsOfInterest"][0]["Polygon"]) == 3 and d["DataSharingPreference"]["OptIn"], d
    REK.update_stream_processor(Name="life", ParametersToDelete=["RegionsOfInterest"])
    assert "RegionsOfInterest" not in REK.describe_stream_processor(Name="life")
    # Tags, on processors and collections.
    assert REK.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"site": "home"}
    REK.tag_resource(ResourceArn=arn, Tags={"floor": "1"})
    REK.untag_resource(ResourceArn=arn, TagKeys=["site"])
    assert REK.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"floor": "1"}
    carn = REK.describe_collection(CollectionId="life-people")["CollectionARN"]
    REK.tag_resource(ResourceArn=carn, Tags={"owner": "me"})
    assert REK.list_tags_for_resource(ResourceArn=carn)["Tags"] == {"owner": "me"}
    expect_error("ResourceNotFoundException", REK.list_tags_for_resource,
                 ResourceArn=f"arn:aws:rekognition:{REGION}:{ACCOUNT}:streamprocessor/missing")
    expect_error("ValidationException", REK.tag_resource, ResourceArn=arn, Tags={"aws:x": "y"})
    # Start, and what a running processor refuses.
    session = REK.start_stream_processor(Name="life")["SessionId"]
    assert len(session) == 36, session
    assert REK.describe_stream_processor(Name="life")["Status"] == "RUNNING"
    expect_error("ResourceInUseException", REK.start_stream_processor, Name="life")
    expect_error("ResourceInUseException", REK.delete_stream_processor, Name="life")
    expect_error("ResourceInUseException", REK.update_stream_processor, Name="life",
                 DataSharingPreferenceForUpdate={"OptIn": False})
    REK.stop_stream_processor(Name="life")
    assert REK.describe_stream_processor(Name="life")["Status"] == "STOPPED"
    # A run with a MaxDurationInSeconds stops by itself.
    REK.start_stream_processor(Name="life", StopSelector={"MaxDurationInSeconds": 1})
    wait_status("life", "STOPPED", timeout=10)
    for name in ["life", "life2"]:
        REK.delete_stream_processor(Name=name)
    expect_error("ResourceNotFoundException", REK.describe_stream_processor, Name="life")


def test_every_failed_cause():
    kin = data_stream("fail-out")
    collection("fail-people")
    # The video stream deleted under a running processor.
    kvs = video_stream("fail-cam-1")
    processor("fail-1", kvs, kin, "fail-people")
    REK.start_stream_processor(Name="fail-1")
    KVS.delete_stream(StreamARN=kvs)
    d = wait_status("fail-1", "FAILED")
    assert "fail-cam-1" in d["StatusMessage"] and "does not exist" in d["StatusMessage"], d
    # The collection deleted: noticed at the next fragment.
    kvs = video_stream("fail-cam-2")
    collection("fail-people-2")
    processor("fail-2", kvs, kin, "fail-people-2")
    REK.start_stream_processor(Name="fail-2")
    REK.delete_collection(CollectionId="fail-people-2")
    p = put("fail-cam-2", realtime=False)
    d = wait_status("fail-2", "FAILED")
    assert "fail-people-2" in d["StatusMessage"], d
    p.wait(60)
    # The data stream deleted.
    kvs = video_stream("fail-cam-3")
    kin3 = data_stream("fail-out-3")
    processor("fail-3", kvs, kin3, "fail-people")
    REK.start_stream_processor(Name="fail-3")
    KIN.delete_stream(StreamName="fail-out-3")
    p = put("fail-cam-3", realtime=False)
    d = wait_status("fail-3", "FAILED")
    assert "fail-out-3" in d["StatusMessage"], d
    p.wait(60)
    for name in ["fail-1", "fail-2", "fail-3"]:
        REK.delete_stream_processor(Name=name)


def test_three_cameras_known_and_unknown():
    face_id = collection("home")
    kin = data_stream("home-faces")
    # The reference scenario's last link: strangers raise a notification. An HTTP endpoint
    # subscribed to the processors' topic, filtering on the alert's attributes.
    sns = boto3.client("sns", endpoint_url=ENDPOINT, region_name=REGION,
                       aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    topic = sns.create_topic(Name="strangers")["TopicArn"]
    phone = Subscriber(ENDPOINT)
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=phone.url("/alerts"),
                  Attributes={"FilterPolicy": json.dumps({"decision": ["UNKNOWN"]})})
    deadline = time.monotonic() + 20
    while any(s["SubscriptionArn"] == "PendingConfirmation"
              for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]):
        assert time.monotonic() < deadline, "the alert subscription was not confirmed"
        time.sleep(0.05)
    cams = ["front-door", "garden", "garage"]
    arns = {}
    for cam in cams:
        arns[cam] = video_stream(cam)
        processor(f"watch-{cam}", arns[cam], kin, "home", NotificationChannel={"SNSTopicArn": topic})
        REK.start_stream_processor(Name=f"watch-{cam}")
    shard = KIN.list_shards(StreamName="home-faces")["Shards"][0]["ShardId"]
    it = KIN.get_shard_iterator(StreamName="home-faces", ShardId=shard,
                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    puts = [put(cam) for cam in cams]
    records = []
    quiet_since = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        out = KIN.get_records(ShardIterator=it, Limit=1000)
        it = out["NextShardIterator"]
        now = time.time()
        for r in out["Records"]:
            records.append((now, r))
        if all(p.poll() is not None for p in puts):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 4:
                break
        time.sleep(0.2)
    for p in puts:
        assert p.wait(10) == 0, p.stderr.read()
    assert records, "no analysis records"
    # The video's start on each camera: its first fragment's producer timestamp.
    start = {}
    am = boto3.client("kinesis-video-archived-media", endpoint_url=ENDPOINT, region_name=REGION,
                      aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    numbers = {}
    for cam in cams:
        frags = am.list_fragments(StreamName=cam, FragmentSelector=EVER)["Fragments"]
        start[cam] = min(f["ProducerTimestamp"].timestamp() for f in frags)
        numbers[cam] = {f["FragmentNumber"] for f in frags}
    known, unknown, latencies = {c: [] for c in cams}, {c: [] for c in cams}, []
    for seen, r in records:
        body = json.loads(r["Data"])
        kv = body["InputInformation"]["KinesisVideo"]
        cam = kv["StreamArn"].split("/")[1]
        assert kv["StreamArn"] == arns[cam], kv
        assert r["PartitionKey"] == arns[cam], r["PartitionKey"]
        assert kv["FragmentNumber"] in numbers[cam], (kv, sorted(numbers[cam]))
        for k in ["ServerTimestamp", "ProducerTimestamp", "FrameOffsetInSeconds"]:
            assert isinstance(kv[k], float), (k, kv)
        assert body["StreamProcessorInformation"] == {"Status": "RUNNING"}, body
        t = kv["ProducerTimestamp"] + kv["FrameOffsetInSeconds"] - start[cam]
        latencies.append(seen - (kv["ServerTimestamp"] + kv["FrameOffsetInSeconds"]))
        assert body["FaceSearchResponse"], body
        for f in body["FaceSearchResponse"]:
            d = f["DetectedFace"]
            assert set(d) >= {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}, d
            assert set(d["BoundingBox"]) == {"Width", "Height", "Left", "Top"}, d
            assert [l["Type"] for l in d["Landmarks"]] == [
                "eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"], d
            assert all(0 <= v <= 1 for v in d["BoundingBox"].values()), d
            if f["MatchedFaces"]:
                m = f["MatchedFaces"][0]
                assert m["Similarity"] >= 85, m
                assert m["Face"]["FaceId"] == face_id, m
                assert m["Face"]["ExternalImageId"] == "obama", m
                assert set(m["Face"]) >= {"BoundingBox", "FaceId", "ImageId", "Confidence"}, m
                known[cam].append(t)
            else:
                unknown[cam].append(t)
    for cam in cams:
        print(f"  {cam}: known at {[round(x, 1) for x in known[cam]]}", flush=True)
        print(f"  {cam}: unknown at {[round(x, 1) for x in unknown[cam]]}", flush=True)
        # Obama is in view from 1 s to 6 s and matched there only; Biden (not in the
        # collection) from 8 s to 13 s, an unknown face; nobody is seen where nobody is.
        assert known[cam], f"{cam}: Obama was never matched"
        assert all(0.9 <= t <= 6.1 for t in known[cam]), (cam, known[cam])
        assert any(8 <= t <= 13.1 for t in unknown[cam]), f"{cam}: no unknown face for Biden"
        assert all(0.9 <= t <= 6.1 or 7.9 <= t <= 13.1 for t in unknown[cam]), (cam, unknown[cam])
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"  {len(records)} records; behind the frame: p50 {latencies[len(latencies) // 2]:.2f} s, "
          f"max {latencies[-1]:.2f} s", flush=True)
    assert p99 <= 2.0, f"records arrive {p99:.2f} s after their frame (p99)"
    for cam in cams:
        REK.stop_stream_processor(Name=f"watch-{cam}")
        assert REK.describe_stream_processor(Name=f"watch-{cam}")["Status"] == "STOPPED"
    # Vigil's face events: per camera, one appearance of Obama decided KNOWN and one of Biden
    # decided UNKNOWN, each started once and ended once, with a thumbnail.
    for cam in cams:
        events = face_events(f"watch-{cam}")
        summary = [(e["Type"], e["Decision"], round(e["StartTimestamp"] - start[cam], 1),
                    round(e["EndTimestamp"] - start[cam], 1)) for e in events]
        print(f"  {cam}: events {summary}", flush=True)
        started = [e for e in events if e["Type"] == "FaceTrackStarted"]
        ended = [e for e in events if e["Type"] == "FaceTrackEnded"]
        assert [e["Decision"] for e in started] == ["KNOWN", "UNKNOWN"], summary
        assert [e["Decision"] for e in ended] == ["KNOWN", "UNKNOWN"], summary
        obama, biden = started
        assert obama["MatchedFace"]["FaceId"] == face_id, obama
        assert obama["MatchedFace"]["ExternalImageId"] == "obama", obama
        assert "MatchedFace" not in biden, biden
        assert 0.9 <= obama["StartTimestamp"] - start[cam] <= 6.1, obama
        assert 7.9 <= biden["StartTimestamp"] - start[cam] <= 13.1, biden
        for e in events:
            assert e["StreamArn"] == arns[cam] and e["FragmentNumber"] in numbers[cam], e
            assert base64.b64decode(e["Thumbnail"])[:2] == b"\xff\xd8", "a JPEG thumbnail"
        assert ended[0]["TrackId"] == obama["TrackId"] and ended[1]["TrackId"] == biden["TrackId"]
    # One notification per stranger per camera (Biden's appearance), none for Obama, signed.
    deadline = time.monotonic() + 10
    while len(phone.of_type("Notification", "/alerts")) < len(cams) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    alerts = phone.of_type("Notification", "/alerts")
    by_cam = {}
    for a in alerts:
        assert a["verified"], a
        doc = a["doc"]
        body = json.loads(doc["Message"])
        assert doc["MessageAttributes"]["decision"]["Value"] == "UNKNOWN", doc
        assert doc["MessageAttributes"]["kind"]["Value"] == "FaceTrackStarted", doc
        assert doc["Subject"] == f"Unknown face on {body['Camera']}", doc
        assert body["Decision"] == "UNKNOWN" and body["StreamArn"] == arns[body["Camera"]], body
        assert body["FragmentNumber"] in numbers[body["Camera"]], body
        assert 7.9 <= body["StartTimestamp"] - start[body["Camera"]] <= 13.1, body
        by_cam.setdefault(body["Camera"], []).append(body)
    print(f"  alerts: {[(c, len(v)) for c, v in sorted(by_cam.items())]}", flush=True)
    assert sorted(by_cam) == sorted(cams) and all(len(v) == 1 for v in by_cam.values()), by_cam
    status, err = rek_raw("ListFaceEvents", {"StreamProcessorName": "missing"})
    assert status == 400 and err["__type"] == "ResourceNotFoundException", (status, err)
    status, err = rek_raw("ListFaceEvents", {"StreamProcessorName": "watch-garden",
                                             "NextToken": "garbage"})
    assert status == 400 and err["__type"] == "InvalidPaginationTokenException", (status, err)


def test_restart_phase_1():
    """Before a restart: a processor started, one push analysed."""
    collection("again")
    kin = data_stream("again-out")
    processor("again", video_stream("again-cam"), kin, "again")
    REK.start_stream_processor(Name="again")
    p = put("again-cam")
    assert p.wait(60) == 0
    deadline = time.monotonic() + 30
    shard = KIN.list_shards(StreamName="again-out")["Shards"][0]["ShardId"]
    while True:
        it = KIN.get_shard_iterator(StreamName="again-out", ShardId=shard,
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        n = len(KIN.get_records(ShardIterator=it)["Records"])
        if n > 0:
            break
        assert time.monotonic() < deadline, "no records before the restart"
        time.sleep(0.5)


def test_restart_phase_2():
    """After a restart: still RUNNING, and a new push is analysed."""
    assert REK.describe_stream_processor(Name="again")["Status"] == "RUNNING"
    shard = KIN.list_shards(StreamName="again-out")["Shards"][0]["ShardId"]
    it = KIN.get_shard_iterator(StreamName="again-out", ShardId=shard,
                                ShardIteratorType="LATEST")["ShardIterator"]
    am = boto3.client("kinesis-video-archived-media", endpoint_url=ENDPOINT, region_name=REGION,
                      aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    frags = am.list_fragments(StreamName="again-cam", FragmentSelector=EVER)["Fragments"]
    before = max(int(f["FragmentNumber"]) for f in frags)
    p = put("again-cam")
    assert p.wait(60) == 0
    deadline = time.monotonic() + 30
    seen = []

    def new_match(r):
        body = json.loads(r["Data"])
        return (int(body["InputInformation"]["KinesisVideo"]["FragmentNumber"]) > before
                and body["FaceSearchResponse"][0]["MatchedFaces"])

    while not any(new_match(r) for r in seen):
        out = KIN.get_records(ShardIterator=it)
        it = out["NextShardIterator"]
        seen.extend(out["Records"])
        assert time.monotonic() < deadline, f"no match after the restart ({len(seen)} records)"
        time.sleep(0.5)
    REK.stop_stream_processor(Name="again")
    # A StartSelector in the past: the run analyses the stream from that fragment on.
    first = min(frags, key=lambda f: int(f["FragmentNumber"]))["FragmentNumber"]
    it = KIN.get_shard_iterator(StreamName="again-out", ShardId=shard,
                                ShardIteratorType="LATEST")["ShardIterator"]
    REK.start_stream_processor(Name="again", StartSelector={"KVSStreamStartSelector": {
        "FragmentNumber": first}}, StopSelector={"MaxDurationInSeconds": 60})
    deadline = time.monotonic() + 30
    replayed = set()
    # The first fragment (the first second) holds nobody; the next ones, of the first push,
    # hold Obama.
    while not any(int(n) <= before for n in replayed):
        out = KIN.get_records(ShardIterator=it)
        it = out["NextShardIterator"]
        for r in out["Records"]:
            replayed.add(json.loads(r["Data"])["InputInformation"]["KinesisVideo"]["FragmentNumber"])
        assert time.monotonic() < deadline, f"the run from {first} analysed {replayed}"
        time.sleep(0.5)
    REK.stop_stream_processor(Name="again")


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    if ONLY:
        tests = [(n, f) for n, f in tests if n in ONLY]
    else:
        tests = [(n, f) for n, f in tests if not n.startswith("test_restart")]
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
          f"botocore {botocore.__version__})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
