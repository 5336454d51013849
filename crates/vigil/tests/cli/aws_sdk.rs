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

        let other_region = control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "eu-west-1");
        let e = other_region.list_streams().send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidSignatureException", "{e:?}");
        assert!(e.message().unwrap_or("").contains("us-east-1"), "{e:?}");

        // And the right credentials work.
        root_client(&server).list_streams().send().await.unwrap();
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
