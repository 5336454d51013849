//! HLS playlists (RFC 8216; low-latency additions from draft-pantos-hls-rfc8216bis) as KVS
//! serves them (`../shared/spec/kvs-api.md` §4.3).
//!
//! The writers take URIs as given: building them (session tokens, fragment numbers, track
//! numbers) is the API layer's business. They check what the output format demands (no
//! double quote, CR or LF inside a quoted-string attribute or a URI line; finite, non-negative
//! durations; partial segments no longer than the part target) and refuse the rest with
//! [`Error::Limit`].
//!
//! - [`master_playlist`]: `#EXT-X-STREAM-INF` for the main rendition (CODECS from
//!   [`Codec::rfc6381`], RESOLUTION, FRAME-RATE, BANDWIDTH), and `#EXT-X-MEDIA` for a separate
//!   audio rendition (fMP4 sessions serve track 2 from its own media playlist).
//! - [`media_playlist`]: the media playlist, tags in RFC 8216 order: the header tags first
//!   (VERSION 7 for fMP4, 3 for TS; TARGETDURATION = the longest EXTINF rounded up; server
//!   control and part information for LL-HLS; MEDIA-SEQUENCE, DISCONTINUITY-SEQUENCE), then per
//!   segment DISCONTINUITY, MAP (when the init segment changes), PROGRAM-DATE-TIME, its PARTs,
//!   EXTINF and URI; then the parts of the segment in progress, PRELOAD-HINT, and ENDLIST.

use std::fmt::Write as _;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::sample::Track;

/// The segment container: it sets EXT-X-VERSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Fragmented MP4 (`FRAGMENTED_MP4`): version 7, init segments via EXT-X-MAP.
    Fmp4,
    /// MPEG-TS (`MPEG_TS`): version 3.
    Ts,
}

/// The master playlist of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterPlaylist {
    /// The main rendition's media playlist URI.
    pub uri: String,
    /// The tracks the main rendition's segments carry: the video track, or both tracks for TS,
    /// or the audio track alone for audio-only streams.
    pub tracks: Vec<Track>,
    /// A separate audio rendition (track 2 of an fMP4 session).
    pub audio: Option<AudioRendition>,
    /// Peak bit rate of the main rendition (with the audio rendition), bits per second.
    pub bandwidth: u64,
    /// Video frame rate, when known.
    pub frame_rate: Option<f64>,
    /// Writes `#EXT-X-INDEPENDENT-SEGMENTS` (every segment starts with a key frame).
    pub independent_segments: bool,
}

/// An audio rendition in its own media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioRendition {
    /// Its media playlist URI.
    pub uri: String,
    /// The audio track.
    pub track: Track,
    /// GROUP-ID, also the STREAM-INF's AUDIO attribute.
    pub group_id: String,
    /// NAME.
    pub name: String,
    /// LANGUAGE (RFC 5646 tag), when known.
    pub language: Option<String>,
}

/// Writes the master playlist.
pub fn master_playlist(master: &MasterPlaylist) -> Result<String> {
    let mut out = String::from("#EXTM3U\n");
    if master.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let mut codecs = Vec::new();
    for track in master
        .tracks
        .iter()
        .chain(master.audio.iter().map(|a| &a.track))
    {
        codecs.push(hls_codec(&track.codec)?);
    }
    if let Some(audio) = &master.audio {
        out.push_str("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=");
        quoted(&mut out, &audio.group_id)?;
        out.push_str(",NAME=");
        quoted(&mut out, &audio.name)?;
        if let Some(language) = &audio.language {
            out.push_str(",LANGUAGE=");
            quoted(&mut out, language)?;
        }
        out.push_str(",DEFAULT=YES,AUTOSELECT=YES");
        if let Some((_, channels)) = audio.track.codec.audio_format() {
            let _ = write!(out, ",CHANNELS=\"{channels}\"");
        }
        out.push_str(",URI=");
        quoted(&mut out, &audio.uri)?;
        out.push('\n');
    }
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=",
        master.bandwidth
    );
    quoted(&mut out, &codecs.join(","))?;
    if let Some((width, height)) = master.tracks.iter().find_map(|t| t.codec.dimensions()) {
        let _ = write!(out, ",RESOLUTION={width}x{height}");
    }
    if let Some(rate) = master.frame_rate {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(Error::Limit(format!("frame rate {rate}")));
        }
        let _ = write!(out, ",FRAME-RATE={rate:.3}");
    }
    if let Some(audio) = &master.audio {
        out.push_str(",AUDIO=");
        quoted(&mut out, &audio.group_id)?;
    }
    out.push('\n');
    uri_line(&mut out, &master.uri)?;
    Ok(out)
}

/// The codec string for HLS: G.711 has none (KVS refuses it for HLS, §6.1).
fn hls_codec(codec: &Codec) -> Result<String> {
    if let Codec::G711 { .. } = codec {
        return Err(Error::UnsupportedCodec {
            format: "HLS",
            codec: "G.711".into(),
        });
    }
    Ok(codec.rfc6381())
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// The segment container (sets the version; MAP is written for fMP4 segments that give one).
    pub container: Option<Container>,
    /// The Media Sequence Number of the first segment.
    pub media_sequence: u64,
    /// The Discontinuity Sequence Number (written when not 0).
    pub discontinuity_sequence: u64,
    /// Writes `#EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// `#EXT-X-PLAYLIST-TYPE`, if any.
    pub playlist_type: Option<PlaylistType>,
    /// The segments, oldest first.
    pub segments: Vec<Segment>,
    /// Low-latency HLS: server control, part target, the parts of the segment in progress and
    /// the preload hint.
    pub low_latency: Option<LowLatency>,
    /// Writes `#EXT-X-ENDLIST` (on-demand playlists, and live ones whose stream ended).
    pub ended: bool,
}

/// `#EXT-X-PLAYLIST-TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    /// `VOD`: the playlist cannot change.
    Vod,
    /// `EVENT`: segments are only appended.
    Event,
}

/// A media segment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segment {
    /// Its URI.
    pub uri: String,
    /// Duration in seconds (EXTINF, written with 3 decimals).
    pub duration: f64,
    /// `#EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    /// `#EXT-X-PROGRAM-DATE-TIME` of its first sample, milliseconds since the Unix epoch.
    pub program_date_time_ms: Option<i64>,
    /// The init segment (fMP4): `#EXT-X-MAP` is written before the first segment and wherever
    /// the URI changes (a new CodecPrivate).
    pub map_uri: Option<String>,
    /// Its partial segments (LL-HLS), oldest first.
    pub parts: Vec<Part>,
}

/// A partial segment (LL-HLS `#EXT-X-PART`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Part {
    /// Its URI.
    pub uri: String,
    /// Duration in seconds.
    pub duration: f64,
    /// Starts with a key frame (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// The low-latency HLS parameters of a media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LowLatency {
    /// PART-TARGET of `#EXT-X-PART-INF`, seconds.
    pub part_target: f64,
    /// PART-HOLD-BACK of `#EXT-X-SERVER-CONTROL`, seconds; at least twice the part target
    /// (three times when `None`).
    pub part_hold_back: Option<f64>,
    /// `CAN-BLOCK-RELOAD=YES` (the server supports `_HLS_msn`/`_HLS_part` blocking reloads).
    pub can_block_reload: bool,
    /// The parts of the segment in progress, after the last complete segment.
    pub pending_parts: Vec<Part>,
    /// `#EXT-X-DISCONTINUITY` before the segment in progress (written before its first part).
    pub pending_discontinuity: bool,
    /// The init segment of the segment in progress: `#EXT-X-MAP` is written before its first
    /// part when it differs from the last segment's, or after a discontinuity.
    pub pending_map_uri: Option<String>,
    /// `#EXT-X-PROGRAM-DATE-TIME` of the segment in progress, milliseconds since the epoch.
    pub pending_program_date_time_ms: Option<i64>,
    /// `#EXT-X-PRELOAD-HINT:TYPE=PART` URI of the next part.
    pub preload_hint: Option<String>,
}

/// Writes a media playlist.
pub fn media_playlist(playlist: &MediaPlaylist) -> Result<String> {
    let mut out = String::from("#EXTM3U\n");
    let version = match playlist.container {
        Some(Container::Fmp4) => 7,
        Some(Container::Ts) | None => 3,
    };
    let _ = writeln!(out, "#EXT-X-VERSION:{version}");

    let mut max_ms = 0u64;
    for segment in &playlist.segments {
        max_ms = max_ms.max(duration_ms(segment.duration)?);
    }
    // TARGETDURATION: EXTINF durations rounded to the nearest integer must not exceed it
    // (RFC 8216 §4.3.3.1); the ceiling of the longest is what KVS writes and is safe.
    let target = max_ms.div_ceil(1000).max(1);
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");

    if let Some(ll) = &playlist.low_latency {
        let part_target_ms = duration_ms(ll.part_target)?;
        if part_target_ms == 0 {
            return Err(Error::Limit("LL-HLS part target of 0".into()));
        }
        let hold_back = ll.part_hold_back.unwrap_or(ll.part_target * 3.0);
        let hold_back_ms = duration_ms(hold_back)?;
        if hold_back_ms < 2 * part_target_ms {
            return Err(Error::Limit(format!(
                "PART-HOLD-BACK {hold_back} below twice the part target {}",
                ll.part_target
            )));
        }
        out.push_str("#EXT-X-SERVER-CONTROL:");
        if ll.can_block_reload {
            out.push_str("CAN-BLOCK-RELOAD=YES,");
        }
        let _ = writeln!(out, "PART-HOLD-BACK={}", seconds(hold_back_ms));
        let _ = writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={}",
            seconds(part_target_ms)
        );
        let parts = playlist.segments.iter().flat_map(|s| &s.parts);
        for part in parts.chain(&ll.pending_parts) {
            if duration_ms(part.duration)? > part_target_ms {
                return Err(Error::Limit(format!(
                    "part {} of {} s longer than the part target {} s",
                    part.uri, part.duration, ll.part_target
                )));
            }
        }
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", playlist.media_sequence);
    if playlist.discontinuity_sequence != 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            playlist.discontinuity_sequence
        );
    }
    match playlist.playlist_type {
        Some(PlaylistType::Vod) => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        Some(PlaylistType::Event) => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
        None => {}
    }
    if playlist.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }

    let mut map: Option<&str> = None;
    for segment in &playlist.segments {
        if segment.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(uri) = segment.map_uri.as_deref() {
            if playlist.container == Some(Container::Ts) {
                return Err(Error::Limit("EXT-X-MAP in an MPEG-TS playlist".into()));
            }
            if map != Some(uri) || segment.discontinuity {
                out.push_str("#EXT-X-MAP:URI=");
                quoted(&mut out, uri)?;
                out.push('\n');
                map = Some(uri);
            }
        }
        if let Some(ms) = segment.program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(ms)?);
        }
        for part in &segment.parts {
            write_part(&mut out, part)?;
        }
        let _ = writeln!(out, "#EXTINF:{},", seconds(duration_ms(segment.duration)?));
        uri_line(&mut out, &segment.uri)?;
    }
    if let Some(ll) = &playlist.low_latency
        && !ll.pending_parts.is_empty()
    {
        // The segment in progress: its tags before its first part.
        if ll.pending_discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(uri) = ll.pending_map_uri.as_deref() {
            if playlist.container == Some(Container::Ts) {
                return Err(Error::Limit("EXT-X-MAP in an MPEG-TS playlist".into()));
            }
            if map != Some(uri) || ll.pending_discontinuity {
                out.push_str("#EXT-X-MAP:URI=");
                quoted(&mut out, uri)?;
                out.push('\n');
            }
        }
        if let Some(ms) = ll.pending_program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(ms)?);
        }
    }
    if let Some(ll) = &playlist.low_latency {
        for part in &ll.pending_parts {
            write_part(&mut out, part)?;
        }
        if let Some(uri) = &ll.preload_hint {
            out.push_str("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=");
            quoted(&mut out, uri)?;
            out.push('\n');
        }
    }
    if playlist.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Ok(out)
}

fn write_part(out: &mut String, part: &Part) -> Result<()> {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=",
        seconds(duration_ms(part.duration)?)
    );
    quoted(out, &part.uri)?;
    if part.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
    Ok(())
}

/// A duration in seconds rounded to milliseconds, refusing what is not finite or negative.
fn duration_ms(seconds: f64) -> Result<u64> {
    if !(0.0..=1e9).contains(&seconds) {
        return Err(Error::Limit(format!("duration {seconds} s")));
    }
    // In range: 0..=1e12 fits u64 exactly.
    Ok((seconds * 1000.0).round() as u64)
}

/// Milliseconds as a decimal number of seconds with 3 decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Writes a quoted-string attribute value (RFC 8216 §4.2: no `"`, CR or LF).
fn quoted(out: &mut String, value: &str) -> Result<()> {
    if value.contains(['"', '\r', '\n']) {
        return Err(Error::Limit(format!(
            "{value:?} cannot be an HLS quoted-string"
        )));
    }
    out.push('"');
    out.push_str(value);
    out.push('"');
    Ok(())
}

/// Writes a URI line: not empty, no CR or LF, not starting with `#`.
fn uri_line(out: &mut String, uri: &str) -> Result<()> {
    if uri.is_empty() || uri.starts_with('#') || uri.contains(['\r', '\n']) {
        return Err(Error::Limit(format!("{uri:?} cannot be an HLS URI line")));
    }
    out.push_str(uri);
    out.push('\n');
    Ok(())
}

/// Milliseconds since the Unix epoch as ISO 8601 UTC with milliseconds
/// (`2023-05-17T13:48:35.994Z`), years 0 to 9999.
pub fn iso8601_ms(ms: i64) -> Result<String> {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return Err(Error::Limit(format!("timestamp {ms} ms out of range")));
    }
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn video() -> Track {
        Track {
            number: 1,
            // avcC of a High profile level 4.1 stream.
            codec: Codec::H264 {
                avcc: Bytes::from_static(&[1, 0x4D, 0x40, 0x29, 0xFF, 0xE0, 0]),
                width: 1280,
                height: 720,
            },
            timescale: 90_000,
            dts_shift: 0,
        }
    }

    fn audio() -> Track {
        Track {
            number: 2,
            codec: Codec::Aac {
                asc: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
            dts_shift: 0,
        }
    }

    #[test]
    fn iso8601() {
        assert_eq!(
            iso8601_ms(1_684_331_315_994).unwrap(),
            "2023-05-17T13:48:35.994Z"
        );
        assert_eq!(iso8601_ms(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(-1).unwrap(), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            iso8601_ms(951_782_400_000).unwrap(),
            "2000-02-29T00:00:00.000Z"
        );
        assert!(iso8601_ms(i64::MAX).is_err());
    }

    #[test]
    fn master_like_kvs() {
        let master = MasterPlaylist {
            uri: "getHLSMediaPlaylist.m3u8?SessionToken=t&TrackNumber=1".into(),
            tracks: vec![video()],
            audio: None,
            bandwidth: 1_953_544,
            frame_rate: Some(15.0),
            independent_segments: false,
        };
        assert_eq!(
            master_playlist(&master).unwrap(),
            "#EXTM3U\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1953544,CODECS=\"avc1.4d4029\",RESOLUTION=1280x720,FRAME-RATE=15.000\n\
             getHLSMediaPlaylist.m3u8?SessionToken=t&TrackNumber=1\n"
        );
    }

    #[test]
    fn master_with_audio_rendition() {
        let master = MasterPlaylist {
            uri: "v.m3u8".into(),
            tracks: vec![video()],
            audio: Some(AudioRendition {
                uri: "a.m3u8".into(),
                track: audio(),
                group_id: "audio".into(),
                name: "Track 2".into(),
                language: None,
            }),
            bandwidth: 100,
            frame_rate: None,
            independent_segments: true,
        };
        assert_eq!(
            master_playlist(&master).unwrap(),
            "#EXTM3U\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Track 2\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"a.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=100,CODECS=\"avc1.4d4029,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"audio\"\n\
             v.m3u8\n"
        );
        let mut bad = master.clone();
        bad.uri = "a\nb".into();
        assert!(master_playlist(&bad).is_err());
        let mut bad = master;
        if let Some(a) = bad.audio.as_mut() {
            a.name = "say \"hi\"".into();
        }
        assert!(matches!(master_playlist(&bad), Err(Error::Limit(_))));
    }

    #[test]
    fn g711_refused() {
        let mut track = audio();
        track.codec = Codec::G711 {
            mu_law: false,
            sample_rate: 8000,
            channels: 1,
        };
        let master = MasterPlaylist {
            uri: "v.m3u8".into(),
            tracks: vec![video(), track],
            audio: None,
            bandwidth: 1,
            frame_rate: None,
            independent_segments: false,
        };
        assert!(matches!(
            master_playlist(&master),
            Err(Error::UnsupportedCodec { format: "HLS", .. })
        ));
    }

    #[test]
    fn media_like_kvs() {
        let playlist = MediaPlaylist {
            container: Some(Container::Fmp4),
            independent_segments: true,
            segments: vec![
                Segment {
                    uri: "getMP4MediaFragment.mp4?FragmentNumber=1&TrackNumber=1".into(),
                    duration: 2.6634,
                    discontinuity: true,
                    program_date_time_ms: Some(1_684_331_315_994),
                    map_uri: Some("init.mp4?SequenceNumber=0".into()),
                    parts: vec![],
                },
                Segment {
                    uri: "f2.mp4".into(),
                    duration: 4.0,
                    discontinuity: false,
                    program_date_time_ms: None,
                    map_uri: Some("init.mp4?SequenceNumber=0".into()),
                    parts: vec![],
                },
                Segment {
                    uri: "f3.mp4".into(),
                    duration: 1.0,
                    discontinuity: false,
                    program_date_time_ms: None,
                    map_uri: Some("init.mp4?SequenceNumber=1".into()),
                    parts: vec![],
                },
            ],
            media_sequence: 0,
            ended: true,
            ..MediaPlaylist::default()
        };
        assert_eq!(
            media_playlist(&playlist).unwrap(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-MAP:URI=\"init.mp4?SequenceNumber=0\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-05-17T13:48:35.994Z\n\
             #EXTINF:2.663,\n\
             getMP4MediaFragment.mp4?FragmentNumber=1&TrackNumber=1\n\
             #EXTINF:4.000,\n\
             f2.mp4\n\
             #EXT-X-MAP:URI=\"init.mp4?SequenceNumber=1\"\n\
             #EXTINF:1.000,\n\
             f3.mp4\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn target_duration_rounds_up() {
        let playlist = |d: f64| MediaPlaylist {
            container: Some(Container::Ts),
            segments: vec![Segment {
                uri: "s.ts".into(),
                duration: d,
                ..Segment::default()
            }],
            ..MediaPlaylist::default()
        };
        let target = |d| {
            let text = media_playlist(&playlist(d)).unwrap();
            assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n"));
            text.lines()
                .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
                .unwrap()
                .to_owned()
        };
        assert_eq!(target(2.0), "2");
        assert_eq!(target(2.0004), "2");
        assert_eq!(target(2.001), "3");
        assert_eq!(target(0.0), "1");
        assert!(media_playlist(&playlist(f64::NAN)).is_err());
        assert!(media_playlist(&playlist(-1.0)).is_err());
        let mut with_map = playlist(1.0);
        with_map.segments[0].map_uri = Some("init.mp4".into());
        assert!(
            media_playlist(&with_map).is_err(),
            "no EXT-X-MAP in TS playlists"
        );
    }

    #[test]
    fn low_latency() {
        let part = |uri: &str, independent| Part {
            uri: uri.into(),
            duration: 0.5,
            independent,
        };
        let playlist = MediaPlaylist {
            container: Some(Container::Fmp4),
            media_sequence: 7,
            segments: vec![Segment {
                uri: "s7.mp4".into(),
                duration: 1.0,
                map_uri: Some("init.mp4".into()),
                parts: vec![part("s7.0.mp4", true), part("s7.1.mp4", false)],
                ..Segment::default()
            }],
            low_latency: Some(LowLatency {
                part_target: 0.5,
                part_hold_back: None,
                can_block_reload: true,
                pending_parts: vec![part("s8.0.mp4", true)],
                preload_hint: Some("s8.1.mp4".into()),
                ..LowLatency::default()
            }),
            ..MediaPlaylist::default()
        };
        assert_eq!(
            media_playlist(&playlist).unwrap(),
            "#EXTM3U\n\
             #EXT-X-VERSION:7\n\
             #EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500\n\
             #EXT-X-PART-INF:PART-TARGET=0.500\n\
             #EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"s7.0.mp4\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"s7.1.mp4\"\n\
             #EXTINF:1.000,\n\
             s7.mp4\n\
             #EXT-X-PART:DURATION=0.500,URI=\"s8.0.mp4\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s8.1.mp4\"\n"
        );
        // The segment in progress after a discontinuity, with a new init segment.
        let mut pending = playlist.clone();
        if let Some(ll) = pending.low_latency.as_mut() {
            ll.pending_discontinuity = true;
            ll.pending_map_uri = Some("init.mp4".into());
            ll.pending_program_date_time_ms = Some(0);
        }
        let text = media_playlist(&pending).unwrap();
        assert!(
            text.ends_with(
                "s7.mp4\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-MAP:URI=\"init.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n\
                 #EXT-X-PART:DURATION=0.500,URI=\"s8.0.mp4\",INDEPENDENT=YES\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s8.1.mp4\"\n"
            ),
            "{text}"
        );
        let mut long_part = playlist.clone();
        if let Some(ll) = long_part.low_latency.as_mut() {
            ll.pending_parts[0].duration = 0.6;
        }
        assert!(media_playlist(&long_part).is_err());
        let mut short_hold_back = playlist;
        if let Some(ll) = short_hold_back.low_latency.as_mut() {
            ll.part_hold_back = Some(0.9);
        }
        assert!(media_playlist(&short_hold_back).is_err());
    }
}
