//! HTTPS: `--tls-self-signed` (a local CA in the data directory that clients trust), ALPN
//! offering HTTP/1.1 only, and the configuration file's precedence.

use std::sync::Arc;

use aws_sdk_kinesisvideo::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesisvideo::types::ApiName;

use crate::{ROOT_KEY, ROOT_SECRET, Server};

/// A control-plane client that trusts only `ca_pem`.
fn tls_client(endpoint: &str, ca_pem: &[u8]) -> aws_sdk_kinesisvideo::Client {
    use aws_smithy_http_client::tls;
    let ctx = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec()))
        .build()
        .unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(ctx)
        .build_https();
    let cfg = aws_sdk_kinesisvideo::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "t"))
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    aws_sdk_kinesisvideo::Client::from_conf(cfg)
}

#[test]
fn self_signed_tls_is_trusted_through_the_local_ca() {
    let server = Server::start_with_root(&["--tls-self-signed", "--tls-name", "nvr.home.arpa"]);
    let ca = std::fs::read(server.data_dir().join("tls/ca.pem")).unwrap();
    let ca_key = server.data_dir().join("tls/ca.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ca_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the CA key is private");
        for public in ["tls/ca.pem", "tls/server.pem"] {
            let mode = std::fs::metadata(server.data_dir().join(public))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{public} is for every user to read");
        }
        let mode = std::fs::metadata(server.data_dir().join("tls/server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the server key is private");
    }
    let endpoint = format!("https://localhost:{}", server.addr.port());
    let kv = tls_client(&endpoint, &ca);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            kv.create_stream().stream_name("cam").send().await.unwrap();
            let ep = kv
                .get_data_endpoint()
                .stream_name("cam")
                .api_name(ApiName::PutMedia)
                .send()
                .await
                .unwrap();
            assert_eq!(ep.data_endpoint(), Some(endpoint.as_str()));
            // A client that does not trust the CA is refused.
            let untrusting =
                crate::aws_sdk::control_client(&endpoint, ROOT_KEY, ROOT_SECRET, "us-east-1");
            assert!(untrusting.list_streams().send().await.is_err());
        });
    // ALPN: HTTP/1.1 only, even to a client that prefers h2.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    for name in ["localhost", "nvr.home.arpa", "127.0.0.1"] {
        let mut conn = rustls::ClientConnection::new(
            Arc::new(cfg.clone()),
            rustls::pki_types::ServerName::try_from(name).unwrap(),
        )
        .unwrap();
        let mut sock = std::net::TcpStream::connect(server.addr).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .unwrap_or_else(|e| panic!("handshake as {name}: {e}"));
        }
        assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]), "{name}");
    }
}

use rustls::pki_types::pem::PemObject;

#[test]
fn config_file_sets_what_flags_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    std::fs::write(
        &file,
        "region = \"eu-west-1\"\naccount_id = \"123456789012\"\npublic_url = \"https://nvr.example:9443\"\n",
    )
    .unwrap();
    let server = Server::start_with_root(&[
        "--config",
        file.to_str().unwrap(),
        "--region",
        "eu-central-1",
    ]);
    let kv = crate::aws_sdk::control_client(
        &format!("http://{}", server.addr),
        ROOT_KEY,
        ROOT_SECRET,
        "eu-central-1",
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let arn = kv
                .create_stream()
                .stream_name("cam")
                .send()
                .await
                .unwrap()
                .stream_arn
                .unwrap();
            // The flag won over the file's region; the file's account id applies.
            assert!(
                arn.starts_with("arn:aws:kinesisvideo:eu-central-1:123456789012:stream/cam/"),
                "{arn}"
            );
            let ep = kv
                .get_data_endpoint()
                .stream_name("cam")
                .api_name(ApiName::GetMedia)
                .send()
                .await
                .unwrap();
            assert_eq!(ep.data_endpoint(), Some("https://nvr.example:9443"));
        });

    std::fs::write(&file, "regoin = \"eu-west-1\"\n").unwrap();
    let out = crate::run(
        crate::vigil()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("regoin") && stderr.contains("vigil.toml"),
        "{stderr}"
    );
}
