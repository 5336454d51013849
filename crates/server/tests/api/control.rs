//! The control plane over the wire: shapes, validation and errors as the service models
//! and KVS define them.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn create_describe_list_delete() {
    let s = TestServer::start().await;
    let arn = s.create_stream("cam-1", 24).await;
    assert!(
        arn.starts_with("arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam-1/"),
        "{arn}"
    );
    let r = s
        .post("/describeStream", &json!({"StreamName": "cam-1"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-amzn-requestid").is_some());
    let info = &r.json()["StreamInfo"];
    assert_eq!(info["StreamName"], "cam-1");
    assert_eq!(info["StreamARN"], arn.as_str());
    assert_eq!(info["Status"], "ACTIVE");
    assert_eq!(info["DataRetentionInHours"], 24);
    assert_eq!(
        info["KmsKeyId"],
        "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo"
    );
    assert!(
        info.get("DeviceName").is_none(),
        "unset fields are left out"
    );
    let version = info["Version"].as_str().unwrap().to_owned();
    assert!(version.chars().all(|c| c.is_ascii_alphanumeric()) && !version.is_empty());
    // CreationTime is epoch seconds; the ARN's suffix is the same instant in ms.
    let created = info["CreationTime"].as_f64().unwrap();
    let suffix: f64 = arn.rsplit('/').next().unwrap().parse().unwrap();
    assert!(
        (created * 1000.0 - suffix).abs() < 0.5,
        "{created} vs {suffix}"
    );

    // By ARN too; both given must agree.
    let r = s.post("/describeStream", &json!({"StreamARN": arn})).await;
    assert_eq!(r.status, 200);
    let r = s
        .post(
            "/describeStream",
            &json!({"StreamARN": arn, "StreamName": "cam-2"}),
        )
        .await;
    r.assert_error(400, "InvalidArgumentException");

    // Name taken.
    let r = s
        .post("/createStream", &json!({"StreamName": "cam-1"}))
        .await;
    r.assert_error(400, "ResourceInUseException");

    // DeleteStream takes the ARN only, and checks the version when given.
    let r = s
        .post("/deleteStream", &json!({"StreamName": "cam-1"}))
        .await;
    r.assert_error(400, "InvalidArgumentException");
    let r = s
        .post(
            "/deleteStream",
            &json!({"StreamARN": arn, "CurrentVersion": "stale"}),
        )
        .await;
    r.assert_error(400, "VersionMismatchException");
    let r = s
        .post(
            "/deleteStream",
            &json!({"StreamARN": arn, "CurrentVersion": version}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post("/describeStream", &json!({"StreamName": "cam-1"}))
        .await;
    r.assert_error(404, "ResourceNotFoundException");
    assert_eq!(
        r.json()["Message"],
        "The requested stream is not found or not active."
    );
    // Re-created under the same name: the old ARN names nothing.
    s.create_stream("cam-1", 0).await;
    let r = s.post("/describeStream", &json!({"StreamARN": arn})).await;
    r.assert_error(404, "ResourceNotFoundException");
}

#[tokio::test]
async fn c_producer_create_stream_body_is_accepted() {
    // The C producer's template: empty DeviceName/MediaType are "unset".
    let s = TestServer::start().await;
    let r = s
        .post(
            "/createStream",
            &json!({"DeviceName": "", "StreamName": "csdk", "MediaType": "video/h264",
                    "DataRetentionInHours": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post("/describeStream", &json!({"StreamName": "csdk"}))
        .await;
    let info = &r.json()["StreamInfo"];
    assert!(info.get("DeviceName").is_none());
    assert_eq!(info["MediaType"], "video/h264");
}

#[tokio::test]
async fn validation_errors() {
    let s = TestServer::start().await;
    for body in [
        json!({}),
        json!({"StreamName": ""}),
        json!({"StreamName": "has space"}),
        json!({"StreamName": "x".repeat(257)}),
        json!({"StreamName": "a", "DataRetentionInHours": -1}),
        json!({"StreamName": "a", "DataRetentionInHours": 87_601}),
        json!({"StreamName": "a", "MediaType": "h264"}),
        json!({"StreamName": "a", "DeviceName": "d d"}),
        json!({"StreamName": "a", "Tags": {"bad*key": "v"}}),
        json!({"StreamName": "a", "StreamStorageConfiguration": {"DefaultStorageTier": "COLD"}}),
    ] {
        let r = s.post("/createStream", &body).await;
        r.assert_error(400, "InvalidArgumentException");
    }
    // Not JSON, or the wrong types.
    let r = s
        .raw(b"POST /createStream HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{nope")
        .await;
    r.assert_error(400, "SerializationException");
    let r = s.post("/createStream", &json!({"StreamName": 5})).await;
    r.assert_error(400, "SerializationException");
    // Neither name nor ARN.
    let r = s.post("/describeStream", &json!({})).await;
    r.assert_error(400, "InvalidArgumentException");
    let r = s
        .post(
            "/describeStream",
            &json!({"StreamARN": "arn:aws:s3:::bucket"}),
        )
        .await;
    r.assert_error(400, "InvalidArgumentException");
    // Unknown paths and methods.
    let r = s.post("/nope", &json!({})).await;
    r.assert_error(404, "UnknownOperationException");
    let r = s
        .raw(b"GET /describeStream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    r.assert_error(404, "UnknownOperationException");
    // Out-of-scope operations say so.
    let r = s.post("/createSignalingChannel", &json!({})).await;
    r.assert_error(501, "NotImplemented");
}

#[tokio::test]
async fn list_streams_pages_and_filters() {
    let s = TestServer::start().await;
    for i in 0..7 {
        s.create_stream(&format!("front-{i}"), 1).await;
    }
    s.create_stream("back-0", 1).await;
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"MaxResults": 3,
            "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "front-"}});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let r = s.post("/listStreams", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        pages += 1;
        for i in v["StreamInfoList"].as_array().unwrap() {
            names.push(i["StreamName"].as_str().unwrap().to_owned());
        }
        match v.get("NextToken").and_then(|t| t.as_str()) {
            Some(t) => {
                assert!(
                    t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
                );
                token = Some(t.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        names,
        (0..7).map(|i| format!("front-{i}")).collect::<Vec<_>>()
    );
    let r = s.post("/listStreams", &json!({})).await;
    assert_eq!(r.json()["StreamInfoList"].as_array().unwrap().len(), 8);
    assert!(r.json().get("NextToken").is_none());
    for bad in [
        json!({"MaxResults": 0}),
        json!({"MaxResults": 10_001}),
        json!({"NextToken": "%%%"}),
        // What tokens used to be (the base64 of a name): made up, so refused.
        json!({"NextToken": "ZnJvbnQtMw=="}),
        json!({"NextToken": "A".repeat(1100)}),
        json!({"StreamNameCondition": {"ComparisonOperator": "ENDS_WITH", "ComparisonValue": "x"}}),
    ] {
        s.post("/listStreams", &bad)
            .await
            .assert_error(400, "InvalidArgumentException");
    }
}

#[tokio::test]
async fn updates_change_the_version() {
    let s = TestServer::start().await;
    s.create_stream("cam", 2).await;
    let version = |r: &crate::common::Response| {
        r.json()["StreamInfo"]["Version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let v1 = version(
        &s.post("/describeStream", &json!({"StreamName": "cam"}))
            .await,
    );
    let r = s
        .post(
            "/updateStream",
            &json!({"StreamName": "cam", "CurrentVersion": v1,
                                        "DeviceName": "porch", "MediaType": "video/h265"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let d = s
        .post("/describeStream", &json!({"StreamName": "cam"}))
        .await;
    assert_eq!(d.json()["StreamInfo"]["DeviceName"], "porch");
    assert_eq!(d.json()["StreamInfo"]["MediaType"], "video/h265");
    let v2 = version(&d);
    assert_ne!(v1, v2);
    // The old version is stale now.
    s.post(
        "/updateStream",
        &json!({"StreamName": "cam", "CurrentVersion": v1}),
    )
    .await
    .assert_error(400, "VersionMismatchException");
    s.post("/updateStream", &json!({"StreamName": "cam"}))
        .await
        .assert_error(400, "InvalidArgumentException");

    // Retention takes deltas and stays in range.
    let inc = json!({"StreamName": "cam", "CurrentVersion": v2,
                     "Operation": "INCREASE_DATA_RETENTION", "DataRetentionChangeInHours": 22});
    assert_eq!(s.post("/updateDataRetention", &inc).await.status, 200);
    let d = s
        .post("/describeStream", &json!({"StreamName": "cam"}))
        .await;
    assert_eq!(d.json()["StreamInfo"]["DataRetentionInHours"], 24);
    let v3 = version(&d);
    for (op, hours) in [
        ("DECREASE_DATA_RETENTION", 25),
        ("INCREASE_DATA_RETENTION", 87_577),
    ] {
        s.post(
            "/updateDataRetention",
            &json!({"StreamName": "cam", "CurrentVersion": v3,
                "Operation": op, "DataRetentionChangeInHours": hours}),
        )
        .await
        .assert_error(400, "InvalidArgumentException");
    }
    for bad in [
        json!({"StreamName": "cam", "CurrentVersion": v3, "Operation": "SET",
                       "DataRetentionChangeInHours": 1}),
        json!({"StreamName": "cam", "CurrentVersion": v3,
                       "Operation": "INCREASE_DATA_RETENTION", "DataRetentionChangeInHours": 0}),
    ] {
        s.post("/updateDataRetention", &bad)
            .await
            .assert_error(400, "InvalidArgumentException");
    }
    s.post(
        "/updateDataRetention",
        &json!({"StreamName": "cam", "CurrentVersion": v3,
            "Operation": "DECREASE_DATA_RETENTION", "DataRetentionChangeInHours": 24}),
    )
    .await;
    let d = s
        .post("/describeStream", &json!({"StreamName": "cam"}))
        .await;
    assert_eq!(d.json()["StreamInfo"]["DataRetentionInHours"], 0);
}

#[tokio::test]
async fn tags_by_name_and_by_resource() {
    let s = TestServer::start().await;
    let arn = s.create_stream("cam", 1).await;
    let v0 = s
        .post("/describeStream", &json!({"StreamName": "cam"}))
        .await
        .json()["StreamInfo"]["Version"]
        .clone();
    // The C producer's form: StreamARN and a map.
    let r = s
        .post(
            "/tagStream",
            &json!({"StreamARN": arn, "Tags": {"room": "kitchen", "floor": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post("/listTagsForStream", &json!({"StreamName": "cam"}))
        .await;
    assert_eq!(r.json()["Tags"], json!({"room": "kitchen", "floor": "1"}));
    // Tagging leaves the version alone.
    let v1 = s
        .post("/describeStream", &json!({"StreamName": "cam"}))
        .await
        .json()["StreamInfo"]["Version"]
        .clone();
    assert_eq!(v0, v1);
    // The generic forms take a list of {Key, Value}.
    let r = s
        .post(
            "/TagResource",
            &json!({"ResourceARN": arn, "Tags": [{"Key": "owner", "Value": "ann"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post(
            "/UntagResource",
            &json!({"ResourceARN": arn, "TagKeyList": ["floor"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .post("/ListTagsForResource", &json!({"ResourceARN": arn}))
        .await;
    assert_eq!(r.json()["Tags"], json!({"room": "kitchen", "owner": "ann"}));
    let r = s
        .post(
            "/untagStream",
            &json!({"StreamName": "cam", "TagKeyList": ["room", "absent"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .post("/listTagsForStream", &json!({"StreamARN": arn}))
        .await;
    assert_eq!(r.json()["Tags"], json!({"owner": "ann"}));
    // Limits and formats.
    let many: serde_json::Map<String, serde_json::Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    s.post("/tagStream", &json!({"StreamName": "cam", "Tags": many}))
        .await
        .assert_error(400, "TagsPerResourceExceededLimitException");
    s.post(
        "/tagStream",
        &json!({"StreamARN": "not-an-arn", "Tags": {"a": "b"}}),
    )
    .await
    .assert_error(400, "InvalidResourceFormatException");
    s.post(
        "/TagResource",
        &json!({"ResourceARN": arn, "Tags": [{"Key": "k"}]}),
    )
    .await
    .assert_error(400, "InvalidArgumentException");
    s.post(
        "/tagStream",
        &json!({"StreamName": "nope", "Tags": {"a": "b"}}),
    )
    .await
    .assert_error(404, "ResourceNotFoundException");
}

#[tokio::test]
async fn data_endpoint_and_configurations() {
    let s = TestServer::start().await;
    s.create_stream("cam", 1).await;
    s.create_stream("live", 0).await;
    let r = s
        .post(
            "/getDataEndpoint",
            &json!({"StreamName": "cam", "APIName": "PUT_MEDIA"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["DataEndpoint"], format!("http://{}", s.addr));
    s.post(
        "/getDataEndpoint",
        &json!({"StreamName": "cam", "APIName": "PUT"}),
    )
    .await
    .assert_error(400, "InvalidArgumentException");
    s.post(
        "/getDataEndpoint",
        &json!({"StreamName": "none", "APIName": "GET_MEDIA"}),
    )
    .await
    .assert_error(404, "ResourceNotFoundException");

    let img = json!({"Status": "ENABLED", "ImageSelectorType": "SERVER_TIMESTAMP",
        "DestinationConfig": {"Uri": "s3://bucket/prefix", "DestinationRegion": "us-east-1"},
        "SamplingInterval": 3000, "Format": "JPEG", "FormatConfig": {"JPEGQuality": "80"},
        "WidthPixels": 320});
    let r = s
        .post(
            "/updateImageGenerationConfiguration",
            &json!({"StreamName": "cam", "ImageGenerationConfiguration": img}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post(
            "/describeImageGenerationConfiguration",
            &json!({"StreamName": "cam"}),
        )
        .await;
    assert_eq!(r.json()["ImageGenerationConfiguration"], img);
    // Retention 0 cannot generate images.
    s.post(
        "/updateImageGenerationConfiguration",
        &json!({"StreamName": "live", "ImageGenerationConfiguration": img}),
    )
    .await
    .assert_error(400, "NoDataRetentionException");
    let mut bad = img.clone();
    bad["SamplingInterval"] = json!(100);
    s.post(
        "/updateImageGenerationConfiguration",
        &json!({"StreamName": "cam", "ImageGenerationConfiguration": bad}),
    )
    .await
    .assert_error(400, "InvalidArgumentException");
    let mut bad = img.clone();
    bad["DestinationConfig"]["DestinationRegion"] = json!("eu-west-1");
    s.post(
        "/updateImageGenerationConfiguration",
        &json!({"StreamName": "cam", "ImageGenerationConfiguration": bad}),
    )
    .await
    .assert_error(400, "InvalidArgumentException");
    // Null deletes it.
    s.post(
        "/updateImageGenerationConfiguration",
        &json!({"StreamName": "cam", "ImageGenerationConfiguration": null}),
    )
    .await;
    let r = s
        .post(
            "/describeImageGenerationConfiguration",
            &json!({"StreamName": "cam"}),
        )
        .await;
    assert!(r.json().get("ImageGenerationConfiguration").is_none());

    let note = json!({"Status": "ENABLED",
        "DestinationConfig": {"Uri": "arn:aws:sns:us-east-1:000000000000:faces"}});
    let r = s
        .post(
            "/updateNotificationConfiguration",
            &json!({"StreamName": "cam", "NotificationConfiguration": note}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post(
            "/describeNotificationConfiguration",
            &json!({"StreamName": "cam"}),
        )
        .await;
    assert_eq!(r.json()["NotificationConfiguration"], note);
    s.post(
        "/updateNotificationConfiguration",
        &json!({"StreamName": "cam", "NotificationConfiguration": {"Status": "ON"}}),
    )
    .await
    .assert_error(400, "InvalidArgumentException");

    let r = s
        .post(
            "/describeStreamStorageConfiguration",
            &json!({"StreamName": "cam"}),
        )
        .await;
    assert_eq!(
        r.json()["StreamStorageConfiguration"]["DefaultStorageTier"],
        "HOT"
    );
}

#[tokio::test]
async fn public_url_is_the_data_endpoint() {
    let cfg = vigil_server::ServerConfig {
        api: vigil_api_common::ApiConfig {
            public_url: Some("https://vigil.example.com:8443/".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let s = TestServer::start_with(cfg, std::sync::Arc::new(vigil_server::Anonymous)).await;
    s.create_stream("cam", 1).await;
    let r = s
        .post(
            "/getDataEndpoint",
            &json!({"StreamName": "cam", "APIName": "GET_MEDIA"}),
        )
        .await;
    assert_eq!(r.json()["DataEndpoint"], "https://vigil.example.com:8443");
}

#[tokio::test]
async fn health_needs_no_credentials() {
    let s = TestServer::start().await;
    let r = s
        .raw(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

#[tokio::test]
async fn get_clip_validates_its_input() {
    let s = TestServer::start().await;
    s.create_stream("live-only", 0).await;
    s.create_stream("kept", 1).await;
    let selector = |start: f64, end: f64| {
        json!({"FragmentSelectorType": "SERVER_TIMESTAMP",
               "TimestampRange": {"StartTimestamp": start, "EndTimestamp": end}})
    };
    s.post(
        "/getClip",
        &json!({"StreamName": "live-only",
                               "ClipFragmentSelector": selector(1.0e9, 1.0e9 + 60.0)}),
    )
    .await
    .assert_error(400, "NoDataRetentionException");
    for (start, end) in [
        (1.0e9, 1.0e9),
        (1.0e9 + 10.0, 1.0e9),
        (1.0e9, 1.0e9 + 86_401.0),
    ] {
        s.post(
            "/getClip",
            &json!({"StreamName": "kept",
                                   "ClipFragmentSelector": selector(start, end)}),
        )
        .await
        .assert_error(400, "InvalidArgumentException");
    }
    s.post("/getClip", &json!({"StreamName": "kept"}))
        .await
        .assert_error(400, "InvalidArgumentException");
    s.post(
        "/getClip",
        &json!({"StreamName": "kept",
                               "ClipFragmentSelector": selector(1.0e9, 1.0e9 + 60.0)}),
    )
    .await
    .assert_error(404, "ResourceNotFoundException");
}
