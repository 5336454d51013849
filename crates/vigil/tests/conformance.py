"""Model-driven conformance: every operation of the botocore service models Vigil implements,
called through boto3 as a user would, against a running `vigil serve`.

Run by crates/vigil/tests/cli/conformance.rs with the venv of scripts/aws-venv.sh:

    python conformance.py ENDPOINT KEY SECRET REGION ACCOUNT VIGIL MEDIA_DIR COMPAT_DOC

The models (`kinesisvideo`, `kinesis-video-media`, `kinesis-video-archived-media`,
`rekognition`) are botocore's own, read from the installed package. For each operation:

- Not implemented (KVS: 501 NotImplemented; Rekognition: UnknownOperationException): the
  operation must be listed with status "no" in docs/compatibility.md, and nothing else may be.
- Implemented: called with the model's required members only (valid values), then once with
  each optional member added (one level into structures too), expecting success, or the
  documented error where docs/compatibility.md names the combination as refused (DOCUMENTED).
- Constraints: for each member with a length, range, pattern or enum in the model, one call
  breaking it (client-side validation off), expecting HTTP 400 and the service's validation
  error (`InvalidArgumentException` for KVS, `ValidationException` for Rekognition).

Values come from the shapes (enums, ranges, lengths) and, where a value must name something
real (a stream with media, a collection with a face, a fragment number), from FIXTURES, built
against the server at the start. The script prints one line per failure and a summary, and
exits non-zero if anything failed.
"""

import datetime
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import time
import traceback

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, KEY, SECRET, REGION, ACCOUNT, VIGIL, MEDIA, COMPAT = sys.argv[1:9]
SERVICES = ["kinesisvideo", "kinesis-video-media", "kinesis-video-archived-media", "rekognition"]
VALIDATION = {"rekognition": "ValidationException"}  # every other service: InvalidArgumentException
STREAM = "conf-cam"


def model(service):
    root = os.path.join(os.path.dirname(botocore.__file__), "data", service)
    path = sorted(glob.glob(os.path.join(root, "*", "service-2.json*")))[-1]
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def client(service, validate=True):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                      parameter_validation=validate, read_timeout=60),
    )


MODELS = {s: model(s) for s in SERVICES}
CLIENTS = {s: client(s) for s in SERVICES}
RAW = {s: client(s, validate=False) for s in SERVICES}
KV, REK = CLIENTS["kinesisvideo"], CLIENTS["rekognition"]
KIN = client("kinesis")
FAILURES = []
COUNTS = {"not implemented": 0, "calls": 0, "constraints": 0}


def fail(what, detail):
    FAILURES.append(f"{what}: {detail}")
    print(f"FAIL {what}: {detail}", flush=True)


# ---------------------------------------------------------------------------------------------
# Fixtures: real resources the calls name.

def unique(prefix, n=[0]):
    n[0] += 1
    return f"{prefix}-{n[0]}"


def stream_arn(name):
    return KV.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"]


def version(name):
    return KV.describe_stream(StreamName=name)["StreamInfo"]["Version"]


def temp_stream():
    name = unique("conf-tmp")
    KV.create_stream(StreamName=name, DataRetentionInHours=24)
    return name


def setup_media():
    """The stream with media: `vigil put --realtime` of MEDIA/conf.mkv, running for the whole
    script so that LIVE playback and GetMedia NOW have a live edge."""
    KV.create_stream(StreamName=STREAM, DataRetentionInHours=24, MediaType="video/h264")
    proc = subprocess.Popen([VIGIL, "put", STREAM, "--quiet", "--realtime",
                             os.path.join(MEDIA, "conf.mkv")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    am = CLIENTS["kinesis-video-archived-media"]
    deadline = time.monotonic() + 60
    while True:
        frags = am.list_fragments(StreamName=STREAM)["Fragments"]
        if len(frags) >= 4:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"only {len(frags)} fragments"
        time.sleep(0.5)
    frags.sort(key=lambda f: int(f["FragmentNumber"]))
    return proc, frags


def setup_faces():
    with open(os.path.join(MEDIA, "obama.jpg"), "rb") as f:
        jpeg = f.read()
    REK.create_collection(CollectionId="conf-people")
    face = REK.index_faces(CollectionId="conf-people", Image={"Bytes": jpeg},
                           ExternalImageId="obama.jpg")["FaceRecords"][0]["Face"]["FaceId"]
    # A second face, so that a page of one has a NextToken.
    REK.index_faces(CollectionId="conf-people", Image={"Bytes": jpeg})
    REK.create_collection(CollectionId="conf-people-2")
    return jpeg, face


def setup_processors(kvs_arn):
    KIN.create_stream(StreamName="conf-out", ShardCount=1)
    kin_arn = KIN.describe_stream_summary(StreamName="conf-out")["StreamDescriptionSummary"]["StreamARN"]
    for i in range(2):
        new_processor(kvs_arn, kin_arn, f"conf-proc-{i}")
    return kin_arn


def processor_input(kvs_arn, kin_arn, name):
    return {
        "Name": name,
        "Input": {"KinesisVideoStream": {"Arn": kvs_arn}},
        "Output": {"KinesisDataStream": {"Arn": kin_arn}},
        "Settings": {"FaceSearch": {"CollectionId": "conf-people", "FaceMatchThreshold": 85.0}},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/vigil-conformance",
    }


def new_processor(kvs_arn, kin_arn, name=None):
    name = name or unique("conf-proc")
    REK.create_stream_processor(**processor_input(kvs_arn, kin_arn, name))
    return name


def wait_processor(name, status):
    deadline = time.monotonic() + 30
    while REK.describe_stream_processor(Name=name)["Status"] != status:
        assert time.monotonic() < deadline, f"{name} never {status}"
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Valid values.

def java_pattern(p):
    """A model pattern (Java regex) as Python's re understands it."""
    return p.replace(r"\p{L}", r"^\W\d_").replace(r"\p{Z}", r"\s").replace(r"\p{N}", r"\d") \
        .replace("[^\\W\\d_", "[\\w").replace(r"[\w\s\d", r"[\w\s")


def matches(pattern, value):
    try:
        return re.fullmatch(java_pattern(pattern), value) is not None
    except re.error:
        return True


class Ctx:
    """What the values of one call depend on: the service, the operation, and per-call
    resources made by the operation's setup (a stream to delete, a processor to start)."""

    def __init__(self, service, op, extra=None):
        self.service, self.op, self.extra = service, op, extra or {}


def shape(service, name):
    return MODELS[service]["shapes"][name]


def valid(ctx, member, shape_name, path):
    """A valid value for `member` (at `path`, e.g. GetMedia.StartSelector.AfterFragmentNumber)."""
    keys = (path, f"{ctx.service}:{ctx.op}.{member}", f"{ctx.op}.{member}",
            f"{ctx.service}:{member}", member)
    for key in keys:
        if key in ctx.extra:
            return ctx.extra[key]
        if key in FIXTURES:
            v = FIXTURES[key]
            return v(ctx) if callable(v) else v
    sh = shape(ctx.service, shape_name)
    t = sh["type"]
    if "enum" in sh:
        return sh["enum"][0]
    if t == "string":
        n = max(sh.get("min", 1), 1)
        v = "a" * n
        if "pattern" in sh and not matches(sh["pattern"], v):
            raise KeyError(f"no fixture for {path} ({sh['pattern']})")
        return v
    if t in ("integer", "long"):
        return max(sh.get("min", 1), 1) if "max" not in sh else max(sh.get("min", 1), min(1, sh["max"]))
    if t in ("float", "double"):
        return float(sh.get("min", 50))
    if t == "boolean":
        return False
    if t == "timestamp":
        return datetime.datetime.now(datetime.timezone.utc)
    if t == "structure":
        return {m: valid(ctx, m, ms["shape"], f"{path}.{m}")
                for m, ms in sh["members"].items() if m in sh.get("required", [])}
    if t == "list":
        return [valid(ctx, member, sh["member"]["shape"], path + "[]")]
    if t == "map":
        return {"site": "home"}
    if t == "blob":
        return b"x"
    raise KeyError(f"no value for {path} ({t})")


IDENTITY = ("StreamName", "StreamARN")


def members(service, op):
    inp = MODELS[service]["operations"][op].get("input")
    if not inp:
        return {}, []
    sh = shape(service, inp["shape"])
    return sh["members"], sh.get("required", [])


def base_input(ctx):
    """The model's required members; a stream operation also names its stream (StreamName),
    which the model marks optional only because StreamARN may name it instead."""
    ms, required = members(ctx.service, ctx.op)
    names = list(required)
    if "StreamName" in ms and "StreamARN" in ms and not ({"StreamName", "StreamARN"} & set(required)):
        names.append("StreamName")
    return {m: valid(ctx, m, ms[m]["shape"], f"{ctx.op}.{m}") for m in names}


def optional_variants(ctx):
    """(label, input) for each optional member added to the base, and for each optional member
    one level into a structure member."""
    ms, required = members(ctx.service, ctx.op)
    base = base_input(ctx)
    out = []
    for m, spec in ms.items():
        if m in required or (m == "StreamName" and "StreamName" in base):
            continue
        inp = dict(base)
        if m == "StreamARN":
            inp.pop("StreamName", None)
        inp[m] = valid(ctx, m, spec["shape"], f"{ctx.op}.{m}")
        out.append((f"{ctx.op}.{m}", inp))
        sh = shape(ctx.service, spec["shape"])
        if sh["type"] != "structure":
            continue
        for n, nspec in sh["members"].items():
            if n in sh.get("required", []):
                continue
            path = f"{ctx.op}.{m}.{n}"
            inp = dict(base)
            if path in NESTED:
                v = NESTED[path]
                inp[m] = v(ctx) if callable(v) else v
            else:
                inner = dict(valid(ctx, m, spec["shape"], f"{ctx.op}.{m}"))
                inner[n] = valid(ctx, n, nspec["shape"], path)
                inp[m] = inner
            out.append((path, inp))
    return out


# ---------------------------------------------------------------------------------------------
# Invalid values: one constraint of the model broken at a time.

def invalid_values(ctx, member, shape_name, good):
    sh = shape(ctx.service, shape_name)
    t, out = sh["type"], []
    if "enum" in sh:
        out.append(("enum", "NOT_A_VALUE"))
    elif t == "string":
        lo, hi = sh.get("min"), sh.get("max")
        if hi is not None:
            out.append(("max length", "a" * (hi + 1) if "pattern" not in sh
                        or matches(sh["pattern"], "a" * (hi + 1)) else str(good) + "a" * hi))
        if lo:
            out.append(("min length", ""))
        if "pattern" in sh:
            for cand in (f"{good}!", f"!{good}", f"{good} x", f"{good}\u00e9", f"{good}*", " "):
                fits = (lo is None or len(cand) >= lo) and (hi is None or len(cand) <= hi)
                if fits and not matches(sh["pattern"], cand):
                    out.append(("pattern", cand))
                    break
    elif t in ("integer", "long"):
        if "min" in sh:
            out.append(("min", sh["min"] - 1))
        if "max" in sh:
            out.append(("max", sh["max"] + 1))
    elif t in ("float", "double"):
        if "min" in sh:
            out.append(("min", sh["min"] - 1.0))
        if "max" in sh:
            out.append(("max", sh["max"] + 1.0))
    elif t in ("list", "map"):
        if sh.get("min"):
            out.append(("min items", [] if t == "list" else {}))
        if sh.get("max") is not None and sh["max"] <= 5000:
            if t == "list":
                out.append(("max items", [good[0] if good else "a"] * (sh["max"] + 1)))
            else:
                out.append(("max items", {f"k{i}": "v" for i in range(sh["max"] + 1)}))
    return out


def invalid_variants(ctx):
    ms, _ = members(ctx.service, ctx.op)
    base = base_input(ctx)
    out = []
    for m, spec in ms.items():
        good = base.get(m)
        if good is None:
            try:
                good = valid(ctx, m, spec["shape"], f"{ctx.op}.{m}")
            except KeyError:
                continue
        for what, bad in invalid_values(ctx, m, spec["shape"], good):
            inp = dict(base)
            if m == "StreamARN":
                inp.pop("StreamName", None)
            inp[m] = bad
            out.append((f"{ctx.op}.{m} ({what})", inp))
        sh = shape(ctx.service, spec["shape"])
        if sh["type"] == "structure" and isinstance(good, dict):
            for n, nspec in sh["members"].items():
                if n not in good:
                    continue
                for what, bad in invalid_values(ctx, n, nspec["shape"], good[n]):
                    inp = dict(base)
                    inp[m] = dict(good, **{n: bad})
                    out.append((f"{ctx.op}.{m}.{n} ({what})", inp))
    return out


# ---------------------------------------------------------------------------------------------
# Calls.

def call(service, op, params, validate=True):
    c = (CLIENTS if validate else RAW)[service]
    r = getattr(c, botocore.xform_name(op))(**params)
    for v in r.values():
        if hasattr(v, "close") and hasattr(v, "read"):
            v.read(1)
            v.close()
    return r


def expect_ok(ctx, label, params, validate=True):
    COUNTS["calls"] += 1
    documented = DOCUMENTED.get(label)
    try:
        call(ctx.service, ctx.op, params, validate)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        if documented and code == documented:
            return
        fail(label, f"{code} {e.response['ResponseMetadata']['HTTPStatusCode']}: "
                    f"{e.response['Error'].get('Message')} for {short(params)}")
        return
    except Exception as e:  # noqa: BLE001 - a client-side failure is a failure too
        fail(label, f"{type(e).__name__}: {e}")
        return
    if documented:
        fail(label, f"succeeded where docs/compatibility.md says {documented}")


def model_errors(service, op):
    return {e["shape"] for e in MODELS[service]["operations"][op].get("errors", [])}


def expect_invalid(ctx, label, params):
    COUNTS["constraints"] += 1
    want = {VALIDATION.get(ctx.service, "InvalidArgumentException")}
    member = label.split(" ")[0].split(".")[-1]
    # A malformed ARN: the model documents InvalidResourceFormatException for it where the
    # operation lists that error.
    if member.endswith(("ARN", "Arn")) and "InvalidResourceFormatException" in model_errors(ctx.service, ctx.op):
        want.add("InvalidResourceFormatException")
    try:
        call(ctx.service, ctx.op, params, validate=False)
    except ClientError as e:
        code, status = e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        if code not in want or status != 400:
            fail(label, f"{code} {status} (wanted {want} 400): {e.response['Error'].get('Message')}")
        return
    except botocore.exceptions.ParamValidationError:
        # botocore refuses some types before sending (its own check, not Vigil's): not
        # counted.
        COUNTS["constraints"] -= 1
        return
    except Exception as e:  # noqa: BLE001
        fail(label, f"{type(e).__name__}: {e}")
        return
    fail(label, f"accepted {short(params)}")


def short(params):
    s = repr({k: (v if not isinstance(v, (bytes, str)) or len(v) < 60 else f"<{len(v)}>")
              for k, v in params.items()})
    return s if len(s) < 300 else s[:300] + "..."


# ---------------------------------------------------------------------------------------------
# Which operations Vigil implements, and what the docs say.

def compat_rows():
    """{operation: status} from the tables of docs/compatibility.md."""
    rows = {}
    with open(COMPAT) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 2 or cells[1] not in ("yes", "partial", "no", "Vigil's"):
                continue
            for name in re.findall(r"\b[A-Z][A-Za-z0-9]+\b", cells[0]):
                rows.setdefault(name, set()).add(cells[1])
    return rows


def implemented(service, op):
    try:
        call(service, op, {}, validate=False)
    except ClientError as e:
        err = e.response["Error"]["Code"]
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        if service == "rekognition":
            return err != "UnknownOperationException"
        return status != 501
    except Exception:  # noqa: BLE001 - answered, just not as botocore parses
        return True
    return True


def main():
    proc, frags = setup_media()
    try:
        run(frags)
    finally:
        proc.kill()
    print(f"{COUNTS['not implemented']} operations not implemented (all listed as such), "
          f"{COUNTS['calls']} valid calls, {COUNTS['constraints']} constraint checks, "
          f"{len(FAILURES)} failures", flush=True)
    sys.exit(1 if FAILURES else 0)


def run(frags):
    arn = stream_arn(STREAM)
    jpeg, face = setup_faces()
    kin_arn = setup_processors(arn)
    first, last = frags[0], frags[-1]
    ctx_values(arn, jpeg, face, kin_arn, first, last)
    rows = compat_rows()
    for service in SERVICES:
        for op in sorted(MODELS[service]["operations"]):
            statuses = rows.get(op, set())
            if not implemented(service, op):
                COUNTS["not implemented"] += 1
                if "no" not in statuses:
                    fail(op, f"not implemented, but docs/compatibility.md says {statuses or 'nothing'}")
                continue
            if service == "rekognition" and op not in REKOGNITION_SCOPE:
                fail(op, "implemented, but not in this test's scope: add it")
                continue
            if not statuses & {"yes", "partial"}:
                fail(op, f"implemented, but docs/compatibility.md says {statuses or 'nothing'}")
            try:
                check_operation(service, op, arn, kin_arn)
            except Exception:  # noqa: BLE001 - the rest still runs
                fail(op, traceback.format_exc(limit=3))


def check_operation(service, op, arn, kin_arn):
    setup = SETUP.get(op)
    fresh = (lambda: Ctx(service, op, setup(arn, kin_arn))) if setup else (lambda: Ctx(service, op))
    teardown = TEARDOWN.get(op, lambda params: None)
    ctx = fresh()
    params = base_input(ctx)
    expect_ok(ctx, f"{op} (required members)", params)
    teardown(params)
    # The labels only: values from the fixtures, no resource made.
    labels = [label for label, _ in optional_variants(Ctx(service, op))]
    for i, label in enumerate(labels):
        # Each call with its own resources (a stream to delete, a processor to start), and
        # values read just before it (a stream's current version).
        ctx = fresh()
        params = optional_variants(ctx)[i][1]
        if "CurrentVersion" in params:
            params["CurrentVersion"] = current_version(params)
        expect_ok(ctx, label, params)
        teardown(params)
    labels = [label for label, _ in invalid_variants(Ctx(service, op))]
    for i, label in enumerate(labels):
        ctx = fresh()
        params = invalid_variants(ctx)[i][1]
        if "CurrentVersion" in params and not label.startswith(f"{op}.CurrentVersion "):
            params["CurrentVersion"] = current_version(params)
        if label in LENIENT:
            expect_ok(ctx, label, params, validate=False)
        else:
            expect_invalid(ctx, label, params)
        teardown(params)


def current_version(params):
    try:
        if "StreamName" in params:
            return version(params["StreamName"])
        return KV.describe_stream(StreamARN=params["StreamARN"])["StreamInfo"]["Version"]
    except (ClientError, botocore.exceptions.ParamValidationError):
        return params["CurrentVersion"]  # a call about a malformed name or ARN


def stop_processor(params):
    name = params.get("Name")
    try:
        if REK.describe_stream_processor(Name=name)["Status"] == "RUNNING":
            REK.stop_stream_processor(Name=name)
    except (ClientError, botocore.exceptions.ParamValidationError):
        pass  # what a refused call named may not exist


def delete_processor(params):
    try:
        stop_processor(params)
        REK.delete_stream_processor(Name=params.get("Name"))
    except (ClientError, botocore.exceptions.ParamValidationError):
        pass


# What each valid call leaves behind is removed after it (at most 20 processors may exist,
# and a running one analyses video).
TEARDOWN = {
    "CreateStreamProcessor": delete_processor,
    "StartStreamProcessor": delete_processor,
    "StopStreamProcessor": delete_processor,
    "UpdateStreamProcessor": delete_processor,
}


# Operations whose calls need a resource of their own, made fresh for each call: the values
# they return override FIXTURES for that call.
def setup_delete_stream(arn, kin_arn):
    name = temp_stream()
    return {"StreamARN": stream_arn(name), "CurrentVersion": version(name)}


def setup_delete_collection(arn, kin_arn):
    c = unique("conf-tmp-people")
    REK.create_collection(CollectionId=c)
    return {"CollectionId": c}


def setup_delete_faces(arn, kin_arn):
    r = REK.index_faces(CollectionId="conf-people", Image={"Bytes": FIX["jpeg"]})
    return {"FaceIds": [r["FaceRecords"][0]["Face"]["FaceId"]]}


def setup_processor(arn, kin_arn):
    return {"Name": new_processor(arn, kin_arn)}


def setup_running_processor(arn, kin_arn):
    name = new_processor(arn, kin_arn)
    REK.start_stream_processor(Name=name)
    wait_processor(name, "RUNNING")
    return {"Name": name}


FIX = {}


def ctx_values(arn, jpeg, face, kin_arn, first, last):
    FIX.update(arn=arn, jpeg=jpeg, face=face, kin_arn=kin_arn, first=first, last=last)


def server_range(seconds=None):
    a = FIX["first"]["ServerTimestamp"]
    b = FIX["last"]["ServerTimestamp"] if seconds is None else a + datetime.timedelta(seconds=seconds)
    return {"StartTimestamp": a, "EndTimestamp": b}


def selector(_ctx=None):
    return {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": server_range()}


def token(op, params, key="NextToken"):
    def make(ctx):
        r = call(ctx.service, op, params(ctx) if callable(params) else params)
        assert r.get(key), f"{op} gave no {key} for {params}"
        return r[key]
    return make


def processor_arn(ctx):
    return f"arn:aws:rekognition:{REGION}:{ACCOUNT}:streamprocessor/conf-proc-0"


def rek_resource(ctx):
    return processor_arn(ctx)


FIXTURES = {
    # Kinesis Video Streams.
    "StreamName": STREAM,
    "CreateStream.StreamName": lambda ctx: unique("conf-new"),
    "StreamARN": lambda ctx: FIX["arn"],
    "kinesisvideo:ResourceARN": lambda ctx: FIX["arn"],
    "DeviceName": "camera-1",
    "MediaType": "video/h264",
    "KmsKeyId": "alias/aws/kinesisvideo",
    "CurrentVersion": lambda ctx: version(STREAM),
    "kinesisvideo:Tags": {"site": "home"},
    "kinesisvideo:TagResource.Tags": [{"Key": "site", "Value": "home"}],
    "kinesisvideo:TagKeyList": ["site"],
    "Operation": "INCREASE_DATA_RETENTION",
    "DataRetentionChangeInHours": 1,
    "DataRetentionInHours": 24,
    "ListStreams.NextToken": token("ListStreams", {"MaxResults": 1}),
    "ListTagsForStream.NextToken": "",
    "ListTagsForResource.NextToken": "",
    "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "conf"},
    "ImageGenerationConfiguration": {
        "Status": "ENABLED", "ImageSelectorType": "SERVER_TIMESTAMP",
        "DestinationConfig": {"Uri": "s3://vigil-images/cam", "DestinationRegion": "us-east-1"},
        "SamplingInterval": 3000, "Format": "JPEG"},
    "ImageGenerationConfiguration.FormatConfig": {"JPEGQuality": "80"},
    "NotificationConfiguration": {
        "Status": "ENABLED",
        "DestinationConfig": {"Uri": f"arn:aws:sns:{REGION}:{ACCOUNT}:vigil-images"}},
    "StreamStorageConfiguration": {"DefaultStorageTier": "HOT"},
    # Media and archived media.
    "kinesis-video-media:StartSelector": {"StartSelectorType": "EARLIEST"},
    "rekognition:StartSelector": lambda ctx: {
        "KVSStreamStartSelector": {"FragmentNumber": FIX["first"]["FragmentNumber"]}},
    "Fragments": lambda ctx: [FIX["first"]["FragmentNumber"]],
    "FragmentSelector": selector,
    "ClipFragmentSelector": selector,
    # Without a TimestampRange, which LIVE mode (the default) refuses.
    "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"},
    "DASHFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP"},
    "ListFragments.NextToken": token("ListFragments", {"StreamName": STREAM, "MaxResults": 1}),
    "ImageSelectorType": "SERVER_TIMESTAMP",
    "GetImages.StartTimestamp": lambda ctx: server_range(4)["StartTimestamp"],
    "GetImages.EndTimestamp": lambda ctx: server_range(4)["EndTimestamp"],
    "SamplingInterval": 1000,
    "Format": "JPEG",
    "FormatConfig": {"JPEGQuality": "80"},
    "WidthPixels": 320,
    "HeightPixels": 180,
    "GetImages.MaxResults": 2,
    # A token for the base request's range and (default) interval.
    "GetImages.NextToken": token("GetImages", lambda ctx: {
        "StreamName": STREAM, "ImageSelectorType": "SERVER_TIMESTAMP", "Format": "JPEG",
        "MaxResults": 1, **server_range(4)}),
    "Expires": 300,
    "MaxManifestFragmentResults": 5,
    "MaxMediaPlaylistFragmentResults": 5,
    "ContainerFormat": "FRAGMENTED_MP4",
    # Rekognition.
    "CollectionId": "conf-people",
    "CreateCollection.CollectionId": lambda ctx: unique("conf-new-people"),
    "rekognition:Tags": {"site": "home"},
    "Image": lambda ctx: {"Bytes": FIX["jpeg"]},
    "SourceImage": lambda ctx: {"Bytes": FIX["jpeg"]},
    "TargetImage": lambda ctx: {"Bytes": FIX["jpeg"]},
    "Bytes": lambda ctx: FIX["jpeg"],
    "ExternalImageId": "obama.jpg",
    "FaceId": lambda ctx: FIX["face"],
    "FaceIds": lambda ctx: [FIX["face"]],
    "UserId": "resident-1",
    "ListCollections.NextToken": token("ListCollections", {"MaxResults": 1}),
    "ListFaces.NextToken": token("ListFaces", {"CollectionId": "conf-people", "MaxResults": 1}),
    "ListStreamProcessors.NextToken": token("ListStreamProcessors", {"MaxResults": 1}),
    "MaxResults": 1,
    "MaxFaces": 1,
    "FaceMatchThreshold": 80.0,
    "SimilarityThreshold": 80.0,
    "Name": "conf-proc-0",
    "CreateStreamProcessor.Name": lambda ctx: unique("conf-new-proc"),
    "Input": lambda ctx: {"KinesisVideoStream": {"Arn": FIX["arn"]}},
    "Output": lambda ctx: {"KinesisDataStream": {"Arn": FIX["kin_arn"]}},
    "Settings": {"FaceSearch": {"CollectionId": "conf-people", "FaceMatchThreshold": 85.0}},
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/vigil-conformance",
    "NotificationChannel": {"SNSTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:vigil-alerts"},
    "CreateStreamProcessor.KmsKeyId": "vigil-master",
    "RegionsOfInterest": [{"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 1.0, "Height": 1.0}}],
    "RegionsOfInterestForUpdate": [{"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 0.5, "Height": 0.5}}],
    "DataSharingPreference": {"OptIn": False},
    "DataSharingPreferenceForUpdate": {"OptIn": False},
    "ParametersToDelete": ["RegionsOfInterest"],
    "StartSelector.KVSStreamStartSelector": lambda ctx: {"FragmentNumber": FIX["first"]["FragmentNumber"]},
    "StopSelector": {"MaxDurationInSeconds": 10},
    "ResourceArn": rek_resource,
    "TagKeys": ["site"],
}


# Values for an optional member inside a structure, where the structure's other members must
# agree with it.
NESTED = {
    "GetMedia.StartSelector.AfterFragmentNumber": lambda ctx: {
        "StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": FIX["first"]["FragmentNumber"]},
    "GetMedia.StartSelector.StartTimestamp": lambda ctx: {
        "StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": FIX["first"]["ServerTimestamp"]},
    "GetMedia.StartSelector.ContinuationToken": lambda ctx: {
        "StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": FIX["first"]["FragmentNumber"]},
    "GetHLSStreamingSessionURL.HLSFragmentSelector.FragmentSelectorType": {
        "FragmentSelectorType": "PRODUCER_TIMESTAMP"},
    "GetHLSStreamingSessionURL.HLSFragmentSelector.TimestampRange": selector,
    "GetDASHStreamingSessionURL.DASHFragmentSelector.FragmentSelectorType": {
        "FragmentSelectorType": "PRODUCER_TIMESTAMP"},
    "GetDASHStreamingSessionURL.DASHFragmentSelector.TimestampRange": selector,
    "StartStreamProcessor.StartSelector.KVSStreamStartSelector": lambda ctx: {
        "KVSStreamStartSelector": {"FragmentNumber": FIX["first"]["FragmentNumber"]}},
    "CreateStreamProcessor.Settings.ConnectedHome": {"ConnectedHome": {"Labels": ["PERSON"]}},
    "CreateStreamProcessor.Settings.FaceSearch": {
        "FaceSearch": {"CollectionId": "conf-people", "FaceMatchThreshold": 85.0}},
    "CreateStreamProcessor.Output.S3Destination": {"S3Destination": {"Bucket": "vigil-out"}},
    "CreateStreamProcessor.Output.KinesisDataStream": lambda ctx: {
        "KinesisDataStream": {"Arn": FIX["kin_arn"]}},
    "CreateStreamProcessor.Input.KinesisVideoStream": lambda ctx: {
        "KinesisVideoStream": {"Arn": FIX["arn"]}},
    "UpdateStreamProcessor.SettingsForUpdate.ConnectedHomeForUpdate": {
        "ConnectedHomeForUpdate": {"Labels": ["PERSON"]}},
    "IndexFaces.Image.S3Object": {"S3Object": {"Bucket": "vigil-faces", "Name": "a.jpg"}},
    "SearchFacesByImage.Image.S3Object": {"S3Object": {"Bucket": "vigil-faces", "Name": "a.jpg"}},
    "DetectFaces.Image.S3Object": {"S3Object": {"Bucket": "vigil-faces", "Name": "a.jpg"}},
    "CompareFaces.SourceImage.S3Object": {"S3Object": {"Bucket": "vigil-faces", "Name": "a.jpg"}},
    "CompareFaces.TargetImage.S3Object": {"S3Object": {"Bucket": "vigil-faces", "Name": "a.jpg"}},
}

# Combinations docs/compatibility.md (or the model's documentation) names as refused, and the
# error they get.
DOCUMENTED = {
    # "This value should not be present if PlaybackType is LIVE" (the model), LIVE the default.
    "GetHLSStreamingSessionURL.HLSFragmentSelector.TimestampRange": "InvalidArgumentException",
    "GetDASHStreamingSessionURL.DASHFragmentSelector.TimestampRange": "InvalidArgumentException",
    "CreateStreamProcessor.Settings.ConnectedHome": "InvalidParameterException",
    "CreateStreamProcessor.Output.S3Destination": "InvalidParameterException",
    "UpdateStreamProcessor.SettingsForUpdate.ConnectedHomeForUpdate": "InvalidParameterException",
    "IndexFaces.Image.S3Object": "InvalidS3ObjectException",
    "SearchFacesByImage.Image.S3Object": "InvalidS3ObjectException",
    "DetectFaces.Image.S3Object": "InvalidS3ObjectException",
    "CompareFaces.SourceImage.S3Object": "InvalidS3ObjectException",
    "CompareFaces.TargetImage.S3Object": "InvalidS3ObjectException",
}

# Broken constraints Vigil accepts on purpose, as docs/compatibility.md says: the C producer
# sends empty DeviceName, MediaType and KmsKeyId to CreateStream, and KVS takes them as unset.
LENIENT = {
    "CreateStream.DeviceName (min length)",
    "CreateStream.MediaType (min length)",
    "CreateStream.KmsKeyId (min length)",
}

SETUP = {
    "DeleteStream": setup_delete_stream,
    "DeleteCollection": setup_delete_collection,
    "DeleteFaces": setup_delete_faces,
    "StartStreamProcessor": setup_processor,
    "StopStreamProcessor": setup_running_processor,
    "UpdateStreamProcessor": setup_processor,
    "DeleteStreamProcessor": setup_processor,
}

REKOGNITION_SCOPE = {
    "CreateCollection", "DescribeCollection", "ListCollections", "DeleteCollection", "IndexFaces",
    "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage", "DetectFaces", "CompareFaces",
    "CreateStreamProcessor", "StartStreamProcessor", "StopStreamProcessor",
    "DescribeStreamProcessor", "ListStreamProcessors", "UpdateStreamProcessor",
    "DeleteStreamProcessor", "TagResource", "UntagResource", "ListTagsForResource",
}


if __name__ == "__main__":
    main()
