//! Shared helpers: real media split as the store holds it, and ffprobe/ffmpeg checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use vigil_mkv::{Demuxer, Event};

/// A Matroska file as the store holds it: the track header (EBML header, unknown-size
/// Segment, Info, Tracks) and one payload per Cluster.
pub struct Stored {
    pub header: Vec<u8>,
    pub payloads: Vec<Bytes>,
}

/// A capture of the official KVS producer SDK, in the `shared/` folder beside the repository
/// (or where `VIGIL_SHARED_DIR` says).
pub fn kvs_capture(name: &str) -> PathBuf {
    let rel = Path::new("testdata/kvs-producer-c").join(name);
    if let Some(dir) = std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(rel);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared").join(&rel))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} not found in a shared/ folder", rel.display()))
}

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

/// Splits a Matroska file at its Clusters (as `crates/server/tests/api/common.rs` does).
pub fn split_mkv(data: &[u8]) -> Stored {
    let events = Demuxer::read_all(data).unwrap();
    let span_bytes =
        |span: &vigil_mkv::Span| &data[span.offset as usize..span.end().unwrap() as usize];
    let mut header = Vec::new();
    let mut payloads = Vec::new();
    for e in &events {
        match e {
            Event::EbmlHeader { span, .. } => {
                header.extend_from_slice(span_bytes(span));
                header.extend_from_slice(&[0x18, 0x53, 0x80, 0x67]);
                header.extend_from_slice(&vigil_mkv::ebml::UNKNOWN_SIZE_8);
            }
            Event::Info { span, .. } | Event::Tracks { span, .. } => {
                header.extend_from_slice(span_bytes(span))
            }
            Event::ClusterEnd { offset, end } => {
                payloads.push(Bytes::copy_from_slice(
                    &data[*offset as usize..*end as usize],
                ));
            }
            _ => {}
        }
    }
    Stored { header, payloads }
}

/// Runs ffmpeg with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg ({e}); run scripts/install-test-deps.sh"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One packet as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub stream: usize,
    pub pts: f64,
    pub dts: Option<f64>,
    pub key: bool,
}

/// ffprobe's packets, in file order; panics if ffprobe writes anything to stderr.
pub fn packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("packet=stream_index,pts_time,dts_time,flags")
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffprobe ({e}); run scripts/install-test-deps.sh"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffprobe {path:?}: {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                stream: f[0].parse().unwrap(),
                pts: f[1].parse().unwrap(),
                dts: f[2].parse().ok(),
                key: f[3].starts_with('K'),
            }
        })
        .collect()
}

/// Decodes `path` entirely with ffmpeg; panics on any error message.
pub fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffmpeg decode {path:?}: {stderr}"
    );
}
