"""SNS topics through the clients people use: boto3 and the AWS CLI v1, against a running
`vigil serve`, with HTTP subscribers (sns_subscriber.py) that confirm, receive and verify
signed deliveries as a real endpoint does.

Run by crates/vigil/tests/cli/sns.rs with the venv of scripts/aws-venv.sh:

    python sns_clients.py ENDPOINT ACCESS_KEY SECRET REGION ACCOUNT [TEST...]

Each test_* function is one check; the script prints one line per test and exits non-zero if
any failed. The phases `restart_before SUBSCRIBER_URL` and `restart_after LOG_FILE` are the two
halves of the restart test, driven by sns.rs around a server restart.
"""

import email
import email.policy
import json
import os
import socketserver
import subprocess
import threading
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sns_subscriber import Subscriber  # noqa: E402

ENDPOINT, KEY, SECRET, REGION, ACCOUNT = sys.argv[1:6]
ONLY = sys.argv[6:]


def client(secret=SECRET):
    return boto3.client(
        "sns",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


S = client()


def arn(name):
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


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


def until(what, f, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = f()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def raw_call(action, params):
    """A signed query-protocol call botocore has no method for (Vigil's extensions)."""
    body = "&".join(
        f"{k}={urllib.parse.quote(str(v), safe='')}" for k, v in {"Action": action, "Version": "2010-03-31", **params}.items()
    )
    req = AWSRequest(
        method="POST",
        url=ENDPOINT + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(KEY, SECRET), "sns", REGION).add_auth(req)
    r = urllib.request.Request(ENDPOINT + "/", data=body.encode(), headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def subscribe_confirmed(topic_arn, sub, path, **attrs):
    """Subscribes the endpoint at `path`; it confirms by following the SubscribeURL."""
    r = S.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=sub.url(path), Attributes=attrs)
    assert r["SubscriptionArn"] == "pending confirmation", r
    conf = until("the confirmation", lambda: sub.of_type("SubscriptionConfirmation", path))[0]
    doc = conf["doc"]
    assert conf["verified"], conf
    assert doc["TopicArn"] == topic_arn and doc["Type"] == "SubscriptionConfirmation", doc
    assert doc["SubscribeURL"].startswith(ENDPOINT + "/?Action=ConfirmSubscription&"), doc
    assert conf["headers"]["x-amz-sns-topic-arn"] == topic_arn, conf["headers"]
    assert "x-amz-sns-subscription-arn" not in conf["headers"], conf["headers"]

    def confirmed():
        subs = S.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        return [s for s in subs if s["Endpoint"] == sub.url(path) and s["SubscriptionArn"] != "PendingConfirmation"]

    return until("the subscription confirmed", confirmed)[0]["SubscriptionArn"]


# ---- topics ----


def test_topics_attributes_tags_paging_and_errors():
    a = S.create_topic(Name="t-a", Attributes={"DisplayName": "Front door"}, Tags=[{"Key": "room", "Value": "hall"}])
    assert a["TopicArn"] == arn("t-a"), a
    # CreateTopic is idempotent; with other attributes it is not.
    assert S.create_topic(Name="t-a", Attributes={"DisplayName": "Front door"})["TopicArn"] == arn("t-a")
    expect_error("InvalidParameter", 400, S.create_topic, Name="t-a", Attributes={"DisplayName": "Gate"})
    expect_error("InvalidParameter", 400, S.create_topic, Name="bad name!")
    expect_error("InvalidParameter", 400, S.create_topic, Name="f.fifo", Attributes={"FifoTopic": "true"})
    attrs = S.get_topic_attributes(TopicArn=arn("t-a"))["Attributes"]
    assert attrs["DisplayName"] == "Front door" and attrs["TopicArn"] == arn("t-a"), attrs
    assert attrs["Owner"] == ACCOUNT and attrs["SubscriptionsConfirmed"] == "0", attrs
    assert json.loads(attrs["Policy"])["Statement"][0]["Resource"] == arn("t-a"), attrs
    assert json.loads(attrs["EffectiveDeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"]["numRetries"] == 3
    S.set_topic_attributes(TopicArn=arn("t-a"), AttributeName="DisplayName", AttributeValue="Porch")
    assert S.get_topic_attributes(TopicArn=arn("t-a"))["Attributes"]["DisplayName"] == "Porch"
    expect_error("InvalidParameter", 400, S.set_topic_attributes, TopicArn=arn("t-a"), AttributeName="Nope", AttributeValue="x")
    expect_error("InvalidParameter", 400, S.set_topic_attributes, TopicArn=arn("t-a"), AttributeName="DeliveryPolicy", AttributeValue='{"http": {"defaultHealthyRetryPolicy": {"numRetries": 500}}}')
    expect_error("NotFound", 404, S.get_topic_attributes, TopicArn=arn("missing"))
    expect_error("InvalidParameter", 400, S.get_topic_attributes, TopicArn="not-an-arn")
    # Tags.
    S.tag_resource(ResourceArn=arn("t-a"), Tags=[{"Key": "floor", "Value": "0"}])
    tags = {t["Key"]: t["Value"] for t in S.list_tags_for_resource(ResourceArn=arn("t-a"))["Tags"]}
    assert tags == {"room": "hall", "floor": "0"}, tags
    S.untag_resource(ResourceArn=arn("t-a"), TagKeys=["room"])
    assert [t["Key"] for t in S.list_tags_for_resource(ResourceArn=arn("t-a"))["Tags"]] == ["floor"]
    expect_error("ResourceNotFound", 404, S.list_tags_for_resource, ResourceArn=arn("missing"))
    expect_error("TagLimitExceeded", 400, S.tag_resource, ResourceArn=arn("t-a"), Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    # Permissions edit the topic's policy.
    S.add_permission(TopicArn=arn("t-a"), Label="neighbour", AWSAccountId=["111122223333"], ActionName=["Publish"])
    policy = json.loads(S.get_topic_attributes(TopicArn=arn("t-a"))["Attributes"]["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["__default_statement_ID", "neighbour"], policy
    expect_error("InvalidParameter", 400, S.add_permission, TopicArn=arn("t-a"), Label="neighbour", AWSAccountId=["1"], ActionName=["Publish"])
    S.remove_permission(TopicArn=arn("t-a"), Label="neighbour")
    # Paging: 100 a page, with a token that is not a name.
    for i in range(120):
        S.create_topic(Name=f"page-{i:03}")
    page = S.list_topics()
    assert len(page["Topics"]) == 100 and "NextToken" in page, len(page["Topics"])
    assert "page" not in page["NextToken"], page["NextToken"]
    rest = S.list_topics(NextToken=page["NextToken"])
    names = [t["TopicArn"] for t in page["Topics"] + rest["Topics"]]
    assert len(names) == len(set(names)) >= 121 and "NextToken" not in rest, len(names)
    expect_error("InvalidParameter", 400, S.list_topics, NextToken="cGFnZS0wMDU=")
    # A paginator, as scripts use it.
    assert sum(len(p["Topics"]) for p in S.get_paginator("list_topics").paginate()) == len(names)
    for i in range(120):
        S.delete_topic(TopicArn=arn(f"page-{i:03}"))
    S.delete_topic(TopicArn=arn("t-a"))
    S.delete_topic(TopicArn=arn("t-a"))  # deleting what is gone succeeds, as on AWS
    expect_error("NotFound", 404, S.get_topic_attributes, TopicArn=arn("t-a"))


def test_http_subscriptions_receive_signed_notifications():
    sub = Subscriber(ENDPOINT)
    topic = S.create_topic(Name="doorbell")["TopicArn"]
    sub_arn = subscribe_confirmed(topic, sub, "/hook")
    assert sub_arn.startswith(topic + ":"), sub_arn
    a = S.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert a["Protocol"] == "http" and a["Endpoint"] == sub.url("/hook") and a["PendingConfirmation"] == "false", a
    assert S.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsConfirmed"] == "1"
    # A notification with a subject and attributes of every type.
    mid = S.publish(
        TopicArn=topic,
        Subject="Unknown face",
        Message="someone at the door",
        MessageAttributes={
            "camera": {"DataType": "String", "StringValue": "front"},
            "score": {"DataType": "Number", "StringValue": "0.25"},
            "thumb": {"DataType": "Binary", "BinaryValue": b"\xff\xd8\xff"},
            "tags": {"DataType": "String.Array", "StringValue": '["a", "b"]'},
        },
    )["MessageId"]
    n = until("the notification", lambda: sub.of_type("Notification", "/hook"))[0]
    doc, h = n["doc"], n["headers"]
    assert n["verified"], n
    assert doc["Type"] == "Notification" and doc["MessageId"] == mid and doc["Message"] == "someone at the door", doc
    assert doc["Subject"] == "Unknown face" and doc["TopicArn"] == topic and doc["SignatureVersion"] == "1", doc
    assert doc["Timestamp"].endswith("Z") and len(doc["Timestamp"]) == 24, doc["Timestamp"]
    assert doc["MessageAttributes"]["camera"] == {"Type": "String", "Value": "front"}, doc
    assert doc["MessageAttributes"]["thumb"] == {"Type": "Binary", "Value": "/9j/"}, doc
    assert h["x-amz-sns-message-type"] == "Notification" and h["x-amz-sns-message-id"] == mid, h
    assert h["x-amz-sns-subscription-arn"] == sub_arn and h["x-amz-sns-topic-arn"] == topic, h
    assert h["content-type"].startswith("text/plain"), h
    assert list(doc)[:3] == ["Type", "MessageId", "TopicArn"], list(doc)
    # SHA256withRSA once the topic asks for it.
    S.set_topic_attributes(TopicArn=topic, AttributeName="SignatureVersion", AttributeValue="2")
    S.publish(TopicArn=topic, Message="v2")
    n = until("the v2 notification", lambda: [e for e in sub.of_type("Notification", "/hook") if e["doc"]["Message"] == "v2"])[0]
    assert n["verified"] and n["doc"]["SignatureVersion"] == "2", n
    # A message per protocol.
    S.publish(TopicArn=topic, MessageStructure="json", Message=json.dumps({"default": "d", "http": "for http", "email": "e"}))
    until("the per-protocol body", lambda: [e for e in sub.of_type("Notification", "/hook") if e["doc"]["Message"] == "for http"])
    expect_error("InvalidParameter", 400, S.publish, TopicArn=topic, MessageStructure="json", Message='{"http": "x"}')
    # Raw delivery: the message alone.
    S.set_subscription_attributes(SubscriptionArn=sub_arn, AttributeName="RawMessageDelivery", AttributeValue="true")
    S.publish(TopicArn=topic, Message="raw body")
    raw = until("the raw delivery", lambda: [e for e in sub.of_type("Notification", "/hook") if e["body"] == "raw body"])[0]
    assert raw["headers"]["x-amz-sns-rawdelivery"] == "true", raw["headers"]
    # Errors of Publish.
    expect_error("InvalidParameter", 400, S.publish, TopicArn=topic, Message="")
    expect_error("InvalidParameter", 400, S.publish, TopicArn=topic, Message="x" * 262_145)
    expect_error("InvalidParameter", 400, S.publish, TopicArn=topic, Message="x", Subject="two\nlines")
    expect_error("ParameterValueInvalid", 400, S.publish, TopicArn=topic, Message="x",
                 MessageAttributes={"n": {"DataType": "Number", "StringValue": "many"}})
    expect_error("ParameterValueInvalid", 400, S.publish, TopicArn=topic, Message="x",
                 MessageAttributes={f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)})
    expect_error("NotFound", 404, S.publish, TopicArn=arn("missing"), Message="x")
    # The certificate is served where the documents say.
    cert = urllib.request.urlopen(doc["SigningCertURL"]).read()
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----"), cert[:40]
    # Unsubscribing through the document's link (unsigned, as a subscriber's browser does).
    urllib.request.urlopen(doc["UnsubscribeURL"]).read()
    until("the unsubscribe confirmation", lambda: sub.of_type("UnsubscribeConfirmation", "/hook"))
    uc = sub.of_type("UnsubscribeConfirmation", "/hook")[0]
    assert uc["verified"] and uc["doc"]["SubscribeURL"], uc
    expect_error("NotFound", 404, S.get_subscription_attributes, SubscriptionArn=sub_arn)
    assert S.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    S.delete_topic(TopicArn=topic)


def test_filter_policies_and_batches():
    sub = Subscriber(ENDPOINT)
    topic = S.create_topic(Name="faces")["TopicArn"]
    subscribe_confirmed(topic, sub, "/all")
    strangers = subscribe_confirmed(
        topic, sub, "/strangers", FilterPolicy=json.dumps({"decision": ["unknown"], "score": [{"numeric": ["<", 0.5]}]})
    )
    body_scope = subscribe_confirmed(
        topic, sub, "/body", FilterPolicy=json.dumps({"camera": [{"prefix": "front"}]}), FilterPolicyScope="MessageBody"
    )
    a = S.get_subscription_attributes(SubscriptionArn=strangers)["Attributes"]
    assert json.loads(a["FilterPolicy"])["decision"] == ["unknown"] and a["FilterPolicyScope"] == "MessageAttributes", a
    expect_error("InvalidParameter", 400, S.set_subscription_attributes, SubscriptionArn=strangers,
                 AttributeName="FilterPolicy", AttributeValue='{"decision": "unknown"}')
    attr = lambda d, s: {"decision": {"DataType": "String", "StringValue": d}, "score": {"DataType": "Number", "StringValue": s}}
    r = S.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {"Id": "1", "Message": json.dumps({"camera": "front-door"}), "MessageAttributes": attr("unknown", "0.2")},
            {"Id": "2", "Message": json.dumps({"camera": "garden"}), "MessageAttributes": attr("known", "0.9")},
            {"Id": "3", "Message": json.dumps({"camera": "front-yard"}), "MessageAttributes": attr("unknown", "0.7")},
            {"Id": "4", "Message": ""},
        ],
    )
    assert sorted(s["Id"] for s in r["Successful"]) == ["1", "2", "3"], r
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in r["Failed"]] == [("4", "InvalidParameter", True)], r
    until("3 on /all", lambda: len(sub.of_type("Notification", "/all")) == 3)
    until("2 on /body", lambda: len(sub.of_type("Notification", "/body")) == 2)
    until("1 on /strangers", lambda: len(sub.of_type("Notification", "/strangers")) == 1)
    time.sleep(1)
    got = [json.loads(e["doc"]["Message"])["camera"] for e in sub.of_type("Notification", "/strangers")]
    assert got == ["front-door"], got
    assert sorted(json.loads(e["doc"]["Message"])["camera"] for e in sub.of_type("Notification", "/body")) == ["front-door", "front-yard"]
    expect_error("BatchEntryIdsNotDistinct", 400, S.publish_batch, TopicArn=topic,
                 PublishBatchRequestEntries=[{"Id": "a", "Message": "x"}, {"Id": "a", "Message": "y"}])
    expect_error("TooManyEntriesInBatchRequest", 400, S.publish_batch, TopicArn=topic,
                 PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "x"} for i in range(11)])
    expect_error("EmptyBatchRequest", 400, S.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[])
    S.unsubscribe(SubscriptionArn=body_scope)
    S.delete_topic(TopicArn=topic)


def test_a_failing_endpoint_is_retried_then_dead_lettered():
    sub = Subscriber(ENDPOINT)
    topic = S.create_topic(Name="flaky")["TopicArn"]
    policy = {"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 2}}
    sub_arn = subscribe_confirmed(topic, sub, "/down", DeliveryPolicy=json.dumps(policy))
    a = S.get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert json.loads(a["EffectiveDeliveryPolicy"])["healthyRetryPolicy"]["numRetries"] == 2, a
    sub.fail = True
    mid = S.publish(TopicArn=topic, Message="lost cause")["MessageId"]
    until("three attempts", lambda: len(sub.of_type("Notification", "/down")) == 3, timeout=20)
    attempts = sub.of_type("Notification", "/down")
    assert all(e["doc"]["MessageId"] == mid and e["verified"] for e in attempts), attempts

    def letters():
        status, body = raw_call("ListDeadLetters", {"TopicArn": topic})
        assert status == 200, body
        return mid in body and body

    body = until("the dead letter", letters)
    assert "<Attempts>3</Attempts>" in body and "HTTP 503" in body and sub_arn in body, body
    # A healthy endpoint gets what comes next, once.
    sub.fail = False
    S.publish(TopicArn=topic, Message="fine")
    until("the next delivery", lambda: [e for e in sub.of_type("Notification", "/down") if e["doc"]["Message"] == "fine"])
    time.sleep(1.5)
    assert len([e for e in sub.of_type("Notification", "/down") if e["doc"]["Message"] == "fine"]) == 1
    S.delete_topic(TopicArn=topic)


def test_pipeline_errors_in_the_query_protocol():
    expect_error("SignatureDoesNotMatch", 403, client("wrong-secret").list_topics)
    status, body = raw_call("NoSuchAction", {})
    assert status == 400 and "<Code>InvalidAction</Code>" in body and "<RequestId>" in body, (status, body)
    status, body = raw_call("CreatePlatformApplication", {"Name": "x", "Platform": "GCM"})
    assert status == 400 and "<Code>InvalidAction</Code>" in body, body
    topic = S.create_topic(Name="errs")["TopicArn"]
    expect_error("InvalidParameter", 400, S.subscribe, TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:1:q")
    expect_error("InvalidParameter", 400, S.subscribe, TopicArn=topic, Protocol="email", Endpoint="not an address")
    expect_error("InvalidParameter", 400, S.subscribe, TopicArn=topic, Protocol="email", Endpoint="a@example.com",
                 Attributes={"DeliveryPolicy": json.dumps({"healthyRetryPolicy": {"numRetries": 1}})})
    expect_error("InvalidParameter", 400, S.subscribe, TopicArn=topic, Protocol="http", Endpoint="https://example.com/")
    # A cloud's metadata service is not a subscriber.
    expect_error("InvalidParameter", 400, S.subscribe, TopicArn=topic, Protocol="http", Endpoint="http://169.254.169.254/latest/meta-data/")
    expect_error("InvalidParameter", 400, S.confirm_subscription, TopicArn=topic, Token="f" * 128)
    expect_error("InvalidParameter", 400, S.subscribe, TopicArn=topic, Protocol="http", Endpoint="http://127.0.0.1:9/",
                 Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:q"})})
    # A pending subscription shows as such, and a token is needed to confirm it.
    sub = Subscriber(ENDPOINT, confirm=False)
    r = S.subscribe(TopicArn=topic, Protocol="http", Endpoint=sub.url("/p"), ReturnSubscriptionArn=True)
    assert r["SubscriptionArn"].startswith(topic + ":"), r
    listed = S.list_subscriptions()["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed if s["Endpoint"] == sub.url("/p")] == ["PendingConfirmation"], listed
    conf = until("the confirmation", lambda: sub.of_type("SubscriptionConfirmation", "/p"))[0]["doc"]
    assert S.confirm_subscription(TopicArn=topic, Token=conf["Token"])["SubscriptionArn"] == r["SubscriptionArn"]
    # An unsigned call that is not a delivery link is refused.
    try:
        urllib.request.urlopen(ENDPOINT + "/?Action=ListTopics").read()
        raise AssertionError("an unsigned ListTopics was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"<Code>MissingAuthenticationToken</Code>" in e.read(), e.code
    S.delete_topic(TopicArn=topic)


class SmtpSink:
    """An SMTP server that keeps every mail (the relay `vigil serve --smtp-url` names)."""

    def __init__(self, port):
        self.mails = []
        self.lock = threading.Lock()
        me = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                def say(line):
                    self.wfile.write(line.encode() + b"\r\n")
                    self.wfile.flush()

                say("220 sink ESMTP")
                rcpt = []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").strip()
                    verb = cmd.split(" ")[0].upper()
                    if verb == "EHLO":
                        say("250-sink")
                        say("250 8BITMIME")
                    elif verb == "HELO" or verb in ("MAIL", "RSET", "NOOP"):
                        say("250 OK")
                    elif verb == "RCPT":
                        rcpt.append(cmd.split(":", 1)[1].strip().strip("<>"))
                        say("250 OK")
                    elif verb == "DATA":
                        say("354 go on")
                        data = b""
                        while not data.endswith(b"\r\n.\r\n"):
                            chunk = self.rfile.readline()
                            if not chunk:
                                return
                            data += chunk
                        msg = email.message_from_bytes(data[:-3], policy=email.policy.default)
                        with me.lock:
                            me.mails.append((list(rcpt), msg))
                        rcpt = []
                        say("250 queued")
                    elif verb == "QUIT":
                        say("221 bye")
                        return
                    else:
                        say("502 not here")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, address, subject=None):
        with self.lock:
            return [m for r, m in self.mails if address in r and (subject is None or m["Subject"] == subject)]


SMTP = None


def smtp():
    global SMTP
    if SMTP is None:
        SMTP = SmtpSink(int(os.environ["SMTP_PORT"]))
    return SMTP


def test_email_subscriptions_confirm_and_receive_mail():
    sink = smtp()
    topic = S.create_topic(Name="mail", Attributes={"DisplayName": "Front door"})["TopicArn"]
    for protocol, address in [("email", "home@example.org"), ("email-json", "robot@example.org")]:
        r = S.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=address)
        assert r["SubscriptionArn"] == "pending confirmation", r
        mail = until(f"the confirmation to {address}", lambda: sink.to(address, "AWS Notification - Subscription Confirmation"))[0]
        text = mail.get_content()
        assert "Front door" in mail["From"], mail["From"]
        url = [w for w in text.split() if w.startswith(ENDPOINT + "/?Action=ConfirmSubscription&")][0]
        urllib.request.urlopen(url).read()
    until("both confirmed", lambda: not any(
        s["SubscriptionArn"] == "PendingConfirmation" for s in S.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    ))
    mid = S.publish(TopicArn=topic, Subject="Unknown face at the door", Message="someone we do not know")["MessageId"]
    mail = until("the mail", lambda: sink.to("home@example.org", "Unknown face at the door"))[0]
    text = mail.get_content()
    assert text.startswith("someone we do not know"), text
    assert ENDPOINT + "/?Action=Unsubscribe&SubscriptionArn=" in text, text
    j = until("the JSON mail", lambda: sink.to("robot@example.org", "Unknown face at the door"))[0]
    doc = json.loads(j.get_content())
    assert doc["Type"] == "Notification" and doc["MessageId"] == mid and doc["Message"] == "someone we do not know", doc
    from sns_subscriber import verify
    assert verify(doc, ENDPOINT), doc
    S.delete_topic(TopicArn=topic)


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
    return subprocess.run(
        [cli, "--endpoint-url", ENDPOINT, "--output", "json", "sns", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


def test_the_aws_cli():
    def ok(*args):
        out = aws(*args)
        assert out.returncode == 0, f"aws sns {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}

    sub = Subscriber(ENDPOINT)
    topic = ok("create-topic", "--name", "cli")["TopicArn"]
    assert topic == arn("cli"), topic
    ok("subscribe", "--topic-arn", topic, "--protocol", "http", "--notification-endpoint", sub.url("/cli"))
    until("confirmed", lambda: any(
        s["SubscriptionArn"] != "PendingConfirmation" for s in ok("list-subscriptions-by-topic", "--topic-arn", topic)["Subscriptions"]
    ))
    mid = ok("publish", "--topic-arn", topic, "--message", "from the cli", "--subject", "cli")["MessageId"]
    n = until("the delivery", lambda: sub.of_type("Notification", "/cli"))[0]
    assert n["doc"]["MessageId"] == mid and n["verified"], n
    assert topic in [t["TopicArn"] for t in ok("list-topics")["Topics"]]
    ok("delete-topic", "--topic-arn", topic)


# ---- the restart test's halves (not run as test_*) ----


def restart_before(subscriber_url):
    topic = S.create_topic(Name="restart")["TopicArn"]
    policy = {"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 100}}
    S.subscribe(TopicArn=topic, Protocol="http", Endpoint=subscriber_url, Attributes={"DeliveryPolicy": json.dumps(policy)})
    until("confirmed", lambda: any(
        s["SubscriptionArn"] != "PendingConfirmation" for s in S.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    ))
    mid = S.publish(TopicArn=topic, Message="across the restart")["MessageId"]
    print(mid)


def restart_after(log_file, message_id):
    def delivered():
        with open(log_file) as f:
            entries = [json.loads(l) for l in f if l.strip()]
        return [e for e in entries if e.get("doc", {}).get("MessageId") == message_id and e["answered"] == 200]

    until("the delivery after the restart", delivered, timeout=30)
    time.sleep(3)
    got = delivered()
    assert len(got) == 1, f"delivered {len(got)} times"
    assert got[0]["verified"], got[0]
    with open(log_file) as f:
        failed = [json.loads(l) for l in f if '"answered": 503' in l]
    assert failed, "no attempt failed before the restart"


def main():
    if ONLY and ONLY[0] == "restart_before":
        restart_before(ONLY[1])
        return
    if ONLY and ONLY[0] == "restart_after":
        restart_after(ONLY[1], ONLY[2])
        print("ok   restart_after")
        return
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
    print(f"{len(tests) - failed} passed, {failed} failed (boto3 {boto3.__version__}, botocore {botocore.__version__})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
