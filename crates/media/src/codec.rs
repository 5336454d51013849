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

    /// The codec's common name: `H.264`, `H.265`, `AAC`, `G.711 A-law`, `G.711 µ-law`.
    pub fn display_name(&self) -> &'static str {
        match self {
            Codec::H264 { .. } => "H.264",
            Codec::H265 { .. } => "H.265",
            Codec::Aac { .. } => "AAC",
            Codec::G711 { mu_law: false, .. } => "G.711 A-law",
            Codec::G711 { mu_law: true, .. } => "G.711 µ-law",
        }
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

    /// How many frames a decoder may have to hold back before output (the reorder depth; 0
    /// without B-frames), as the stream declares it: for H.264, the first SPS's VUI
    /// `max_num_reorder_frames` where it has `bitstream_restriction_flag` (the syntax has
    /// `max_dec_frame_buffering` only beside it, never alone); without it, 0 for Baseline (`profile_idc` 66, constrained
    /// or not), the intra-only profiles (44, and 100/110/122/244 with `constraint_set3_flag`) and
    /// an SPS with `max_num_ref_frames` 0, else the DPB size in frames the level allows
    /// (MaxDpbMbs of Table A-1 over the frame's macroblocks; 16 for an unknown level). For H.265,
    /// the first SPS's `sps_max_num_reorder_pics` of the highest sub-layer, 0 where the hvcC has
    /// no SPS or it does not parse. Audio: 0. Never more than [`MAX_REORDER_FRAMES`].
    pub fn reorder_frames(&self) -> u32 {
        let n = match self {
            Codec::H264 { avcc, .. } => avcc_first_sps(avcc)
                .and_then(h264_sps)
                .map_or(0, |sps| sps.reorder_frames),
            Codec::H265 { hvcc, .. } => h265_reorder_pics(hvcc).unwrap_or(0),
            Codec::Aac { .. } | Codec::G711 { .. } => 0,
        };
        n.min(MAX_REORDER_FRAMES)
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
    h264_sps(nal).map(|sps| (sps.width, sps.height))
}

/// What [`h264_sps`] reads from an SPS.
struct H264Sps {
    width: u32,
    height: u32,
    /// The reorder depth in frames (see [`Codec::reorder_frames`]).
    reorder_frames: u32,
}

/// Level limits on the decoded picture buffer: (`level_idc`, MaxDpbMbs), ITU-T H.264 Table A-1.
const H264_MAX_DPB_MBS: [(u32, u64); 20] = [
    (9, 396),
    (10, 396),
    (11, 900),
    (12, 2376),
    (13, 2376),
    (20, 2376),
    (21, 4752),
    (22, 8100),
    (30, 8100),
    (31, 18000),
    (32, 20480),
    (40, 32768),
    (41, 32768),
    (42, 34816),
    (50, 110_400),
    (51, 184_320),
    (52, 184_320),
    (60, 696_320),
    (61, 696_320),
    (62, 696_320),
];

/// The most frames a decoder may hold back (H.264's and H.265's DPB bound).
pub const MAX_REORDER_FRAMES: u32 = 16;

/// Drops a NAL unit's header (`header_len` bytes) and its emulation prevention bytes (00 00 03).
fn rbsp(nal: &[u8], header_len: usize) -> Option<Vec<u8>> {
    let mut rbsp = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal.get(header_len..)? {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    Some(rbsp)
}

/// Skips an H.264 `hrd_parameters()` (Annex E.1.2).
fn skip_h264_hrd(r: &mut BitReader<'_>) -> Option<()> {
    let cpb_cnt = r.ue()?.checked_add(1)?;
    if cpb_cnt > 32 {
        return None;
    }
    r.bits(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?;
        r.ue()?;
        r.bit()?;
    }
    r.bits(20)?; // four 5-bit lengths
    Some(())
}

/// Picture size (after frame cropping) and reorder depth from an H.264 SPS NAL unit (ITU-T
/// H.264 §7.3.2.1.1, §7.4.2.1.1, Annex E). `None` where it does not parse up to the cropping;
/// a VUI that does not parse counts as absent.
fn h264_sps(nal: &[u8]) -> Option<H264Sps> {
    let rbsp = rbsp(nal, 1)?;
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)?;
    let constraint_flags = r.bits(8)?;
    let level_idc = r.bits(8)?;
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
    let max_num_ref_frames = r.ue()?;
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
    let frame_mbs = width_mbs * field_factor * height_map_units;
    let declared = h264_vui_reorder(&mut r);
    let reorder_frames = match declared {
        Some(n) => n,
        None => {
            let constraint_set3 = constraint_flags & 0x10 != 0;
            let intra_only = profile_idc == 44
                || (constraint_set3 && matches!(profile_idc, 100 | 110 | 122 | 244));
            if profile_idc == 66 || intra_only || max_num_ref_frames == 0 {
                0
            } else {
                H264_MAX_DPB_MBS
                    .iter()
                    .find(|(level, _)| *level == level_idc)
                    .and_then(|(_, mbs)| mbs.checked_div(frame_mbs))
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(MAX_REORDER_FRAMES)
            }
        }
    };
    Some(H264Sps {
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        reorder_frames: reorder_frames.min(MAX_REORDER_FRAMES),
    })
}

/// The VUI's `max_num_reorder_frames` where the SPS has a VUI
/// with `bitstream_restriction_flag` set; `r` is just past `frame_cropping`.
fn h264_vui_reorder(r: &mut BitReader<'_>) -> Option<u32> {
    if !r.bit()? {
        return None; // vui_parameters_present_flag
    }
    if r.bit()? && r.bits(8)? == 255 {
        r.bits(32)?; // sar_width, sar_height
    }
    if r.bit()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.bit()? {
        r.bits(4)?; // video_format, video_full_range_flag
        if r.bit()? {
            r.bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.bit()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?;
    }
    if r.bit()? {
        r.bits(32)?; // num_units_in_tick
        r.bits(32)?; // time_scale
        r.bit()?; // fixed_frame_rate_flag
    }
    let nal_hrd = r.bit()?;
    if nal_hrd {
        skip_h264_hrd(r)?;
    }
    let vcl_hrd = r.bit()?;
    if vcl_hrd {
        skip_h264_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.bit()?; // low_delay_hrd_flag
    }
    r.bit()?; // pic_struct_present_flag
    if !r.bit()? {
        return None; // bitstream_restriction_flag
    }
    r.bit()?; // motion_vectors_over_pic_boundaries_flag
    for _ in 0..4 {
        r.ue()?; // max_bytes_per_pic_denom … log2_max_mv_length_vertical
    }
    r.ue() // max_num_reorder_frames (max_dec_frame_buffering follows; it is never alone)
}

/// `sps_max_num_reorder_pics` of the highest sub-layer, from the first SPS (NAL unit type 33)
/// of an hvcC record (ITU-T H.265 §7.3.2.2.1). `None` where there is none or it does not parse.
fn h265_reorder_pics(hvcc: &[u8]) -> Option<u32> {
    let arrays = *hvcc.get(22)?;
    let mut at = 23usize;
    for _ in 0..arrays {
        let nal_type = hvcc.get(at)? & 0x3f;
        let count = u16::from_be_bytes([*hvcc.get(at + 1)?, *hvcc.get(at + 2)?]);
        at = at.checked_add(3)?;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([*hvcc.get(at)?, *hvcc.get(at + 1)?]));
            let nal = hvcc.get(at + 2..at.checked_add(2 + len)?)?;
            if nal_type == 33 {
                return h265_sps_reorder(nal);
            }
            at = at.checked_add(2 + len)?;
        }
    }
    None
}

fn h265_sps_reorder(nal: &[u8]) -> Option<u32> {
    h265_sps(nal)?.reorder
}

/// What [`h265_sps`] reads from an H.265 SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H265Sps {
    /// Picture size after the conformance window.
    pub width: u32,
    pub height: u32,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    /// The general profile_tier_level bytes (12: profile space/tier/idc, 32 compatibility
    /// flags, 48 constraint flags, level_idc), as hvcC carries them.
    pub general_ptl: [u8; 12],
    pub temporal_id_nesting: bool,
    pub max_sub_layers: u32,
    /// `sps_max_num_reorder_pics` of the highest sub-layer.
    pub reorder: Option<u32>,
}

/// Parses an H.265 SPS NAL unit (with its 2-byte header; ITU-T H.265 §7.3.2.2.1) up to the
/// reorder depth. `None` where it does not parse.
pub fn h265_sps(nal: &[u8]) -> Option<H265Sps> {
    let rbsp = rbsp(nal, 2)?;
    let mut r = BitReader::new(&rbsp);
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    let temporal_id_nesting = r.bit()?;
    // profile_tier_level(1, max_sub_layers_minus1): general profile (88 bits) and level (8).
    let mut general_ptl = [0u8; 12];
    for b in general_ptl.iter_mut() {
        *b = u8::try_from(r.bits(8)?).ok()?;
    }
    let mut sub_layers = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        sub_layers.push((r.bit()?, r.bit()?));
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.bits(2)?; // reserved_zero_2bits
        }
    }
    for (profile, level) in sub_layers {
        if profile {
            r.bits(32)?;
            r.bits(32)?;
            r.bits(24)?;
        }
        if level {
            r.bits(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    let separate_colour_plane = chroma_format_idc == 3 && r.bit()?;
    let mut width = r.ue()?; // pic_width_in_luma_samples
    let mut height = r.ue()?; // pic_height_in_luma_samples
    if r.bit()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, false) => (2, 2),
            (2, false) => (2, 1),
            _ => (1, 1),
        };
        // The offsets are ue(v), up to 2^32 - 2 each: their sum, and that times the chroma
        // subsampling, can pass u32 (a fuzz finding).
        width = width.checked_sub(left.checked_add(right)?.checked_mul(sub_w)?)?;
        height = height.checked_sub(top.checked_add(bottom)?.checked_mul(sub_h)?)?;
    }
    let bit_depth_luma = r.ue()?.checked_add(8)?;
    let bit_depth_chroma = r.ue()?.checked_add(8)?;
    r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
    let first = if r.bit()? { 0 } else { max_sub_layers_minus1 };
    let mut reorder = None;
    for _ in first..=max_sub_layers_minus1 {
        r.ue()?; // sps_max_dec_pic_buffering_minus1
        reorder = Some(r.ue()?);
        r.ue()?; // sps_max_latency_increase_plus1
    }
    Some(H265Sps {
        width,
        height,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        general_ptl,
        temporal_id_nesting,
        max_sub_layers: max_sub_layers_minus1 + 1,
        reorder,
    })
}

/// Width and height (after cropping) of an H.264 SPS NAL unit (with its header byte).
pub fn h264_sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    h264_sps_dimensions(nal)
}

/// An `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1, the `avcC` payload and
/// Matroska's CodecPrivate for `V_MPEG4/ISO/AVC`) for 4-byte NAL lengths, from SPS and PPS NAL
/// units (with their header bytes). `None` if there is no SPS, a unit is longer than 65535
/// bytes, or there are more than 31 SPS or 255 PPS.
pub fn avc_decoder_config(sps: &[&[u8]], pps: &[&[u8]]) -> Option<Vec<u8>> {
    let first = sps.first()?;
    if sps.len() > 31 || pps.len() > 255 {
        return None;
    }
    let mut out = vec![
        1,
        *first.get(1)?,
        *first.get(2)?,
        *first.get(3)?,
        0xFC | 3,
        0xE0 | u8::try_from(sps.len()).ok()?,
    ];
    for s in sps {
        out.extend_from_slice(&u16::try_from(s.len()).ok()?.to_be_bytes());
        out.extend_from_slice(s);
    }
    out.push(u8::try_from(pps.len()).ok()?);
    for p in pps {
        out.extend_from_slice(&u16::try_from(p.len()).ok()?.to_be_bytes());
        out.extend_from_slice(p);
    }
    Some(out)
}

/// An `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1, the `hvcC` payload and
/// Matroska's CodecPrivate for `V_MPEGH/ISO/HEVC`) for 4-byte NAL lengths, from VPS, SPS and
/// PPS NAL units (with their 2-byte headers); the header fields come from the first SPS.
/// `None` if the SPS does not parse or a unit is longer than 65535 bytes.
pub fn hevc_decoder_config(vps: &[&[u8]], sps: &[&[u8]], pps: &[&[u8]]) -> Option<Vec<u8>> {
    let info = h265_sps(sps.first()?)?;
    let mut out = Vec::with_capacity(64);
    out.push(1); // configurationVersion
    out.extend_from_slice(&info.general_ptl);
    out.extend_from_slice(&[0xF0, 0x00]); // min_spatial_segmentation_idc 0
    out.push(0xFC); // parallelismType 0
    out.push(0xFC | u8::try_from(info.chroma_format_idc & 3).ok()?);
    out.push(0xF8 | u8::try_from(info.bit_depth_luma.checked_sub(8)? & 7).ok()?);
    out.push(0xF8 | u8::try_from(info.bit_depth_chroma.checked_sub(8)? & 7).ok()?);
    out.extend_from_slice(&[0, 0]); // avgFrameRate unknown
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    out.push(
        (u8::try_from(info.max_sub_layers & 7).ok()? << 3)
            | (u8::from(info.temporal_id_nesting) << 2)
            | 3,
    );
    let arrays: Vec<(u8, &[&[u8]])> = [(32u8, vps), (33, sps), (34, pps)]
        .into_iter()
        .filter(|(_, units)| !units.is_empty())
        .collect();
    out.push(u8::try_from(arrays.len()).ok()?);
    for (nal_type, units) in arrays {
        out.push(0x80 | nal_type); // array_completeness 1
        out.extend_from_slice(&u16::try_from(units.len()).ok()?.to_be_bytes());
        for u in units {
            out.extend_from_slice(&u16::try_from(u.len()).ok()?.to_be_bytes());
            out.extend_from_slice(u);
        }
    }
    Some(out)
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

    /// A capture of the official KVS producer SDK, in the `shared/` folder beside the
    /// repository (or where `VIGIL_SHARED_DIR` says).
    fn kvs_capture(name: &str) -> String {
        let rel = std::path::Path::new("testdata/kvs-producer-c").join(name);
        if let Some(dir) = std::env::var_os("VIGIL_SHARED_DIR").filter(|d| !d.is_empty()) {
            return std::path::PathBuf::from(dir)
                .join(rel)
                .display()
                .to_string();
        }
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|d| d.join("shared").join(&rel))
            .find(|p| p.exists())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| panic!("{} not found in a shared/ folder", rel.display()))
    }

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
            let c = codecs(&kvs_capture(&format!("{name}/putmedia-body.mkv")));
            assert!(c[0].is_video(), "{name}: {c:?}");
            let (w, h) = c[0].dimensions().unwrap();
            assert!(w > 0 && h > 0);
            eprintln!(
                "{name}: {:?}",
                c.iter().map(Codec::rfc6381).collect::<Vec<_>>()
            );
        }
    }

    /// The reorder depth matches what ffmpeg reads (`ffprobe -show_entries stream=has_b_frames`).
    #[test]
    fn reorder_frames_as_ffmpeg_reads_them() {
        for (path, want) in [
            ("testdata/ffmpeg_h264.mkv", 2),
            ("testdata/ffmpeg_h264-aac.mkv", 2),
            ("testdata/ffmpeg_h264-blockgroups.mkv", 2),
            ("testdata/mkvmerge_h264-aac-laced.mkv", 2),
            ("testdata/gstreamer_h264-streamable.mkv", 0),
            ("testdata/ffmpeg_h265.mkv", 2),
            ("kvs:video/putmedia-body.mkv", 0),
            ("kvs:av/putmedia-body.mkv", 0),
        ] {
            let file = match path.strip_prefix("kvs:") {
                Some(capture) => kvs_capture(capture),
                None => format!("{ROOT}/{path}"),
            };
            let c: Vec<Codec> = tracks(&file)
                .iter()
                .filter_map(|t| Codec::from_track(t).ok())
                .collect();
            assert_eq!(c[0].reorder_frames(), want, "{path}");
            assert_eq!(c.get(1).map_or(0, Codec::reorder_frames), 0, "{path}");
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
        // x264's VUI declares a reorder depth of 2 (`bitstream_restriction_flag`).
        assert_eq!(h264_sps(&sps).unwrap().reorder_frames, 2);
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
