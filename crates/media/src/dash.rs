//! DASH manifests (ISO/IEC 23009-1) as KVS serves them (`../shared/spec/kvs-api.md` §4.4).
//!
//! [`mpd`] writes one Period with one AdaptationSet (and one Representation) per track, each
//! with a SegmentTemplate whose `initialization` and `media` templates the caller gives (the
//! API layer builds URLs), and a SegmentTimeline of `<S t d/>` entries; consecutive segments
//! of equal duration that follow each other without a gap fold into one `<S>` with `r`.
//! `DisplayFragmentTimestamp` and `DisplayFragmentNumber` become the `kvs:ts` and `kvs:fn`
//! attributes of each `S` (such entries are never folded), with the `kvs` namespace declared
//! on the MPD.
//!
//! Static manifests (on demand) carry `mediaPresentationDuration`; dynamic ones (live,
//! live replay) carry `availabilityStartTime`, `publishTime`, `minimumUpdatePeriod` and
//! `timeShiftBufferDepth`. Attribute values are XML-escaped, so templates may hold `&`.

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::hls::iso8601_ms;
use crate::sample::Track;

/// The XML namespace of the `kvs:` attributes.
pub const KVS_NAMESPACE: &str = "https://kinesisvideo.amazonaws.com/ns/dash";

/// A manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpd {
    /// Static or dynamic, with the timing attributes each needs.
    pub kind: MpdKind,
    /// `minBufferTime`, milliseconds.
    pub min_buffer_time_ms: u64,
    /// One per track.
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// `MPD@type` and its timing attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum MpdKind {
    /// On demand.
    Static {
        /// `mediaPresentationDuration`, milliseconds.
        duration_ms: u64,
    },
    /// Live.
    Dynamic {
        /// `availabilityStartTime`, ms since the Unix epoch: the wall-clock time of media
        /// time 0 of the Period.
        availability_start_time_ms: i64,
        /// `publishTime`, ms since the Unix epoch.
        publish_time_ms: i64,
        /// `minimumUpdatePeriod`, milliseconds.
        minimum_update_period_ms: u64,
        /// `timeShiftBufferDepth`, milliseconds.
        time_shift_buffer_depth_ms: u64,
    },
}

/// A track's AdaptationSet.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptationSet {
    /// The track (codec, dimensions, sample rate, timescale).
    pub track: Track,
    /// `Representation@bandwidth`, bits per second.
    pub bandwidth: u64,
    /// Frame rate as a fraction (`frameRate="25"` or `"30000/1001"`), when known.
    pub frame_rate: Option<(u32, u32)>,
    /// `SegmentTemplate@initialization`.
    pub initialization: String,
    /// `SegmentTemplate@media` (`$Number$` or `$Time$` based).
    pub media: String,
    /// `SegmentTemplate@startNumber`.
    pub start_number: u64,
    /// The segments, oldest first, in the track's timescale.
    pub segments: Vec<TimelineSegment>,
}

/// One segment of a SegmentTimeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineSegment {
    /// Start (`S@t`), track timescale.
    pub start: u64,
    /// Duration (`S@d`), track timescale.
    pub duration: u64,
    /// `kvs:ts`: the fragment's true start, ms since the Unix epoch, written as seconds with
    /// 3 decimals.
    pub kvs_ts_ms: Option<i64>,
    /// `kvs:fn`: the KVS fragment number.
    pub kvs_fn: Option<String>,
}

/// Writes the manifest.
pub fn mpd(mpd: &Mpd) -> Result<String> {
    let with_kvs = mpd
        .adaptation_sets
        .iter()
        .flat_map(|a| &a.segments)
        .any(|s| s.kvs_ts_ms.is_some() || s.kvs_fn.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"");
    if with_kvs {
        let _ = write!(out, " xmlns:kvs=\"{KVS_NAMESPACE}\"");
    }
    out.push_str(" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"");
    match &mpd.kind {
        MpdKind::Static { duration_ms } => {
            let _ = write!(
                out,
                " type=\"static\" mediaPresentationDuration=\"{}\"",
                xs_duration(*duration_ms)
            );
        }
        MpdKind::Dynamic {
            availability_start_time_ms,
            publish_time_ms,
            minimum_update_period_ms,
            time_shift_buffer_depth_ms,
        } => {
            let _ = write!(
                out,
                " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
                 minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\"",
                iso8601_ms(*availability_start_time_ms)?,
                iso8601_ms(*publish_time_ms)?,
                xs_duration(*minimum_update_period_ms),
                xs_duration(*time_shift_buffer_depth_ms)
            );
        }
    }
    let _ = writeln!(
        out,
        " minBufferTime=\"{}\">",
        xs_duration(mpd.min_buffer_time_ms)
    );
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    for set in &mpd.adaptation_sets {
        adaptation_set(&mut out, set)?;
    }
    out.push_str("  </Period>\n</MPD>\n");
    Ok(out)
}

fn adaptation_set(out: &mut String, set: &AdaptationSet) -> Result<()> {
    let track = &set.track;
    if track.timescale == 0 {
        return Err(Error::Limit(format!("track {}: timescale 0", track.number)));
    }
    let video = track.codec.is_video();
    let (content, mime) = if video {
        ("video", "video/mp4")
    } else {
        ("audio", "audio/mp4")
    };
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{}\" contentType=\"{content}\" mimeType=\"{mime}\" \
         segmentAlignment=\"true\" startWithSAP=\"1\">",
        track.number
    );
    let _ = write!(
        out,
        "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\"",
        track.number,
        set.bandwidth,
        escape(&track.codec.rfc6381())
    );
    if let Some((width, height)) = track.codec.dimensions() {
        let _ = write!(out, " width=\"{width}\" height=\"{height}\"");
    }
    match set.frame_rate {
        Some((_, 0)) => return Err(Error::Limit("frame rate with denominator 0".into())),
        Some((num, 1)) => {
            let _ = write!(out, " frameRate=\"{num}\"");
        }
        Some((num, den)) => {
            let _ = write!(out, " frameRate=\"{num}/{den}\"");
        }
        None => {}
    }
    let audio = track.codec.audio_format();
    if let Some((rate, _)) = audio {
        let _ = write!(out, " audioSamplingRate=\"{rate}\"");
    }
    out.push_str(">\n");
    if let Some((_, channels)) = audio {
        let _ = writeln!(
            out,
            "        <AudioChannelConfiguration \
             schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
             value=\"{channels}\"/>"
        );
    }
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"{}\" initialization=\"{}\" media=\"{}\" \
         startNumber=\"{}\">",
        track.timescale,
        escape(&set.initialization),
        escape(&set.media),
        set.start_number
    );
    out.push_str("          <SegmentTimeline>\n");
    timeline(out, &set.segments)?;
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
    out.push_str("      </Representation>\n    </AdaptationSet>\n");
    Ok(())
}

/// Writes the `<S>` entries: `t` on the first and after any gap or overlap, runs of equal
/// durations folded into `r` (entries with `kvs:` attributes stand alone).
fn timeline(out: &mut String, segments: &[TimelineSegment]) -> Result<()> {
    let mut next_start: Option<u64> = None;
    let mut i = 0;
    while let Some(segment) = segments.get(i) {
        if segment.duration == 0 {
            return Err(Error::Limit(format!(
                "DASH segment at {} with duration 0",
                segment.start
            )));
        }
        let plain = segment.kvs_ts_ms.is_none() && segment.kvs_fn.is_none();
        let mut repeat = 0u64;
        let mut end = segment.start.saturating_add(segment.duration);
        if plain {
            while let Some(next) = segments.get(i + 1 + repeat as usize) {
                if next.duration != segment.duration
                    || next.start != end
                    || next.kvs_ts_ms.is_some()
                    || next.kvs_fn.is_some()
                {
                    break;
                }
                repeat += 1;
                end = end.saturating_add(segment.duration);
            }
        }
        out.push_str("            <S");
        if next_start != Some(segment.start) {
            let _ = write!(out, " t=\"{}\"", segment.start);
        }
        let _ = write!(out, " d=\"{}\"", segment.duration);
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        if let Some(ms) = segment.kvs_ts_ms {
            let sign = if ms < 0 { "-" } else { "" };
            let abs = ms.unsigned_abs();
            let _ = write!(out, " kvs:ts=\"{sign}{}.{:03}\"", abs / 1000, abs % 1000);
        }
        if let Some(fragment_number) = &segment.kvs_fn {
            let _ = write!(out, " kvs:fn=\"{}\"", escape(fragment_number));
        }
        out.push_str("/>\n");
        next_start = Some(end);
        i += 1 + repeat as usize;
    }
    Ok(())
}

/// An `xs:duration` of whole and fractional seconds: `PT2.5S`, `PT0S`.
fn xs_duration(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("PT{}S", ms / 1000),
        frac => {
            let frac = format!("{frac:03}");
            format!("PT{}.{}S", ms / 1000, frac.trim_end_matches('0'))
        }
    }
}

/// Escapes an XML attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::Codec;

    fn seg(start: u64, duration: u64) -> TimelineSegment {
        TimelineSegment {
            start,
            duration,
            ..TimelineSegment::default()
        }
    }

    fn timeline_text(segments: &[TimelineSegment]) -> String {
        let mut out = String::new();
        timeline(&mut out, segments).unwrap();
        out.lines().map(str::trim).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn timeline_runs_and_gaps() {
        assert_eq!(
            timeline_text(&[
                seg(0, 10),
                seg(10, 10),
                seg(20, 10),
                seg(30, 5),
                seg(40, 5),
                seg(45, 5)
            ]),
            "<S t=\"0\" d=\"10\" r=\"2\"/>\n<S d=\"5\"/>\n<S t=\"40\" d=\"5\" r=\"1\"/>"
        );
        let mut tagged = seg(10, 10);
        tagged.kvs_ts_ms = Some(1_684_331_315_994);
        tagged.kvs_fn = Some("9134385233318".into());
        assert_eq!(
            timeline_text(&[seg(0, 10), tagged, seg(20, 10)]),
            "<S t=\"0\" d=\"10\"/>\n<S d=\"10\" kvs:ts=\"1684331315.994\" kvs:fn=\"9134385233318\"/>\n<S d=\"10\"/>"
        );
        assert!(timeline(&mut String::new(), &[seg(0, 0)]).is_err());
    }

    #[test]
    fn durations_and_escaping() {
        assert_eq!(xs_duration(0), "PT0S");
        assert_eq!(xs_duration(2500), "PT2.5S");
        assert_eq!(xs_duration(1001), "PT1.001S");
        assert_eq!(escape("a?b=1&c=<\"'>"), "a?b=1&amp;c=&lt;&quot;&apos;&gt;");
    }

    #[test]
    fn static_manifest() {
        let track = Track {
            number: 2,
            codec: Codec::Aac {
                asc: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
            dts_shift: 0,
        };
        let text = mpd(&Mpd {
            kind: MpdKind::Static { duration_ms: 2000 },
            min_buffer_time_ms: 2000,
            adaptation_sets: vec![AdaptationSet {
                track,
                bandwidth: 64_000,
                frame_rate: None,
                initialization: "init.mp4?T=1&TrackNumber=2".into(),
                media: "m.mp4?N=$Number$&TrackNumber=2".into(),
                start_number: 0,
                segments: vec![seg(0, 48_000), seg(48_000, 48_000)],
            }],
        })
        .unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" mediaPresentationDuration=\"PT2S\" minBufferTime=\"PT2S\">\n\
\x20 <Period id=\"0\" start=\"PT0S\">\n\
\x20   <AdaptationSet id=\"2\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n\
\x20     <Representation id=\"2\" bandwidth=\"64000\" codecs=\"mp4a.40.2\" audioSamplingRate=\"48000\">\n\
\x20       <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>\n\
\x20       <SegmentTemplate timescale=\"48000\" initialization=\"init.mp4?T=1&amp;TrackNumber=2\" media=\"m.mp4?N=$Number$&amp;TrackNumber=2\" startNumber=\"0\">\n\
\x20         <SegmentTimeline>\n\
\x20           <S t=\"0\" d=\"48000\" r=\"1\"/>\n\
\x20         </SegmentTimeline>\n\
\x20       </SegmentTemplate>\n\
\x20     </Representation>\n\
\x20   </AdaptationSet>\n\
\x20 </Period>\n\
</MPD>\n"
        );
    }
}
