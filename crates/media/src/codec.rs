//! Codecs: identification from Matroska CodecID and CodecPrivate.

use bytes::Bytes;

/// A codec and its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 (`V_MPEG4/ISO/AVC`), configured by an AVCDecoderConfigurationRecord (`avcC`).
    H264 {
        /// The `avcC` record (Matroska CodecPrivate).
        avcc: Bytes,
        /// Coded width.
        width: u32,
        /// Coded height.
        height: u32,
    },
    /// H.265 (`V_MPEGH/ISO/HEVC`), configured by an HEVCDecoderConfigurationRecord (`hvcC`).
    H265 {
        /// The `hvcC` record.
        hvcc: Bytes,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// AAC (`A_AAC`), configured by an AudioSpecificConfig.
    Aac {
        /// The AudioSpecificConfig.
        asc: Bytes,
        /// Sample rate.
        sample_rate: u32,
        /// Channels.
        channels: u16,
    },
    /// G.711 (`A_MS/ACM` with WAVEFORMATEX format tag 6 or 7).
    G711 {
        /// µ-law (format tag 7) rather than A-law (6).
        mu_law: bool,
        /// Sample rate.
        sample_rate: u32,
        /// Channels.
        channels: u16,
    },
}

use vigil_mkv::{TrackEntry, TrackKind};

use crate::error::{Error, Result};

/// The sampling frequencies an AAC `samplingFrequencyIndex` names (ISO/IEC 14496-3 §1.6.3.4).
const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl Codec {
    /// Identifies a Matroska track's codec and parses its configuration: `V_MPEG4/ISO/AVC`
    /// (avcC, and its first SPS for the picture size), `V_MPEGH/ISO/HEVC` (hvcC; the picture
    /// size from the TrackEntry's Video element), `A_AAC` (AudioSpecificConfig) and `A_MS/ACM`
    /// (WAVEFORMATEX with format tag 6, A-law, or 7, µ-law).
    pub fn from_track(track: &TrackEntry) -> Result<Codec> {
        let n = track.number;
        let private = || {
            track
                .codec_private
                .clone()
                .filter(|p| !p.is_empty())
                .ok_or(Error::MissingCodecPrivate { track: n })
        };
        let invalid = |detail: &str| Error::InvalidCodecPrivate {
            track: n,
            detail: detail.to_owned(),
        };
        match track.codec_id.as_str() {
            "V_MPEG4/ISO/AVC" => {
                let avcc = private()?;
                let sps = avcc_first_sps(&avcc).ok_or_else(|| invalid("avcC without an SPS"))?;
                let (width, height) =
                    h264_sps_dimensions(sps).ok_or_else(|| invalid("SPS does not parse"))?;
                if avcc.len() < 7 || avcc.first() != Some(&1) {
                    return Err(invalid("not an avcC version 1 record"));
                }
                Ok(Codec::H264 {
                    avcc,
                    width,
                    height,
                })
            }
            "V_MPEGH/ISO/HEVC" => {
                let hvcc = private()?;
                if hvcc.len() < 23 || hvcc.first() != Some(&1) {
                    return Err(invalid("not an hvcC version 1 record"));
                }
                let video = track
                    .video
                    .filter(|v| v.pixel_width > 0 && v.pixel_height > 0)
                    .ok_or_else(|| invalid("no Video PixelWidth/PixelHeight"))?;
                let width = u32::try_from(video.pixel_width)
                    .map_err(|_| invalid("PixelWidth out of range"))?;
                let height = u32::try_from(video.pixel_height)
                    .map_err(|_| invalid("PixelHeight out of range"))?;
                Ok(Codec::H265 {
                    hvcc,
                    width,
                    height,
                })
            }
            "A_AAC" => {
                let asc = private()?;
                let (_, sample_rate, channels) =
                    parse_asc(&asc).ok_or_else(|| invalid("AudioSpecificConfig does not parse"))?;
                Ok(Codec::Aac {
                    asc,
                    sample_rate,
                    channels,
                })
            }
            "A_MS/ACM" => {
                let wfx = private()?;
                let u16_at = |i: usize| {
                    wfx.get(i..i + 2)
                        .and_then(|b| b.try_into().ok())
                        .map(u16::from_le_bytes)
                };
                let tag = u16_at(0).ok_or_else(|| invalid("WAVEFORMATEX too short"))?;
                let channels = u16_at(2).ok_or_else(|| invalid("WAVEFORMATEX too short"))?;
                let sample_rate = wfx
                    .get(4..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
                    .ok_or_else(|| invalid("WAVEFORMATEX too short"))?;
                if channels == 0 || sample_rate == 0 {
                    return Err(invalid("WAVEFORMATEX with no channels or sample rate"));
                }
                let mu_law = match tag {
                    6 => false,
                    7 => true,
                    other => {
                        return Err(Error::UnsupportedCodec {
                            format: "playback",
                            codec: format!("A_MS/ACM format tag {other}"),
                        });
                    }
                };
                Ok(Codec::G711 {
                    mu_law,
                    sample_rate,
                    channels,
                })
            }
            other => Err(Error::UnsupportedCodec {
                format: "playback",
                codec: other.to_owned(),
            }),
        }
    }

    /// The track kind this codec belongs to.
    pub fn kind(&self) -> TrackKind {
        match self {
            Codec::H264 { .. } | Codec::H265 { .. } => TrackKind::Video,
            Codec::Aac { .. } | Codec::G711 { .. } => TrackKind::Audio,
        }
    }

    /// Whether this is a video codec.
    pub fn is_video(&self) -> bool {
        self.kind() == TrackKind::Video
    }

    /// Picture size for video, `None` for audio.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self {
            Codec::H264 { width, height, .. } | Codec::H265 { width, height, .. } => {
                Some((*width, *height))
            }
            _ => None,
        }
    }

    /// Sample rate and channel count for audio, `None` for video.
    pub fn audio_format(&self) -> Option<(u32, u16)> {
        match self {
            Codec::Aac {
                sample_rate,
                channels,
                ..
            }
            | Codec::G711 {
                sample_rate,
                channels,
                ..
            } => Some((*sample_rate, *channels)),
            _ => None,
        }
    }

    /// The RFC 6381 codec string (HLS `CODECS`, DASH `@codecs`): `avc1.PPCCLL` from the avcC,
    /// `hvc1.<space><profile>.<compat>.<tier><level>.<constraints>` (ISO/IEC 14496-15 E.3)
    /// from the hvcC, `mp4a.40.<object type>` for AAC; `alaw`/`ulaw` (the MP4 sample entry
    /// names; G.711 has no RFC 6381 string and HLS cannot carry it).
    pub fn rfc6381(&self) -> String {
        match self {
            Codec::H264 { avcc, .. } => {
                let b = |i: usize| avcc.get(i).copied().unwrap_or(0);
                format!("avc1.{:02x}{:02x}{:02x}", b(1), b(2), b(3))
            }
            Codec::H265 { hvcc, .. } => hevc_codec_string(hvcc),
            Codec::Aac { asc, .. } => {
                let aot = parse_asc(asc).map_or(2, |(aot, _, _)| aot);
                format!("mp4a.40.{aot}")
            }
            Codec::G711 { mu_law, .. } => if *mu_law { "ulaw" } else { "alaw" }.to_owned(),
        }
    }
}

/// `hvc1.…` from an hvcC record (ISO/IEC 14496-15 Annex E.3).
fn hevc_codec_string(hvcc: &[u8]) -> String {
    let b = |i: usize| hvcc.get(i).copied().unwrap_or(0);
    let space = match b(1) >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if b(1) & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b(1) & 0x1f;
    let compat = u32::from_be_bytes([b(2), b(3), b(4), b(5)]).reverse_bits();
    let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{}", b(12));
    // The six constraint bytes, trailing zero bytes left out.
    let constraints: Vec<u8> = (6..12).map(b).collect();
    let keep = constraints
        .iter()
        .rposition(|&c| c != 0)
        .map_or(0, |i| i + 1);
    for c in constraints.iter().take(keep) {
        s.push_str(&format!(".{c:X}"));
    }
    s
}

/// The first SPS NAL unit of an avcC record.
fn avcc_first_sps(avcc: &[u8]) -> Option<&[u8]> {
    let count = avcc.get(5)? & 0x1f;
    if count == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*avcc.get(6)?, *avcc.get(7)?]));
    avcc.get(8..8usize.checked_add(len)?)
}

/// The AudioSpecificConfig's object type, sampling frequency and channel count
/// (ISO/IEC 14496-3 §1.6.2.1). Channel configuration 0 (a program config element) reads as 2.
fn parse_asc(asc: &[u8]) -> Option<(u8, u32, u16)> {
    let mut r = BitReader::new(asc);
    let mut aot = r.bits(5)?;
    if aot == 31 {
        aot = 32 + r.bits(6)?;
    }
    let index = r.bits(4)?;
    let sample_rate = if index == 15 {
        r.bits(24)?
    } else {
        *AAC_SAMPLE_RATES.get(usize::try_from(index).ok()?)?
    };
    let channel_config = r.bits(4)?;
    let channels = match channel_config {
        0 => 2,
        1..=6 => channel_config as u16,
        7 => 8,
        _ => return None,
    };
    if sample_rate == 0 {
        return None;
    }
    Some((u8::try_from(aot).ok()?, sample_rate, channels))
}

/// Width and height (after frame cropping) from an H.264 SPS NAL unit (ITU-T H.264 §7.3.2.1.1,
/// §7.4.2.1.1). `None` where it does not parse.
pub(crate) fn h264_sps_dimensions(nal: &[u8]) -> Option<(u32, u32)> {
    // Drop the NAL header and the emulation prevention bytes (00 00 03).
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal.get(1..)? {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            let delta = r.se()?;
                            next = (last + delta).rem_euclid(256);
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? {
        left = r.ue()?.into();
        right = r.ue()?.into();
        top = r.ue()?.into();
        bottom = r.ue()?.into();
    }
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (crop_x, crop_y) = if separate_colour_plane || chroma_format_idc == 0 {
        (1, field_factor)
    } else {
        let sub_width = if chroma_format_idc == 3 { 1 } else { 2 };
        let sub_height = if chroma_format_idc == 1 { 2 } else { 1 };
        (sub_width, sub_height * field_factor)
    };
    let width = (width_mbs * 16).checked_sub(crop_x * (left + right))?;
    let height = (field_factor * height_map_units * 16).checked_sub(crop_y * (top + bottom))?;
    if width == 0 || height == 0 {
        return None;
    }
    Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
}

/// A big-endian bit reader with Exp-Golomb codes.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Some(v)
    }

    /// ue(v).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        u32::try_from((1u64 << zeros) - 1 + u64::from(rest)).ok()
    }

    /// se(v).
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use vigil_mkv::{Demuxer, Event};

    fn tracks(path: &str) -> Vec<TrackEntry> {
        let data = std::fs::read(path).unwrap();
        // The track header is at the front; read the first 64 KiB.
        let head = &data[..data.len().min(65536)];
        let mut d = Demuxer::new();
        d.push(head);
        while let Some(ev) = d.pull() {
            if let Event::Tracks { tracks, .. } = ev.unwrap() {
                return tracks;
            }
        }
        panic!("no Tracks in {path}");
    }

    fn codecs(path: &str) -> Vec<Codec> {
        tracks(path)
            .iter()
            .map(|t| Codec::from_track(t).unwrap())
            .collect()
    }

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    #[test]
    fn ffmpeg_h264() {
        let c = codecs(&format!("{ROOT}/testdata/ffmpeg_h264.mkv"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].dimensions(), Some((320, 240)), "{c:?}");
        assert!(c[0].rfc6381().starts_with("avc1.64"), "{}", c[0].rfc6381());
    }

    #[test]
    fn ffmpeg_h264_aac() {
        let c = codecs(&format!("{ROOT}/testdata/ffmpeg_h264-aac.mkv"));
        assert_eq!(c.len(), 2);
        assert!(c[0].is_video());
        assert_eq!(c[1].audio_format(), Some((48000, 2)));
        assert_eq!(c[1].rfc6381(), "mp4a.40.2");
    }

    #[test]
    fn ffmpeg_h265() {
        let c = codecs(&format!("{ROOT}/testdata/ffmpeg_h265.mkv"));
        assert_eq!(c.len(), 1);
        assert!(
            c[0].rfc6381().starts_with("hvc1.1.6.L"),
            "{}",
            c[0].rfc6381()
        );
        assert!(c[0].dimensions().is_some());
    }

    #[test]
    fn kvs_producer_c() {
        for name in ["video", "av"] {
            let c = codecs(&format!(
                "{ROOT}/../shared/testdata/kvs-producer-c/{name}/putmedia-body.mkv"
            ));
            assert!(c[0].is_video(), "{name}: {c:?}");
            let (w, h) = c[0].dimensions().unwrap();
            assert!(w > 0 && h > 0);
            eprintln!(
                "{name}: {:?}",
                c.iter().map(Codec::rfc6381).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn hevc_string_example() {
        // ISO/IEC 14496-15 E.3's example: Main profile, Main tier, level 3.1, constraint 0xB0.
        let mut hvcc = vec![1u8, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93];
        hvcc.resize(23, 0);
        assert_eq!(hevc_codec_string(&hvcc), "hvc1.1.6.L93.B0");
    }

    #[test]
    fn sps_with_cropping() {
        // x264 1920x1080 High profile SPS: 1088 coded lines cropped by 8.
        let sps = [
            0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00,
            0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
        ];
        assert_eq!(h264_sps_dimensions(&sps), Some((1920, 1080)));
    }

    #[test]
    fn asc_and_g711() {
        assert_eq!(parse_asc(&[0x12, 0x10]), Some((2, 44100, 2)));
        assert_eq!(parse_asc(&[0x11, 0x90]), Some((2, 48000, 2)));
        let mut t = TrackEntry {
            number: 2,
            track_type: 2,
            codec_id: "A_MS/ACM".into(),
            ..Default::default()
        };
        let mut wfx = vec![
            7, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x40, 0x1f, 0, 0, 1, 0, 8, 0, 0, 0,
        ];
        t.codec_private = Some(Bytes::from(wfx.clone()));
        let c = Codec::from_track(&t).unwrap();
        assert_eq!(
            c,
            Codec::G711 {
                mu_law: true,
                sample_rate: 8000,
                channels: 1
            }
        );
        wfx[0] = 1;
        t.codec_private = Some(Bytes::from(wfx));
        assert!(matches!(
            Codec::from_track(&t),
            Err(Error::UnsupportedCodec { .. })
        ));
        t.codec_private = None;
        assert_eq!(
            Codec::from_track(&t),
            Err(Error::MissingCodecPrivate { track: 2 })
        );
        t.codec_private = Some(Bytes::from_static(&[1, 2]));
        assert!(matches!(
            Codec::from_track(&t),
            Err(Error::InvalidCodecPrivate { .. })
        ));
    }
}
