//! The control plane driven by the official AWS SDK for Rust (`aws-sdk-kinesisvideo`) against
//! the real binary, signing with SigV4: every operation of the control plane, the errors the
//! SDK must recognise by name, and the authentication failures it must see.

use aws_sdk_kinesisvideo::Client;
use aws_sdk_kinesisvideo::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesisvideo::error::ProvideErrorMetadata;
use aws_sdk_kinesisvideo::types::{
    ApiName, ComparisonOperator, Format, ImageGenerationConfiguration,
    ImageGenerationDestinationConfig, ImageSelectorType, NotificationConfiguration,
    NotificationDestinationConfig, Status, StreamNameCondition, UpdateDataRetentionOperation,
};

use crate::{ROOT_KEY, ROOT_SECRET, Server};

/// An HTTP client for the SDKs (hyper with rustls on ring: no other TLS stack to build).
pub fn http_client() -> aws_sdk_kinesisvideo::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// A control-plane client for `endpoint` with the given credentials.
pub fn control_client(endpoint: &str, key: &str, secret: &str, region: &str) -> Client {
    let cfg = aws_sdk_kinesisvideo::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(key, secret, None, None, "vigil-tests"))
        .endpoint_url(endpoint)
        .http_client(http_client())
        .build();
    Client::from_conf(cfg)
}

fn root_client(server: &Server) -> Client {
    control_client(
        &format!("http://{}", server.addr),
        ROOT_KEY,
        ROOT_SECRET,
        "us-east-1",
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The AWS error code of an SDK error.
fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("(none)").to_owned()
}

#[test]
fn sdk_drives_the_control_plane() {
    let server = Server::start_with_root(&[]);
    let kv = root_client(&server);
    runtime().block_on(async {
        let arn = kv
            .create_stream()
            .stream_name("front-door")
            .media_type("video/h264")
            .data_retention_in_hours(24)
            .tags("room", "hall")
            .send()
            .await
            .unwrap()
            .stream_arn
            .unwrap();
        assert!(arn.starts_with("arn:aws:kinesisvideo:us-east-1:000000000000:stream/front-door/"));
        kv.create_stream()
            .stream_name("back-door")
            .send()
            .await
            .unwrap();

        let info = kv
            .describe_stream()
            .stream_name("front-door")
            .send()
            .await
            .unwrap()
            .stream_info
            .unwrap();
        assert_eq!(info.stream_arn(), Some(arn.as_str()));
        assert_eq!(info.status(), Some(&Status::Active));
        assert_eq!(info.data_retention_in_hours(), Some(24));
        assert_eq!(info.media_type(), Some("video/h264"));
        let created = info.creation_time().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((created.secs() - now).abs() < 60, "{created:?}");
        let version = info.version().unwrap().to_owned();

        // ListStreams through the SDK's paginator, one stream a page.
        let pages: Vec<_> = kv
            .list_streams()
            .max_results(1)
            .into_paginator()
            .send()
            .collect::<Vec<_>>()
            .await;
        let names: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.unwrap().stream_info_list.unwrap_or_default())
            .map(|i| i.stream_name.unwrap())
            .collect();
        assert_eq!(names, ["back-door", "front-door"]);
        let filtered = kv
            .list_streams()
            .stream_name_condition(
                StreamNameCondition::builder()
                    .comparison_operator(ComparisonOperator::BeginsWith)
                    .comparison_value("front")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(filtered.stream_info_list().len(), 1);

        // Updates and their version tokens.
        kv.update_stream()
            .stream_name("front-door")
            .current_version(&version)
            .device_name("porch-cam")
            .send()
            .await
            .unwrap();
        let e = kv
            .update_stream()
            .stream_name("front-door")
            .current_version(&version)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_version_mismatch_exception()),
            "{e:?}"
        );
        let version = kv
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap()
            .stream_info
            .unwrap()
            .version
            .unwrap();
        kv.update_data_retention()
            .stream_name("front-door")
            .current_version(&version)
            .operation(UpdateDataRetentionOperation::IncreaseDataRetention)
            .data_retention_change_in_hours(24)
            .send()
            .await
            .unwrap();
        let info = kv
            .describe_stream()
            .stream_name("front-door")
            .send()
            .await
            .unwrap()
            .stream_info
            .unwrap();
        assert_eq!(info.data_retention_in_hours(), Some(48));
        assert_eq!(info.device_name(), Some("porch-cam"));

        // Data endpoint: this server, as the client reached it.
        let ep = kv
            .get_data_endpoint()
            .stream_name("front-door")
            .api_name(ApiName::PutMedia)
            .send()
            .await
            .unwrap();
        assert_eq!(
            ep.data_endpoint(),
            Some(format!("http://{}", server.addr).as_str())
        );

        // Tags, both families.
        kv.tag_stream()
            .stream_arn(&arn)
            .tags("floor", "1")
            .send()
            .await
            .unwrap();
        kv.tag_resource()
            .resource_arn(&arn)
            .tags(
                aws_sdk_kinesisvideo::types::Tag::builder()
                    .key("owner")
                    .value("ann")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        kv.untag_stream()
            .stream_name("front-door")
            .tag_key_list("room")
            .send()
            .await
            .unwrap();
        let tags = kv
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap()
            .tags
            .unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags.get("owner").map(String::as_str), Some("ann"));
        kv.untag_resource()
            .resource_arn(&arn)
            .tag_key_list("owner")
            .send()
            .await
            .unwrap();
        let tags = kv
            .list_tags_for_stream()
            .stream_name("front-door")
            .send()
            .await
            .unwrap()
            .tags
            .unwrap();
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            [("floor".to_owned(), "1".to_owned())]
        );

        // Stored configurations.
        kv.update_image_generation_configuration()
            .stream_name("front-door")
            .image_generation_configuration(
                ImageGenerationConfiguration::builder()
                    .status(aws_sdk_kinesisvideo::types::ConfigurationStatus::Enabled)
                    .image_selector_type(ImageSelectorType::ServerTimestamp)
                    .destination_config(
                        ImageGenerationDestinationConfig::builder()
                            .uri("s3://bucket/frames")
                            .destination_region("us-east-1")
                            .build()
                            .unwrap(),
                    )
                    .sampling_interval(2000)
                    .format(Format::Jpeg)
                    .width_pixels(640)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let img = kv
            .describe_image_generation_configuration()
            .stream_name("front-door")
            .send()
            .await
            .unwrap()
            .image_generation_configuration
            .unwrap();
        assert_eq!(img.sampling_interval(), 2000);
        assert_eq!(img.width_pixels(), Some(640));
        kv.update_notification_configuration()
            .stream_name("front-door")
            .notification_configuration(
                NotificationConfiguration::builder()
                    .status(aws_sdk_kinesisvideo::types::ConfigurationStatus::Enabled)
                    .destination_config(
                        NotificationDestinationConfig::builder()
                            .uri("arn:aws:sns:us-east-1:000000000000:unknown-faces")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let note = kv
            .describe_notification_configuration()
            .stream_name("front-door")
            .send()
            .await
            .unwrap()
            .notification_configuration
            .unwrap();
        assert_eq!(
            note.destination_config().map(|d| d.uri()),
            Some("arn:aws:sns:us-east-1:000000000000:unknown-faces")
        );

        // Errors the SDK knows by name.
        let e = kv
            .describe_stream()
            .stream_name("nope")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()),
            "{e:?}"
        );
        let e = kv
            .create_stream()
            .stream_name("front-door")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()),
            "{e:?}"
        );
        let e = kv
            .create_stream()
            .stream_name("bad name")
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_invalid_argument_exception()),
            "{e:?}"
        );
        let e = kv
            .update_data_retention()
            .stream_name("back-door")
            .current_version("0")
            .operation(UpdateDataRetentionOperation::DecreaseDataRetention)
            .data_retention_change_in_hours(1)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_version_mismatch_exception()),
            "{e:?}"
        );

        kv.delete_stream().stream_arn(&arn).send().await.unwrap();
        let e = kv
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap_err();
        assert!(
            e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()),
            "{e:?}"
        );
    });
}

#[test]
fn sdk_sees_authentication_failures() {
    let server = Server::start_with_root(&[]);
    let endpoint = format!("http://{}", server.addr);
    runtime().block_on(async {
        let wrong_secret = control_client(&endpoint, ROOT_KEY, "not-the-secret", "us-east-1");
        let e = wrong_secret.list_streams().send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidSignatureException", "{e:?}");
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));

        let unknown = control_client(&endpoint, "AKIDUNKNOWN", ROOT_SECRET, "us-east-1");
        let e = unknown.list_streams().send().await.unwrap_err();
        assert_eq!(code(&e), "UnrecognizedClientException", "{e:?}");

        // A client left at another region gets in (the signature checked with the region it
        // signed for); ARNs carry the server's region.
        let other_region = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-west-2");
        let arn = other_region
            .create_stream()
            .stream_name("west")
            .data_retention_in_hours(1)
            .send()
            .await
            .unwrap()
            .stream_arn
            .unwrap();
        assert!(arn.starts_with("arn:aws:kinesisvideo:us-east-1:"), "{arn}");
        other_region
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap();

        // And the right credentials work.
        root_client(&server).list_streams().send().await.unwrap();
    });
    // With --strict-region, only the server's region.
    let strict = Server::start_with_root(&["--strict-region"]);
    let endpoint = format!("http://{}", strict.addr);
    runtime().block_on(async {
        let other_region = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "eu-west-1");
        let e = other_region.list_streams().send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidSignatureException", "{e:?}");
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));
        assert!(e.message().unwrap_or("").contains("us-east-1"), "{e:?}");
        control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1")
            .list_streams()
            .send()
            .await
            .unwrap();
    });
    // No signature at all.
    let r = crate::http_get(server.addr, "/health");
    assert_eq!(r.status, 200, "health needs no credentials");
}

#[test]
fn scoped_keys_are_limited_and_revocable() {
    let server = Server::start_with_root(&[]);
    let endpoint = format!("http://{}", server.addr);
    let out = crate::run(
        crate::vigil()
            .args(["keys", "--data-dir"])
            .arg(server.data_dir())
            .args([
                "create",
                "--name",
                "porch camera",
                "--allow",
                "DescribeStream,CreateStream,GetDataEndpoint,PutMedia",
                "--streams",
                "cam-*",
                "--json",
            ]),
    );
    assert!(out.status.success(), "{out:?}");
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (
        key["access_key_id"].as_str().unwrap().to_owned(),
        key["secret_access_key"].as_str().unwrap().to_owned(),
    );
    let cam = control_client(&endpoint, &id, &secret, "us-east-1");
    runtime().block_on(async {
        cam.create_stream()
            .stream_name("cam-1")
            .send()
            .await
            .unwrap();
        cam.describe_stream()
            .stream_name("cam-1")
            .send()
            .await
            .unwrap();
        // Another stream, another operation: refused.
        let e = cam
            .create_stream()
            .stream_name("garage")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "NotAuthorizedException", "{e:?}");
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(401));
        let e = cam.list_streams().send().await.unwrap_err();
        assert_eq!(code(&e), "NotAuthorizedException", "{e:?}");
        // Out of scope, existing or not, is the same answer: no probing for names.
        root_client(&server)
            .create_stream()
            .stream_name("garage")
            .send()
            .await
            .unwrap();
        for name in ["garage", "no-such-stream"] {
            let e = cam
                .describe_stream()
                .stream_name(name)
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&e), "NotAuthorizedException", "{name}: {e:?}");
        }
    });
    // A key that may list sees only its streams, page by page.
    let out = crate::run(
        crate::vigil()
            .args(["keys", "--data-dir"])
            .arg(server.data_dir())
            .args([
                "create",
                "--name",
                "viewer",
                "--allow",
                "ListStreams,DescribeStream",
            ])
            .args(["--streams", "cam-*", "--json"]),
    );
    assert!(out.status.success(), "{out:?}");
    let viewer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let viewer = control_client(
        &endpoint,
        viewer["access_key_id"].as_str().unwrap(),
        viewer["secret_access_key"].as_str().unwrap(),
        "us-east-1",
    );
    runtime().block_on(async {
        let root = root_client(&server);
        for name in ["cam-2", "cam-3", "attic", "zoo"] {
            root.create_stream().stream_name(name).send().await.unwrap();
        }
        let pages: Vec<_> = viewer
            .list_streams()
            .max_results(1)
            .into_paginator()
            .send()
            .collect::<Vec<_>>()
            .await;
        let names: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.unwrap().stream_info_list.unwrap_or_default())
            .map(|i| i.stream_name.unwrap())
            .collect();
        assert_eq!(names, ["cam-1", "cam-2", "cam-3"]);
    });
    let list = crate::run(
        crate::vigil()
            .args(["keys", "--data-dir"])
            .arg(server.data_dir())
            .args(["list", "--json"]),
    );
    assert!(list.status.success(), "{list:?}");
    let keys: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(keys[0]["access_key_id"], id.as_str());
    assert!(
        keys[0].get("secret_access_key").is_none(),
        "secrets are never listed"
    );

    let out = crate::run(
        crate::vigil()
            .args(["keys", "--data-dir"])
            .arg(server.data_dir())
            .args(["revoke", &id]),
    );
    assert!(out.status.success(), "{out:?}");
    // At once, on the running server.
    runtime().block_on(async {
        let e = cam
            .describe_stream()
            .stream_name("cam-1")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "UnrecognizedClientException", "{e:?}");
    });
}

#[test]
fn unsigned_bodies_are_not_read_and_json_bodies_must_be_signed() {
    use std::io::{Read, Write};
    let server = Server::start_with_root(&[]);
    // No credentials, a body announced but never sent: refused at once, not waited for.
    let mut sock = std::net::TcpStream::connect(server.addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        sock,
        "POST /describeStream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.read(&mut buf).expect("an answer before the body");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("missingauthenticationtokenexception"),
        "{head}"
    );

    // UNSIGNED-PAYLOAD leaves a JSON body unsigned: refused.
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity =
        aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("kinesisvideo")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let host = server.addr.to_string();
    let body = r#"{"StreamName":"x"}"#;
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{host}/describeStream"),
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = String::from("POST /describeStream HTTP/1.1\r\n");
    for (k, v) in headers.iter().copied().chain(instructions.headers()) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let mut sock = std::net::TcpStream::connect(server.addr).unwrap();
    sock.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("UNSIGNED-PAYLOAD"), "{resp}");
}

#[test]
fn expired_and_future_signatures_are_refused() {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use std::io::{Read, Write};
    use std::time::{Duration, SystemTime};
    let server = Server::start_with_root(&[]);
    let host = server.addr.to_string();
    let body = "{}";
    let send = |at: SystemTime| {
        let identity =
            aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("kinesisvideo")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ];
        let signable = SignableRequest::new(
            "POST",
            format!("http://{host}/listStreams"),
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = String::from("POST /listStreams HTTP/1.1\r\n");
        for (k, v) in headers.iter().copied().chain(instructions.headers()) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        let mut sock = std::net::TcpStream::connect(server.addr).unwrap();
        sock.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        sock.read_to_string(&mut resp).unwrap();
        resp
    };
    let now = SystemTime::now();
    assert!(send(now).starts_with("HTTP/1.1 200"));
    for at in [
        now - Duration::from_secs(6 * 60),
        now + Duration::from_secs(6 * 60),
    ] {
        let resp = send(at);
        assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
        assert!(
            resp.to_ascii_lowercase()
                .contains("x-amzn-errortype: invalidsignatureexception"),
            "{resp}"
        );
        assert!(resp.contains("Signature"), "{resp}");
    }
}
