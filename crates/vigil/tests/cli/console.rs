//! The web console in a real browser: `crates/console/web/tests/console.mjs` drives Debian's
//! Chromium (playwright-core) through sign-in, stream creation, the live view, the timeline,
//! archive playback from a link and from a click, thumbnails, a clip download and an H.265
//! stream, while `vigil put` sends video; this test starts the server, makes the media, runs
//! the script and checks what it saw. Screenshots of every page are kept in
//! `target/tmp/console-screenshots/` (`CARGO_TARGET_TMPDIR`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::client::{client, decodes, ffmpeg, ok};
use crate::{ROOT_KEY, ROOT_SECRET, Server};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 320x240 H.264 (a key frame a second, no B-frames) and AAC, `seconds` long.
fn h264(path: &Path, seconds: u32) {
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
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-bf",
        "0",
        "-crf",
        "34",
        "-threads",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        path.to_str().unwrap(),
    ]);
}

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/web")
}

fn probe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn console_in_chromium() {
    let server = Server::start_with_root(&[]);
    let dir = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(concat!(env!("CARGO_TARGET_TMPDIR"), "/console-screenshots"));
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let archive = dir.path().join("archive.mkv");
    let live = dir.path().join("live.mkv");
    let hevc = dir.path().join("hevc.mkv");
    h264(&archive, 60);
    h264(&live, 150);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "4",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "keyint=25:log-level=error",
        hevc.to_str().unwrap(),
    ]);
    // An H.265 stream, sent before the browser opens it.
    ok(client(dir.path(), server.addr).args([
        "put",
        "garage",
        hevc.to_str().unwrap(),
        "--create",
        "--quiet",
    ]));

    // The recording lies five minutes back, within one UTC day (the browser runs in UTC).
    let day_ms = 86_400_000;
    let mut start = now_ms() - 5 * 60_000;
    if start / day_ms != (start + 61_000) / day_ms {
        start -= 2 * 60_000;
    }

    let node_out = Command::new("node")
        .arg(console_dir().join("tests/console.mjs"))
        .current_dir(console_dir())
        .env("VIGIL_URL", format!("http://{}", server.addr))
        .env("VIGIL_KEY", ROOT_KEY)
        .env("VIGIL_SECRET", ROOT_SECRET)
        .env("VIGIL_BIN", env!("CARGO_BIN_EXE_vigil"))
        .env("ARCHIVE_FILE", &archive)
        .env("ARCHIVE_START_MS", start.to_string())
        .env("LIVE_FILE", &live)
        .env("H265_STREAM", "garage")
        .env("OUT_DIR", &shots)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); run scripts/install-test-deps.sh"));
    let stderr = String::from_utf8_lossy(&node_out.stderr);
    assert!(
        node_out.status.success(),
        "the console script failed: {stderr}\nscreenshots in {}",
        shots.display()
    );
    let facts: Value = serde_json::from_slice(
        node_out
            .stdout
            .split(|&b| b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .unwrap(),
    )
    .unwrap();
    eprintln!(
        "console facts: {facts:#}\nscreenshots in {}",
        shots.display()
    );
    let f = |p: &str| {
        facts
            .pointer(p)
            .unwrap_or_else(|| panic!("no {p} in {facts}"))
    };
    let num = |p: &str| {
        f(p).as_f64()
            .unwrap_or_else(|| panic!("{p} is not a number"))
    };

    // Signing in: a wrong secret is named; the session is an HttpOnly, SameSite=Strict cookie
    // that scripts cannot read, and the secret is nowhere in the page's storage.
    assert!(
        f("/wrongSecretMessage")
            .as_str()
            .unwrap()
            .contains("secret"),
        "{}",
        f("/wrongSecretMessage")
    );
    let cookies = f("/cookie").as_array().unwrap();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(cookies[0]["name"], "vigil_console");
    assert_eq!(cookies[0]["httpOnly"], true);
    assert_eq!(cookies[0]["sameSite"], "Strict");
    assert_eq!(f("/documentCookie"), "");
    assert_eq!(f("/secretInStorage"), false);

    // The list shows the new stream as live, with its retention.
    let row = f("/listRow").as_str().unwrap();
    assert!(row.contains("front-door") && row.contains("Live"), "{row}");
    assert!(row.contains("2 d"), "retention 48 h: {row}");
    assert!(
        num("/phoneOverflow") <= 0.0,
        "the page scrolls sideways on a phone"
    );

    // Live: playing, advancing, the right size, a few seconds behind.
    assert_eq!(num("/live/videoWidth"), 320.0);
    assert_eq!(num("/live/videoHeight"), 240.0);
    assert!(
        num("/live/advanced") >= 2.0,
        "live currentTime did not advance"
    );
    let latency = num("/live/now") - num("/live/playing");
    assert!(
        (0.0..10_000.0).contains(&latency),
        "live view {latency} ms behind"
    );

    // The timeline shows the recording where it was placed.
    let spans = f("/spans").as_array().unwrap();
    let start_f = start as f64;
    assert!(
        spans.iter().any(|s| {
            let (a, b) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
            (a - start_f).abs() <= 1_500.0 && (b - (start_f + 60_000.0)).abs() <= 1_500.0
        }),
        "no span of [{start}, +60 s] in {spans:?}"
    );

    // Archive playback starts at the time asked for, from a link and from a click.
    let asked = num("/link/asked");
    let playing = num("/link/playing");
    assert!(
        (playing - asked).abs() <= 1_500.0,
        "link: asked {asked}, playing {playing}"
    );
    let clicked = num("/click/clickedAt");
    let first = num("/click/firstPlaying");
    let later = num("/click/twoSecondsLater");
    assert!(
        (first - clicked).abs() <= 1_500.0,
        "click at {clicked}, playing {first}"
    );
    assert!(later > first + 1_000.0, "archive playback did not advance");
    assert!(num("/view/end") - num("/view/start") <= 5.0 * 60_000.0 + 1.0);
    assert_eq!(num("/click/videoWidth"), 320.0);

    // Thumbnails across the view, each 160 px wide, within the recording.
    let thumbs = f("/thumbs").as_array().unwrap();
    assert!(thumbs.len() >= 3, "{thumbs:?}");
    for t in thumbs {
        assert_eq!(t["width"], 160, "{t}");
        let at = t["time"].as_f64().unwrap();
        assert!(at >= start_f - 1_000.0, "thumbnail at {at}");
    }

    // The clip downloads and decodes: 320x240 H.264 and AAC, about the range asked for.
    let clip = PathBuf::from(f("/clip/file").as_str().unwrap());
    assert!(
        f("/clip/suggested")
            .as_str()
            .unwrap()
            .starts_with("front-door-")
    );
    decodes(&clip);
    let p = probe(&clip);
    let streams = p["streams"].as_array().unwrap();
    assert_eq!(streams[0]["codec_name"], "h264");
    assert_eq!(streams[0]["width"], 320);
    assert!(streams.iter().any(|s| s["codec_name"] == "aac"));
    let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (9.0..=12.5).contains(&duration),
        "a clip of 20 s to 30 s lasts {duration} s"
    );

    // H.265: Chromium has no HEVC decoder here; the console says so instead of a black player,
    // and shows a picture (the `ffmpeg` build decodes H.265) or why it cannot.
    assert_eq!(
        f("/h265/mseHevc"),
        false,
        "this Chromium plays HEVC after all"
    );
    assert_eq!(f("/h265/playerHidden"), true);
    let notice = f("/h265/notice").as_str().unwrap();
    assert!(notice.contains("cannot play H.265"), "{notice}");
    if cfg!(feature = "ffmpeg") {
        assert_eq!(num("/h265/previewWidth"), 1280.0, "{notice}");
    } else {
        assert!(notice.contains("Pictures unavailable"), "{notice}");
    }

    // Signed out: the session no longer works.
    assert_eq!(num("/afterSignOut"), 403.0);
    assert_eq!(
        f("/consoleErrors").as_array().unwrap().len(),
        0,
        "console errors: {}",
        f("/consoleErrors")
    );
    for shot in [
        "01-sign-in.png",
        "03-streams.png",
        "05-live.png",
        "06-archive.png",
        "09-h265.png",
    ] {
        assert!(shots.join(shot).metadata().unwrap().len() > 5_000, "{shot}");
    }
}
