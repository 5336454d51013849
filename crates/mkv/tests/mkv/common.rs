//! Helpers shared by the test modules: finding test vectors, demuxing with a given chunking,
//! and asking ffprobe.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_mkv::{Demuxer, Error, Event, Info, Limits, TrackEntry};

/// The repository's `testdata/`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

/// `shared/testdata/kvs-producer-c/<name>`: the official KVS producer SDK's captures, which live
/// in the `shared/` folder beside the repository (or where `VIGIL_SHARED_DIR` says).
pub fn kvs_capture(name: &str) -> PathBuf {
    let rel = Path::new("testdata/kvs-producer-c").join(name);
    if let Some(dir) = std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(rel);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let candidate = dir.join("shared").join(&rel);
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "the KVS producer captures ({}) were not found in a shared/ folder beside the \
         repository; set VIGIL_SHARED_DIR to the folder that holds testdata/kvs-producer-c",
        rel.display()
    );
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Demuxes `data` pushed in chunks of the given sizes (cycled), checking invariants after
/// every call: the fuzz target's own runner, with the default limits.
pub fn demux_chunked(data: &[u8], sizes: &[usize]) -> Vec<Result<Event, Error>> {
    vigil_mkv::fuzzing::run(data, sizes, Limits::default())
}

/// The first Info and Tracks of a demuxed input.
pub fn first_info(events: &[Event]) -> Info {
    events
        .iter()
        .find_map(|e| match e {
            Event::Info { info, .. } => Some(info.clone()),
            _ => None,
        })
        .expect("no Info")
}

pub fn first_tracks(events: &[Event]) -> Vec<TrackEntry> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Tracks { tracks, .. } => Some(tracks.clone()),
            _ => None,
        })
        .expect("no Tracks")
}

pub fn demux_ok(data: &[u8]) -> Vec<Event> {
    Demuxer::read_all(data).unwrap_or_else(|e| panic!("demux failed: {e}"))
}

/// One packet as ffprobe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub stream: usize,
    /// In the stream's time base (the file's ticks, for Matroska).
    pub pts: i64,
    pub key: bool,
    /// The packet's bytes, as ffmpeg's demuxer hands them to a decoder.
    pub data: Vec<u8>,
}

/// ffprobe's packets, in file order, with their data. The tests need ffprobe:
/// `scripts/install-test-deps.sh` installs it.
pub fn ffprobe_packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_data"])
        .args(["-show_entries", "packet=stream_index,pts,flags,data"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffprobe ({e}); run scripts/install-test-deps.sh to install it")
        });
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut packets = Vec::new();
    let mut current: Option<Packet> = None;
    for line in text.lines() {
        if line == "[PACKET]" {
            current = Some(Packet {
                stream: 0,
                pts: 0,
                key: false,
                data: Vec::new(),
            });
        } else if line == "[/PACKET]" {
            packets.push(current.take().expect("[/PACKET] without [PACKET]"));
        } else if let Some(p) = current.as_mut() {
            if let Some(v) = line.strip_prefix("stream_index=") {
                p.stream = v.parse().unwrap();
            } else if let Some(v) = line.strip_prefix("pts=") {
                p.pts = v.parse().unwrap_or_else(|_| panic!("pts in {line:?}"));
            } else if let Some(v) = line.strip_prefix("flags=") {
                p.key = v.starts_with('K');
            } else if let Some((_, dump)) = line.split_once(": ") {
                // `00000010: 0000 0086 7093 …  ascii`: hex groups until the double space.
                for group in dump.split(' ').take_while(|g| !g.is_empty()) {
                    for pair in group.as_bytes().chunks(2) {
                        let hex = std::str::from_utf8(pair).unwrap();
                        p.data.push(u8::from_str_radix(hex, 16).unwrap());
                    }
                }
            }
        }
    }
    packets
}

/// Runs ffmpeg to decode `path` completely; returns its error output on failure.
pub fn ffmpeg_decode(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ffmpeg ({e}); run scripts/install-test-deps.sh to install it")
        });
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(stderr)
    }
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vigil-mkv-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
