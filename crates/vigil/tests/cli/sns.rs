//! SNS topics against the real binary: boto3 and the AWS CLI (`tests/sns_clients.py`, in the
//! venv of `scripts/aws-venv.sh`) with HTTP subscribers that confirm and verify signed
//! deliveries (`tests/sns_subscriber.py`), and a delivery being retried across a restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kinesis::aws_python;
use crate::{ROOT_KEY, ROOT_SECRET, Server};

fn script(server: &Server, args: &[&str]) -> String {
    script_with(server, args, &[])
}

fn script_with(server: &Server, args: &[&str], env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sns_clients.py");
    let out = Command::new(aws_python())
        .envs(env.iter().copied())
        .arg(&script)
        .args([
            format!("http://{}", server.addr),
            ROOT_KEY.to_owned(),
            ROOT_SECRET.to_owned(),
            "us-east-1".to_owned(),
            "000000000000".to_owned(),
        ])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
}

#[test]
fn boto3_and_the_aws_cli_drive_topics_and_signed_http_and_email_deliveries() {
    // The SMTP relay's port: the script runs the relay (a sink) there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let server =
        Server::start_with_root(&["--smtp-url", &smtp, "--smtp-from", "vigil@example.org"]);
    let stdout = script_with(&server, &[], &[("SMTP_PORT", &port.to_string())]);
    // Every test ran (a renamed or lost test would not show here).
    for t in [
        "test_topics_attributes_tags_paging_and_errors",
        "test_http_subscriptions_receive_signed_notifications",
        "test_filter_policies_and_batches",
        "test_a_failing_endpoint_is_retried_then_dead_lettered",
        "test_pipeline_errors_in_the_query_protocol",
        "test_email_subscriptions_confirm_and_receive_mail",
        "test_the_aws_cli",
    ] {
        assert!(
            stdout.contains(&format!("ok   {t}")),
            "{t} did not pass:\n{stdout}"
        );
    }
}

struct Subscriber(Child);

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_delivery_being_retried_when_the_server_stops_is_made_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let log = dir.path().join("log.jsonl");
    let fail = dir.path().join("fail");
    std::fs::write(&fail, b"").unwrap();
    let sub = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sns_subscriber.py");
    let _sub = Subscriber(
        Command::new(aws_python())
            .arg(&sub)
            .args([&port_file, &log, &fail])
            // The server's port changes at the restart: trust any local one.
            .arg("http://127.0.0.1:")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            break p;
        }
        assert!(Instant::now() < deadline, "the subscriber did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = format!("http://127.0.0.1:{}/hook", port.trim());
    let mut server = Server::start_with_root(&[]);
    let out = script(&server, &["restart_before", &url]);
    let message_id = out.lines().last().unwrap().trim().to_owned();
    assert_eq!(message_id.len(), 36, "{out}");
    // Wait for a failed attempt, then stop the server while the message waits for its retry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"answered\": 503")
    {
        assert!(
            Instant::now() < deadline,
            "no delivery attempt reached the subscriber"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.signal_and_wait("TERM").success());
    std::fs::remove_file(&fail).unwrap();
    let data = std::mem::replace(&mut server.data, tempfile::tempdir().unwrap());
    drop(server);
    let server = Server::start_in(
        data,
        &[],
        &[
            ("VIGIL_ACCESS_KEY_ID", ROOT_KEY),
            ("VIGIL_SECRET_ACCESS_KEY", ROOT_SECRET),
        ],
    );
    script(
        &server,
        &["restart_after", log.to_str().unwrap(), &message_id],
    );
}
