//! The client commands (`vigil stream`, `put`, `get`) against a real server, as a user runs
//! them: credentials from `AWS_*` variables or a profile, the endpoint from `--endpoint-url`,
//! media that ffmpeg made (Matroska with H.264 + AAC and B-frames, MP4, an H.264 elementary
//! stream), everything read back through `vigil get` and checked with ffprobe and ffmpeg.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ROOT_KEY, ROOT_SECRET, Server, vigil};

/// `vigil` as a client of `endpoint` (`AWS_ENDPOINT_URL`), with the root credentials in
/// `AWS_*` and a home without ~/.aws.
pub(crate) fn client(home: &Path, endpoint: SocketAddr) -> Command {
    let mut cmd = vigil();
    for var in [
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KINESIS_VIDEO",
        "AWS_SESSION_TOKEN",
        "AWS_CA_BUNDLE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_ENDPOINT_URL", format!("http://{endpoint}"));
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

pub(crate) fn ok(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

pub(crate) fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}); run scripts/install-test-deps.sh"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test media: `av.mkv` (6 s, 320x240 H.264 with B-frames, a key frame a second, and
/// 48 kHz AAC), the same remuxed as `av.mp4`, and `video.h264` (an Annex B stream without
/// B-frames).
fn media(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mkv = dir.join("av.mkv");
    let mp4 = dir.join("av.mp4");
    let h264 = dir.join("video.h264");
    let mkv_s = mkv.to_str().unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-bf",
        "2",
        "-crf",
        "32",
        "-threads",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        mkv_s,
    ]);
    ffmpeg(&["-i", mkv_s, "-c", "copy", mp4.to_str().unwrap()]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-bf",
        "0",
        "-crf",
        "32",
        "-threads",
        "1",
        "-bsf:v",
        "h264_mp4toannexb",
        "-f",
        "h264",
        h264.to_str().unwrap(),
    ]);
    (mkv, mp4, h264)
}

/// A packet as ffprobe sees it.
#[derive(Debug, Clone, PartialEq)]
struct Packet {
    stream: u32,
    pts_ms: i64,
    key: bool,
}

/// Every packet of a file, per stream in file order. An elementary stream has no time stamps:
/// its packets are numbered at 25 fps, as the test media are made.
fn packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time,flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut f = l.split(',');
            let stream = f.next().unwrap().parse().unwrap();
            let pts_ms = match f.next().unwrap() {
                "N/A" => i as i64 * 40,
                pts => (pts.parse::<f64>().unwrap() * 1000.0).round() as i64,
            };
            let flags = f.next().unwrap_or("");
            Packet {
                stream,
                pts_ms,
                key: flags.contains('K'),
            }
        })
        .collect()
}

/// Presentation times of one stream relative to the stream's first key frame, sorted.
fn relative_times(p: &[Packet], stream: u32, origin_ms: i64) -> Vec<i64> {
    let mut v: Vec<i64> = p
        .iter()
        .filter(|x| x.stream == stream)
        .map(|x| x.pts_ms - origin_ms)
        .collect();
    v.sort_unstable();
    v
}

/// ffmpeg decodes the file with no error.
pub(crate) fn decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks that `got` holds exactly the frames of `input` that a KVS upload keeps (video from
/// the first key frame, audio from that time on), at the same times relative to it.
fn same_media(input: &Path, got: &Path) {
    let a = packets(input);
    let b = packets(got);
    let first_key = |p: &[Packet]| {
        p.iter()
            .filter(|x| x.stream == 0 && x.key)
            .map(|x| x.pts_ms)
            .min()
            .unwrap()
    };
    let (ka, kb) = (first_key(&a), first_key(&b));
    let streams = a.iter().map(|p| p.stream).max().unwrap() + 1;
    assert_eq!(
        b.iter().map(|p| p.stream).max().unwrap() + 1,
        streams,
        "stream count"
    );
    for s in 0..streams {
        let want: Vec<i64> = relative_times(&a, s, ka)
            .into_iter()
            .filter(|&t| t >= 0)
            .collect();
        let have = relative_times(&b, s, kb);
        // Times are rounded to whole ms on the way (Matroska at 1 ms).
        assert_eq!(have.len(), want.len(), "stream {s}: frame count");
        for (h, w) in have.iter().zip(&want) {
            assert!((h - w).abs() <= 1, "stream {s}: {h} ms vs {w} ms");
        }
    }
    decodes(got);
}

#[test]
fn put_then_get_every_format() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (mkv, mp4, h264) = media(dir.path());
    for (stream, input, extra) in [
        ("cam-mkv", &mkv, &[][..]),
        ("cam-mp4", &mp4, &[][..]),
        ("cam-h264", &h264, &["--frame-rate", "25"][..]),
    ] {
        // The documented contract: `vigil put STREAM FILE --endpoint-url URL`.
        let put = ok(client(dir.path(), server.addr)
            .env_remove("AWS_ENDPOINT_URL")
            .args(["put", stream])
            .arg(input)
            .args([
                "--endpoint-url",
                &format!("http://{}", server.addr),
                "--create",
            ])
            .args(extra));
        let stderr = String::from_utf8_lossy(&put.stderr);
        assert!(
            stderr.contains("6 fragment(s) persisted"),
            "{stream}: {stderr}"
        );
        let get = ok(client(dir.path(), server.addr)
            .env_remove("AWS_ENDPOINT_URL")
            .args(["get", stream, "--start", "earliest", "--no-follow"])
            .args(["--endpoint-url", &format!("http://{}", server.addr)]));
        let out = dir.path().join(format!("{stream}.mkv"));
        std::fs::write(&out, &get.stdout).unwrap();
        same_media(input, &out);
        // A recorded file is placed so that it ends now.
        let last = packets(&out).iter().map(|p| p.pts_ms).max().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(
            (now - last).abs() < 30_000,
            "{stream}: ends {} ms before now",
            now - last
        );
    }

    // The same file from a pipe is live: it starts now.
    let mut child = client(dir.path(), server.addr)
        .args(["put", "cam-pipe", "-", "--create", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&mkv).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = ok(client(dir.path(), server.addr)
        .args([
            "get",
            "cam-pipe",
            "--start",
            "earliest",
            "--no-follow",
            "-o",
        ])
        .arg(dir.path().join("pipe.mkv")));
    assert!(String::from_utf8_lossy(&get.stderr).contains("6 fragment(s)"));
    let first = packets(&dir.path().join("pipe.mkv"))
        .iter()
        .map(|p| p.pts_ms)
        .min()
        .unwrap();
    assert!(
        (first - before).abs() < 10_000,
        "a pipe starts now: {first} vs {before}"
    );
    same_media(&mkv, &dir.path().join("pipe.mkv"));
}

#[test]
fn get_start_selectors_and_follow() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (mkv, _, _) = media(dir.path());
    ok(client(dir.path(), server.addr)
        .args([
            "put",
            "cam",
            "--create",
            "--start-time",
            "2026-01-01T00:00:00Z",
        ])
        .arg(&mkv));
    // Fragment numbers, through the CLI's own JSON-speaking sibling (the SDK is tested
    // elsewhere): list them with GetMedia's tags instead, by reading the whole stream.
    let all = ok(client(dir.path(), server.addr).args([
        "get",
        "cam",
        "--start",
        "earliest",
        "--no-follow",
    ]));
    let all_path = dir.path().join("all.mkv");
    std::fs::write(&all_path, &all.stdout).unwrap();
    let all_packets = packets(&all_path);
    let first_video = all_packets
        .iter()
        .filter(|p| p.stream == 0)
        .map(|p| p.pts_ms)
        .min()
        .unwrap();
    assert_eq!(
        first_video, 1_767_225_600_000,
        "--start-time places the first frame"
    );

    // From a time: 2 s in, 4 of the 6 fragments.
    let from_time = ok(client(dir.path(), server.addr).args([
        "get",
        "cam",
        "--start",
        "2026-01-01T00:00:02Z",
        "--no-follow",
    ]));
    let p = dir.path().join("from-time.mkv");
    std::fs::write(&p, &from_time.stdout).unwrap();
    let video = packets(&p).iter().filter(|x| x.stream == 0).count();
    assert_eq!(video, 100, "4 fragments of 25 frames");
    decodes(&p);

    // `now` without following writes nothing and exits.
    let now =
        ok(client(dir.path(), server.addr).args(["get", "cam", "--start", "now", "--no-follow"]));
    assert!(now.stdout.is_empty());

    // Following from the earliest fragment: everything, then it waits for more.
    let mut follow = client(dir.path(), server.addr)
        .args(["get", "cam", "--start", "earliest"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    thread::sleep(Duration::from_secs(3));
    assert!(
        follow.try_wait().unwrap().is_none(),
        "get without --no-follow keeps following"
    );
    follow.kill().unwrap();
    follow.wait().unwrap();
    let followed = reader.join().unwrap();
    let p = dir.path().join("followed.mkv");
    std::fs::write(&p, &followed).unwrap();
    let video = packets(&p).iter().filter(|x| x.stream == 0).count();
    assert_eq!(video, 150);

    // Errors: a stream that does not exist, a bad --start.
    let missing = output(client(dir.path(), server.addr).args([
        "get",
        "nope",
        "--start",
        "earliest",
        "--no-follow",
    ]));
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFoundException"));
    let bad = output(client(dir.path(), server.addr).args(["get", "cam", "--start", "yesterday"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

#[test]
fn stream_commands_and_credentials() {
    let server = Server::start_with_root(&[]);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = ok(client(h, server.addr).args([
        "stream",
        "create",
        "garage",
        "--retention-hours",
        "48",
        "--media-type",
        "video/h264",
        "--tag",
        "site=home",
        "--tag",
        "floor=0",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("arn:aws:kinesisvideo:us-east-1:"));
    ok(client(h, server.addr).args(["stream", "create", "porch"]));

    let list = json_of(&ok(
        client(h, server.addr).args(["stream", "list", "--json"])
    ));
    let names: Vec<&str> = list["StreamInfoList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["StreamName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["garage", "porch"]);
    let table = ok(client(h, server.addr).args(["stream", "list", "--prefix", "gar"]));
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("garage") && !table.contains("porch"),
        "{table}"
    );

    let d = json_of(&ok(
        client(h, server.addr).args(["stream", "describe", "garage", "--json"])
    ));
    assert_eq!(d["StreamInfo"]["DataRetentionInHours"], 48);
    assert_eq!(d["StreamInfo"]["MediaType"], "video/h264");

    ok(client(h, server.addr).args([
        "stream",
        "update",
        "garage",
        "--media-type",
        "video/h265",
        "--device-name",
        "cam-7",
    ]));
    ok(client(h, server.addr).args(["stream", "retention", "garage", "--hours", "12"]));
    let d = json_of(&ok(
        client(h, server.addr).args(["stream", "describe", "garage", "--json"])
    ));
    assert_eq!(d["StreamInfo"]["DataRetentionInHours"], 12);
    assert_eq!(d["StreamInfo"]["MediaType"], "video/h265");
    assert_eq!(d["StreamInfo"]["DeviceName"], "cam-7");

    ok(client(h, server.addr).args(["stream", "tag", "garage", "floor=1", "zone=east"]));
    ok(client(h, server.addr).args(["stream", "untag", "garage", "site"]));
    let tags = json_of(&ok(
        client(h, server.addr).args(["stream", "tags", "garage", "--json"])
    ));
    assert_eq!(
        tags["Tags"],
        serde_json::json!({"floor": "1", "zone": "east"})
    );

    ok(client(h, server.addr).args(["stream", "delete", "porch"]));
    let gone = output(client(h, server.addr).args(["stream", "describe", "porch"]));
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("ResourceNotFoundException"));

    // A profile in ~/.aws, chosen with --profile; the region from its config.
    std::fs::create_dir_all(h.join(".aws")).unwrap();
    std::fs::write(
        h.join(".aws/credentials"),
        format!("[nvr]\naws_access_key_id = {ROOT_KEY}\naws_secret_access_key = {ROOT_SECRET}\n\n[bad]\naws_access_key_id = {ROOT_KEY}\naws_secret_access_key = wrong\n"),
    )
    .unwrap();
    std::fs::write(h.join(".aws/config"), "[profile nvr]\nregion = us-east-1\n").unwrap();
    let mut cmd = client(h, server.addr);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    ok(cmd.args(["stream", "list", "--profile", "nvr"]));
    let bad = output(client(h, server.addr).args(["stream", "list", "--profile", "bad"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("SignatureDoesNotMatch")
            || String::from_utf8_lossy(&bad.stderr).contains("InvalidSignature"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // Any region is accepted (the server's own runs with --strict-region: see aws_sdk.rs).
    let other_region = ok(client(h, server.addr).args(["stream", "list", "--region", "eu-west-1"]));
    assert!(other_region.status.success());

    // No credentials at all: a clear message.
    let mut cmd = client(h, server.addr);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let none = output(cmd.args(["stream", "list", "--profile", "missing"]));
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no credentials"));

    // Shell completions.
    let bash = ok(vigil().args(["completions", "bash"]));
    assert!(String::from_utf8_lossy(&bash.stdout).contains("vigil"));
}

/// A TCP proxy that cuts the first PutMedia connection after `cut_after` bytes of request.
struct CuttingProxy {
    addr: SocketAddr,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    fn start(upstream: SocketAddr, cut_after: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let cuts2 = cuts.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut down) = conn else { break };
                let Ok(mut up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (cuts, armed) = (cuts2.clone(), armed.clone());
                thread::spawn(move || {
                    let mut first = [0u8; 16];
                    let n = down.read(&mut first).unwrap_or(0);
                    let put = first.starts_with(b"POST /putMedia");
                    let limit = if put && armed.swap(false, Ordering::SeqCst) {
                        Some(cut_after)
                    } else {
                        None
                    };
                    if up.write_all(&first[..n]).is_err() {
                        return;
                    }
                    let mut up_rd = up.try_clone().unwrap();
                    let mut down_wr = down.try_clone().unwrap();
                    let back = thread::spawn(move || {
                        let _ = std::io::copy(&mut up_rd, &mut down_wr);
                        let _ = down_wr.shutdown(std::net::Shutdown::Both);
                    });
                    let mut sent = n;
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match down.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if limit.is_some_and(|l| sent + n > l) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if up.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = up.shutdown(std::net::Shutdown::Both);
                    let _ = down.shutdown(std::net::Shutdown::Both);
                    let _ = back.join();
                });
            }
        });
        CuttingProxy { addr, cuts }
    }
}

#[test]
fn put_resumes_after_a_broken_connection_with_every_frame_once() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (mkv, _, _) = media(dir.path());
    let size = std::fs::metadata(&mkv).unwrap().len() as usize;
    let proxy = CuttingProxy::start(server.addr, size / 2);
    let put = ok(client(dir.path(), proxy.addr)
        .args(["put", "cam", "--create"])
        .arg(&mkv));
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the proxy cut the upload once"
    );
    let stderr = String::from_utf8_lossy(&put.stderr);
    assert!(stderr.contains("connection was lost"), "{stderr}");
    assert!(stderr.contains("2 connections"), "{stderr}");
    assert!(stderr.contains("6 fragment(s) persisted"), "{stderr}");
    let get = ok(client(dir.path(), server.addr)
        .args(["get", "cam", "--start", "earliest", "--no-follow", "-o"])
        .arg(dir.path().join("back.mkv")));
    assert!(String::from_utf8_lossy(&get.stderr).contains("6 fragment(s)"));
    // Every frame exactly once, at its time.
    same_media(&mkv, &dir.path().join("back.mkv"));
}

#[test]
fn put_reports_errors_with_their_meaning() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (mkv, _, _) = media(dir.path());

    // No such stream, without --create.
    let out = output(
        client(dir.path(), server.addr)
            .args(["put", "nope"])
            .arg(&mkv),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"));

    // Not media.
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let out = output(
        client(dir.path(), server.addr)
            .args(["put", "nope"])
            .arg(dir.path().join("notes.txt")),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));

    // The stream is deleted while a real-time upload runs: ERROR 4008 ends it, non-zero.
    ok(client(dir.path(), server.addr).args(["stream", "create", "doomed"]));
    let child = client(dir.path(), server.addr)
        .args(["put", "doomed", "--realtime", "--quiet"])
        .arg(&mkv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(2500));
    ok(client(dir.path(), server.addr).args(["stream", "delete", "doomed"]));
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4008") || stderr.contains("ResourceNotFoundException"),
        "{stderr}"
    );
}

/// Frames of the first video stream of a file or URL, as ffprobe counts them.
fn video_frames(input: &str) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=nb_read_packets,width",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit(',').next().unwrap().parse().unwrap()
}

#[test]
fn clip_playback_urls_and_images() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mkv, _, _) = media(d);
    ok(client(d, server.addr)
        .args([
            "put",
            "cam",
            "--create",
            "--start-time",
            "2026-01-01T00:00:00Z",
        ])
        .arg(&mkv));
    let (from, to) = ("2026-01-01T00:00:00Z", "2026-01-01T00:00:06Z");

    let clip = d.join("clip.mp4");
    ok(client(d, server.addr)
        .args(["clip", "cam", "--start", from, "--end", to, "-o"])
        .arg(&clip));
    assert_eq!(video_frames(clip.to_str().unwrap()), 150);
    decodes(&clip);

    for (cmd, extra) in [
        ("hls-url", &["--container", "ts"][..]),
        ("hls-url", &[][..]),
        ("dash-url", &[][..]),
    ] {
        let out = ok(client(d, server.addr)
            .args([
                cmd,
                "cam",
                "--mode",
                "on-demand",
                "--start",
                from,
                "--end",
                to,
            ])
            .args(extra));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(
            url.starts_with(&format!("http://{}/", server.addr)),
            "{url}"
        );
        assert_eq!(video_frames(&url), 150, "{cmd} {extra:?}: {url}");
    }
    // LIVE takes no range; ON_DEMAND needs one.
    let bad = output(client(d, server.addr).args(["hls-url", "cam", "--mode", "on-demand"]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--start"));

    let images = d.join("images");
    let out = ok(client(d, server.addr)
        .args([
            "images",
            "cam",
            "--start",
            from,
            "--end",
            "2026-01-01T00:00:05.5Z",
        ])
        .args(["--width", "160", "-o"])
        .arg(&images));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("6 image(s)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    assert!(
        files[0]
            .to_str()
            .unwrap()
            .ends_with("cam-1767225600.000.jpg"),
        "{files:?}"
    );
    for f in &files {
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(f)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&probe.stdout).trim(),
            "160,120",
            "{f:?}"
        );
    }
}

/// Over HTTPS with the server's local CA (`--ca-bundle`): stream commands, put and get.
#[test]
fn client_over_tls_with_the_local_ca() {
    let server = Server::start_with_root(&["--tls-self-signed"]);
    let dir = tempfile::tempdir().unwrap();
    let (mkv, _, _) = media(dir.path());
    let ca = server.data_dir().join("tls/ca.pem");
    let https = |cmd: &mut Command| {
        cmd.env(
            "AWS_ENDPOINT_URL",
            format!("https://localhost:{}", server.addr.port()),
        )
        .env("AWS_CA_BUNDLE", &ca);
    };
    let mut put = client(dir.path(), server.addr);
    https(&mut put);
    let out = ok(put.args(["put", "secure", "--create"]).arg(&mkv));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 fragment(s) persisted"));
    let mut get = client(dir.path(), server.addr);
    https(&mut get);
    let out = ok(get.args(["get", "secure", "--start", "earliest", "--no-follow"]));
    let path = dir.path().join("secure.mkv");
    std::fs::write(&path, &out.stdout).unwrap();
    same_media(&mkv, &path);
    // Without the CA the server is not trusted.
    let mut list = client(dir.path(), server.addr);
    https(&mut list);
    let out = output(list.env_remove("AWS_CA_BUNDLE").args(["stream", "list"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
