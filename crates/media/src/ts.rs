//! MPEG-2 Transport Stream segments for HLS `MPEG_TS` playback (ISO/IEC 13818-1; HLS segment
//! rules in RFC 8216 §3.2; KVS `getTSFragment.ts`, `../shared/spec/kvs-api.md` §4.3).
//!
//! [`segment`] turns one fragment's tracks and samples into a self-contained TS segment: a PAT
//! and a PMT first, then one PES per sample, interleaved by decode time. Each track gets its own
//! PID ([`FIRST_ES_PID`] + its index in `tracks`):
//!
//! - H.264 (stream type 0x1B): the length-prefixed NAL units Matroska carries become Annex B
//!   (start codes); every access unit starts with an access unit delimiter, and key frames get
//!   the SPS and PPS of the `avcC` record in front of them, so every segment decodes alone.
//! - AAC (stream type 0x0F): each raw frame gets an ADTS header built from the
//!   AudioSpecificConfig.
//!
//! H.265 and G.711 are refused ([`Error::UnsupportedCodec`]): KVS serves neither over TS (§6.1).
//!
//! Times are rescaled to 90 kHz and wrapped to 33 bits. The PCR rides on the first video PID
//! (on the audio PID for audio-only streams), on every PES start of that PID, equal to the DTS.
//! Continuity counters live in [`Continuity`], which the caller keeps from one segment to the
//! next of a session so that a player reading consecutive segments sees no counter jumps.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::sample::{Sample, Track};

/// The size of a TS packet.
pub const PACKET_SIZE: usize = 188;
/// The PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// The PID of the first track's elementary stream; track `i` of `tracks` gets `FIRST_ES_PID + i`.
pub const FIRST_ES_PID: u16 = 0x100;
/// The program number of the single program.
const PROGRAM_NUMBER: u16 = 1;
/// The transport_stream_id.
const TRANSPORT_STREAM_ID: u16 = 1;
/// PTS, DTS and PCR base wrap at 2^33.
const WRAP_33: i128 = 1 << 33;
const STREAM_TYPE_H264: u8 = 0x1B;
const STREAM_TYPE_AAC: u8 = 0x0F;

/// The continuity counters of a session's PIDs, carried from one segment to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Continuity {
    counters: BTreeMap<u16, u8>,
}

impl Continuity {
    /// New counters: every PID's first packet carries 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter for the next packet of `pid` (4 bits), advancing it.
    fn next(&mut self, pid: u16) -> u8 {
        let counter = self.counters.entry(pid).or_insert(0);
        let value = *counter;
        *counter = (value + 1) & 0x0F;
        value
    }
}

/// One elementary stream of the program.
#[derive(Debug)]
struct Stream<'a> {
    track: &'a Track,
    pid: u16,
    kind: StreamKind,
}

#[derive(Debug)]
enum StreamKind {
    H264(AvcConfig),
    Aac(AdtsConfig),
}

impl StreamKind {
    fn stream_type(&self) -> u8 {
        match self {
            StreamKind::H264(_) => STREAM_TYPE_H264,
            StreamKind::Aac(_) => STREAM_TYPE_AAC,
        }
    }

    fn stream_id(&self) -> u8 {
        match self {
            StreamKind::H264(_) => 0xE0,
            StreamKind::Aac(_) => 0xC0,
        }
    }
}

/// Writes one TS segment holding `samples` (of any of `tracks`, in any order; they are
/// interleaved by decode time, ties kept in input order).
///
/// Errors: [`Error::UnsupportedCodec`] for H.265 and G.711, [`Error::InvalidCodecPrivate`] for
/// an `avcC` or AudioSpecificConfig that does not parse, [`Error::InvalidFrame`] for a sample of
/// an unknown track or with a NAL length running past the frame, [`Error::Limit`] for no tracks,
/// more than 16 tracks, a zero timescale or an AAC frame too large for ADTS.
pub fn segment(tracks: &[Track], samples: &[Sample], continuity: &mut Continuity) -> Result<Bytes> {
    let writer = SegmentWriter::new(tracks.to_vec(), samples.to_vec())?;
    let mut out =
        Vec::with_capacity(samples.iter().map(|s| s.data.len()).sum::<usize>() * 11 / 10 + 1024);
    writer.start(&mut out, continuity)?;
    for &index in writer.order() {
        let Some(sample) = samples.get(index) else {
            continue;
        };
        writer.write(&mut out, index, &sample.data, continuity)?;
    }
    Ok(Bytes::from(out))
}

/// [`segment`] a sample at a time, for samples whose bytes are fetched as they are written:
/// built from the samples' times alone (their `data` may be empty), it says the order in
/// which they go ([`SegmentWriter::order`]), and writes each one from its bytes.
#[derive(Debug)]
pub struct SegmentWriter {
    tracks: Vec<Track>,
    samples: Vec<Sample>,
    /// Per track: its PID and how its frames are written.
    kinds: Vec<(u16, StreamKind)>,
    pcr_pid: u16,
    /// Per sample: its decode time at 90 kHz and its track's index.
    per_sample: Vec<(i128, usize)>,
    /// The samples' indices in writing order.
    indices: Vec<usize>,
}

impl SegmentWriter {
    /// A writer for `samples` of `tracks` (errors as [`segment`]'s).
    pub fn new(tracks: Vec<Track>, samples: Vec<Sample>) -> Result<Self> {
        let streams = streams(&tracks)?;
        let pcr_pid = streams
            .iter()
            .find(|s| matches!(s.kind, StreamKind::H264(_)))
            .or_else(|| streams.first())
            .map(|s| s.pid)
            .ok_or_else(|| Error::Limit("MPEG-TS segment without tracks".into()))?;
        let mut per_sample = Vec::with_capacity(samples.len());
        for sample in &samples {
            let (si, stream) = streams
                .iter()
                .enumerate()
                .find(|(_, s)| s.track.number == sample.track)
                .ok_or_else(|| Error::InvalidFrame {
                    track: sample.track,
                    detail: "sample of a track not in the segment's track list".into(),
                })?;
            per_sample.push((rescale_90k(sample.dts, stream.track.timescale)?, si));
        }
        let mut indices: Vec<usize> = (0..samples.len()).collect();
        indices.sort_by_key(|&i| (per_sample.get(i).map_or(0, |p| p.0), i));
        let kinds = streams.into_iter().map(|s| (s.pid, s.kind)).collect();
        Ok(Self {
            tracks,
            samples,
            kinds,
            pcr_pid,
            per_sample,
            indices,
        })
    }

    /// The samples' indices in the order they are written.
    pub fn order(&self) -> &[usize] {
        &self.indices
    }

    /// The segment's start: its PAT and PMT.
    pub fn start(&self, out: &mut Vec<u8>, continuity: &mut Continuity) -> Result<()> {
        let streams = streams(&self.tracks)?;
        write_section_packets(out, 0, &pat_section(), continuity);
        write_section_packets(
            out,
            PMT_PID,
            &pmt_section(&streams, self.pcr_pid),
            continuity,
        );
        Ok(())
    }

    /// Writes sample `index` from its bytes `data` (the samples go in [`Self::order`]).
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        index: usize,
        data: &[u8],
        continuity: &mut Continuity,
    ) -> Result<()> {
        let missing = || Error::Limit(format!("no sample {index} in the segment"));
        let &(dts, si) = self.per_sample.get(index).ok_or_else(missing)?;
        let (pid, kind) = self.kinds.get(si).ok_or_else(missing)?;
        let track = self.tracks.get(si).ok_or_else(missing)?;
        let meta = self.samples.get(index).ok_or_else(missing)?;
        let sample = Sample {
            data: Bytes::copy_from_slice(data),
            ..meta.clone()
        };
        let mut es = Vec::new();
        match kind {
            StreamKind::H264(config) => annex_b_access_unit(&mut es, config, &sample)?,
            StreamKind::Aac(config) => config.write_frame(&mut es, &sample)?,
        }
        let pts = wrap_33(rescale_90k(sample.pts, track.timescale)?);
        let dts = wrap_33(dts);
        let video = matches!(kind, StreamKind::H264(_));
        let pes = pes_packet(
            kind.stream_id(),
            pts,
            (dts != pts).then_some(dts),
            &es,
            video,
        )
        .ok_or_else(|| {
            Error::Limit(format!(
                "track {}: frame of {} bytes too large for one PES packet",
                sample.track,
                data.len()
            ))
        })?;
        let pcr = (*pid == self.pcr_pid).then_some(dts);
        write_packets(out, *pid, &pes, pcr, sample.keyframe, continuity);
        Ok(())
    }
}

fn streams(tracks: &[Track]) -> Result<Vec<Stream<'_>>> {
    if tracks.len() > 16 {
        return Err(Error::Limit(format!(
            "{} tracks in one MPEG-TS segment",
            tracks.len()
        )));
    }
    let mut streams = Vec::with_capacity(tracks.len());
    for (pid, track) in (FIRST_ES_PID..).zip(tracks) {
        if track.timescale == 0 {
            return Err(Error::Limit(format!("track {}: timescale 0", track.number)));
        }
        let kind = match &track.codec {
            Codec::H264 { avcc, .. } => StreamKind::H264(AvcConfig::parse(track.number, avcc)?),
            Codec::Aac { asc, .. } => StreamKind::Aac(AdtsConfig::parse(track.number, asc)?),
            Codec::H265 { .. } => return Err(unsupported("H.265")),
            Codec::G711 { .. } => return Err(unsupported("G.711")),
        };
        streams.push(Stream { track, pid, kind });
    }
    Ok(streams)
}

fn unsupported(codec: &str) -> Error {
    Error::UnsupportedCodec {
        format: "MPEG-TS",
        codec: codec.into(),
    }
}

/// `ticks` of `timescale` in 90 kHz units (floor), not yet wrapped.
fn rescale_90k(ticks: i64, timescale: u32) -> Result<i128> {
    if timescale == 0 {
        return Err(Error::Limit("timescale 0".into()));
    }
    Ok((i128::from(ticks) * 90_000).div_euclid(i128::from(timescale)))
}

fn wrap_33(ticks_90k: i128) -> u64 {
    // rem_euclid of a positive modulus is in 0..2^33, which fits a u64.
    u64::try_from(ticks_90k.rem_euclid(WRAP_33)).unwrap_or(0)
}

// ---- H.264 -------------------------------------------------------------------------------

/// What the `avcC` record gives the TS writer: the NAL length size and the parameter sets.
#[derive(Debug)]
struct AvcConfig {
    track: u64,
    length_size: usize,
    parameter_sets: Vec<u8>,
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
    fn parse(track: u64, avcc: &[u8]) -> Result<Self> {
        let invalid = |detail: &str| Error::InvalidCodecPrivate {
            track,
            detail: format!("avcC: {detail}"),
        };
        let mut r = Reader(avcc);
        let version = r.u8().ok_or_else(|| invalid("empty"))?;
        if version != 1 {
            return Err(invalid(&format!("configurationVersion {version}")));
        }
        r.take(3).ok_or_else(|| invalid("truncated"))?;
        let length_size = usize::from(r.u8().ok_or_else(|| invalid("truncated"))? & 0x03) + 1;
        if length_size == 3 {
            return Err(invalid("lengthSizeMinusOne 2"));
        }
        let mut parameter_sets = Vec::new();
        let sps_count = r.u8().ok_or_else(|| invalid("truncated"))? & 0x1F;
        for _ in 0..sps_count {
            let sps = r.u16_prefixed().ok_or_else(|| invalid("truncated SPS"))?;
            parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
            parameter_sets.extend_from_slice(sps);
        }
        let pps_count = r.u8().ok_or_else(|| invalid("truncated"))?;
        for _ in 0..pps_count {
            let pps = r.u16_prefixed().ok_or_else(|| invalid("truncated PPS"))?;
            parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
            parameter_sets.extend_from_slice(pps);
        }
        Ok(Self {
            track,
            length_size,
            parameter_sets,
        })
    }
}

/// Writes an access unit in Annex B form: AUD, SPS/PPS before key frames, then the frame's NAL
/// units (its own AUDs dropped).
fn annex_b_access_unit(out: &mut Vec<u8>, config: &AvcConfig, sample: &Sample) -> Result<()> {
    out.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xF0]);
    if sample.keyframe {
        out.extend_from_slice(&config.parameter_sets);
    }
    let mut r = Reader(&sample.data);
    while !r.0.is_empty() {
        let invalid = |detail: String| Error::InvalidFrame {
            track: config.track,
            detail,
        };
        let len_bytes = r
            .take(config.length_size)
            .ok_or_else(|| invalid("truncated NAL length".into()))?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let nal = r.take(len).ok_or_else(|| {
            invalid(format!(
                "NAL length {len} runs past the frame ({} bytes left)",
                r.0.len()
            ))
        })?;
        match nal.first() {
            None => continue,
            Some(header) if header & 0x1F == 9 => continue,
            Some(_) => {}
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    Ok(())
}

// ---- AAC ---------------------------------------------------------------------------------

/// The fixed part of an ADTS header, from the AudioSpecificConfig.
#[derive(Debug)]
struct AdtsConfig {
    track: u64,
    /// ADTS profile: audio object type - 1.
    profile: u8,
    sampling_frequency_index: u8,
    channel_configuration: u8,
}

impl AdtsConfig {
    /// Parses an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) far enough for ADTS: object
    /// types 1-4 (Main, LC, SSR, LTP), and explicitly signalled SBR/PS (5, 29) whose core
    /// object type is one of those.
    fn parse(track: u64, asc: &[u8]) -> Result<Self> {
        let invalid = |detail: String| Error::InvalidCodecPrivate {
            track,
            detail: format!("AudioSpecificConfig: {detail}"),
        };
        let mut bits = BitReader::new(asc);
        let truncated = || invalid("truncated".into());
        let mut object_type = read_object_type(&mut bits).ok_or_else(truncated)?;
        let sampling_frequency_index = read_frequency_index(&mut bits).ok_or_else(truncated)?;
        let channel_configuration = bits.read(4).ok_or_else(truncated)? as u8;
        if object_type == 5 || object_type == 29 {
            // Extension sampling frequency, then the core object type; ADTS carries the core.
            read_frequency_index(&mut bits).ok_or_else(truncated)?;
            object_type = read_object_type(&mut bits).ok_or_else(truncated)?;
        }
        if !(1..=4).contains(&object_type) {
            return Err(invalid(format!(
                "audio object type {object_type} has no ADTS profile"
            )));
        }
        if channel_configuration == 0 {
            return Err(invalid(
                "channel configuration 0 (program config element)".into(),
            ));
        }
        Ok(Self {
            track,
            profile: (object_type - 1) as u8,
            sampling_frequency_index,
            channel_configuration,
        })
    }

    /// Writes the frame with its 7-byte ADTS header (no CRC).
    fn write_frame(&self, out: &mut Vec<u8>, sample: &Sample) -> Result<()> {
        let frame_len = sample.data.len() + 7;
        if frame_len > 0x1FFF {
            return Err(Error::InvalidFrame {
                track: self.track,
                detail: format!(
                    "AAC frame of {} bytes too large for ADTS",
                    sample.data.len()
                ),
            });
        }
        out.extend_from_slice(&adts_header(
            self.profile,
            self.sampling_frequency_index,
            self.channel_configuration,
            frame_len as u16,
        ));
        out.extend_from_slice(&sample.data);
        Ok(())
    }
}

fn read_object_type(bits: &mut BitReader<'_>) -> Option<u32> {
    let object_type = bits.read(5)?;
    if object_type == 31 {
        Some(32 + bits.read(6)?)
    } else {
        Some(object_type)
    }
}

/// Reads a samplingFrequencyIndex; an explicit frequency (index 15) maps to its index when it
/// is one of the table's, as ADTS has no escape.
fn read_frequency_index(bits: &mut BitReader<'_>) -> Option<u8> {
    const RATES: [u32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    let index = bits.read(4)?;
    if index == 15 {
        let rate = bits.read(24)?;
        return RATES.iter().position(|&r| r == rate).map(|i| i as u8);
    }
    (index < 13).then_some(index as u8)
}

/// An ADTS header without CRC (ISO/IEC 13818-7 §6.2): `frame_len` includes its 7 bytes.
fn adts_header(profile: u8, frequency_index: u8, channels: u8, frame_len: u16) -> [u8; 7] {
    [
        0xFF,
        0xF1,
        ((profile & 0x03) << 6) | ((frequency_index & 0x0F) << 2) | ((channels >> 2) & 0x01),
        ((channels & 0x03) << 6) | ((frame_len >> 11) & 0x03) as u8,
        (frame_len >> 3) as u8,
        (((frame_len & 0x07) as u8) << 5) | 0x1F,
        0xFC,
    ]
}

// ---- PES and TS packets ------------------------------------------------------------------

/// Writes a 33-bit time stamp as PES carries it: `prefix` in the top 4 bits, then 3, 15 and 15
/// bits, each followed by a marker bit.
fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | ((((ts >> 30) & 0x07) as u8) << 1) | 1,
        (ts >> 22) as u8,
        ((((ts >> 15) & 0x7F) as u8) << 1) | 1,
        (ts >> 7) as u8,
        (((ts & 0x7F) as u8) << 1) | 1,
    ]
}

/// A PES packet. `PES_packet_length` is 0 (unbounded) for video when the packet is too long
/// for 16 bits; `None` for a non-video packet over 65,535 bytes.
fn pes_packet(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload: &[u8],
    video: bool,
) -> Option<Vec<u8>> {
    let header_data_len: u8 = if dts.is_some() { 10 } else { 5 };
    let packet_len = 3 + usize::from(header_data_len) + payload.len();
    let length_field = match u16::try_from(packet_len) {
        Ok(len) => len,
        Err(_) if video => 0,
        Err(_) => return None,
    };
    let mut out = Vec::with_capacity(packet_len + 6);
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&length_field.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator, no copyright, original.
    out.push(0x84);
    match dts {
        Some(dts) => {
            out.extend_from_slice(&[0xC0, header_data_len]);
            out.extend_from_slice(&encode_timestamp(0x3, pts));
            out.extend_from_slice(&encode_timestamp(0x1, dts));
        }
        None => {
            out.extend_from_slice(&[0x80, header_data_len]);
            out.extend_from_slice(&encode_timestamp(0x2, pts));
        }
    }
    out.extend_from_slice(payload);
    Some(out)
}

/// Encodes a PCR (base 33 bits, 6 reserved bits, extension 9 bits) from a 90 kHz value.
fn encode_pcr(base: u64) -> [u8; 6] {
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) as u8) << 7) | 0x7E,
        0,
    ]
}

/// Splits `payload` (a PES packet) into TS packets on `pid`. The first packet sets
/// payload_unit_start_indicator and, when asked, carries a PCR and random_access_indicator;
/// the last is padded with adaptation-field stuffing.
fn write_packets(
    out: &mut Vec<u8>,
    pid: u16,
    payload: &[u8],
    pcr: Option<u64>,
    random_access: bool,
    continuity: &mut Continuity,
) {
    let mut rest = payload;
    let mut first = true;
    loop {
        let mut flags = 0u8;
        let mut af_min = 0usize;
        if first && (pcr.is_some() || random_access) {
            af_min = 2;
            if random_access {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
                af_min += 6;
            }
        }
        let chunk_len = rest.len().min(PACKET_SIZE - 4 - af_min);
        let (chunk, tail) = rest.split_at(chunk_len);
        let af_len = PACKET_SIZE - 4 - chunk_len;
        let control = if af_len > 0 { 0x30 } else { 0x10 };
        out.push(0x47);
        out.push((u8::from(first) << 6) | ((pid >> 8) as u8 & 0x1F));
        out.push(pid as u8);
        out.push(control | continuity.next(pid));
        if af_len > 0 {
            // adaptation_field_length counts the bytes after itself.
            out.push((af_len - 1) as u8);
            if af_len > 1 {
                out.push(flags);
                let mut written = 2;
                if let (true, Some(pcr)) = (first, pcr) {
                    out.extend_from_slice(&encode_pcr(pcr));
                    written += 6;
                }
                out.resize(out.len() + (af_len - written), 0xFF);
            }
        }
        out.extend_from_slice(chunk);
        rest = tail;
        first = false;
        if rest.is_empty() {
            break;
        }
    }
}

/// Writes a PSI section (pointer_field 0, then the section, then 0xFF stuffing) in one packet;
/// sections here are far below 183 bytes.
fn write_section_packets(out: &mut Vec<u8>, pid: u16, section: &[u8], continuity: &mut Continuity) {
    let start = out.len();
    out.extend_from_slice(&[0x47, 0x40 | ((pid >> 8) as u8 & 0x1F), pid as u8]);
    out.push(0x10 | continuity.next(pid));
    out.push(0);
    out.extend_from_slice(section);
    out.resize(start + PACKET_SIZE, 0xFF);
}

/// The program association table: one program, [`PROGRAM_NUMBER`] on [`PMT_PID`].
fn pat_section() -> Vec<u8> {
    let mut body = Vec::with_capacity(4);
    body.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
    body.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
    psi_section(0x00, TRANSPORT_STREAM_ID, &body)
}

/// The program map table of `streams`, PCR on `pcr_pid`.
fn pmt_section(streams: &[Stream<'_>], pcr_pid: u16) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + 5 * streams.len());
    body.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&0xF000u16.to_be_bytes());
    for stream in streams {
        body.push(stream.kind.stream_type());
        body.extend_from_slice(&(0xE000 | stream.pid).to_be_bytes());
        body.extend_from_slice(&0xF000u16.to_be_bytes());
    }
    psi_section(0x02, PROGRAM_NUMBER, &body)
}

/// A long-form PSI section, version 0, current, section 0 of 0, with its CRC.
fn psi_section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    // 5 bytes after section_length before the body, 4 of CRC after it.
    let section_length = (5 + body.len() + 4) as u16;
    let mut out = Vec::with_capacity(3 + usize::from(section_length));
    out.push(table_id);
    out.extend_from_slice(&(0xB000 | (section_length & 0x03FF)).to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0xC1, 0x00, 0x00]);
    out.extend_from_slice(body);
    let crc = crc32_mpeg2(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, no reflection, no final XOR.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

// ---- readers -----------------------------------------------------------------------------

/// A byte reader that never panics.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16_prefixed(&mut self) -> Option<&'a [u8]> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
        self.take(len)
    }
}

/// An MSB-first bit reader that never panics.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Reads `n` ≤ 32 bits.
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            value = (value << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn crc32_mpeg2_check_value() {
        // The catalogue check value of CRC-32/MPEG-2.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn pat_matches_the_well_known_bytes() {
        // The PAT ffmpeg (and most muxers) write for program 1 on PID 0x1000, tsid 1.
        assert_eq!(
            pat_section(),
            [
                0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
                0x04, 0xB2
            ]
        );
    }

    #[test]
    fn pmt_matches_ffmpeg() {
        // `ffmpeg -c copy -f mpegts` of testdata/ffmpeg_h264.mkv and ffmpeg_h264-aac.mkv
        // (ffmpeg 5.1): the same PIDs, PCR on the video PID, no descriptors.
        let video = Track {
            number: 1,
            codec: Codec::H264 {
                avcc: Bytes::from_static(&[1, 0x64, 0, 0x0D, 0xFF, 0xE0, 0]),
                width: 320,
                height: 240,
            },
            timescale: 90_000,
            dts_shift: 0,
        };
        let audio = Track {
            number: 2,
            codec: Codec::Aac {
                asc: Bytes::from_static(&[0x11, 0x90]),
                sample_rate: 48_000,
                channels: 2,
            },
            timescale: 48_000,
            dts_shift: 0,
        };
        let one = [video.clone()];
        assert_eq!(
            pmt_section(&streams(&one).unwrap(), FIRST_ES_PID),
            [
                0x02, 0xB0, 0x12, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1,
                0x00, 0xF0, 0x00, 0x15, 0xBD, 0x4D, 0x56
            ]
        );
        let two = [video, audio];
        assert_eq!(
            pmt_section(&streams(&two).unwrap(), FIRST_ES_PID),
            [
                0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1,
                0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00, 0x2F, 0x44, 0xB9, 0x9B
            ]
        );
    }

    #[test]
    fn psi_crc_of_whole_section_is_zero_residue() {
        // Running the CRC over a section including its CRC gives 0 (the decoder's check).
        assert_eq!(crc32_mpeg2(&pat_section()), 0);
    }

    #[test]
    fn pts_encoding() {
        assert_eq!(encode_timestamp(0x2, 0), [0x21, 0x00, 0x01, 0x00, 0x01]);
        // 90000 = 0x15F90: bits 32..30 = 0, 29..15 = 2, 14..0 = 0x5F90.
        assert_eq!(
            encode_timestamp(0x2, 90_000),
            [0x21, 0x00, 0x05, 0xBF, 0x21]
        );
        // All 33 bits set.
        assert_eq!(
            encode_timestamp(0x3, (1 << 33) - 1),
            [0x3F, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            encode_timestamp(0x1, 1 << 32),
            [0x19, 0x00, 0x01, 0x00, 0x01]
        );
    }

    #[test]
    fn pes_header_pts_only_and_pts_dts() {
        let pes = pes_packet(0xC0, 90_000, None, &[0xAA, 0xBB], false).unwrap();
        assert_eq!(
            pes,
            [
                0, 0, 1, 0xC0, 0x00, 0x0A, 0x84, 0x80, 0x05, 0x21, 0x00, 0x05, 0xBF, 0x21, 0xAA,
                0xBB
            ]
        );
        let pes = pes_packet(0xE0, 3600, Some(0), &[0xCC], true).unwrap();
        assert_eq!(&pes[..9], [0, 0, 1, 0xE0, 0x00, 0x0E, 0x84, 0xC0, 0x0A]);
        assert_eq!(&pes[9..14], encode_timestamp(0x3, 3600));
        assert_eq!(&pes[14..19], encode_timestamp(0x1, 0));
        assert_eq!(pes[19], 0xCC);
        // Video over 64 KiB: unbounded length; audio: refused.
        let big = vec![0u8; 70_000];
        assert_eq!(
            &pes_packet(0xE0, 0, None, &big, true).unwrap()[4..6],
            [0, 0]
        );
        assert!(pes_packet(0xC0, 0, None, &big, false).is_none());
    }

    #[test]
    fn pcr_encoding() {
        assert_eq!(encode_pcr(0), [0, 0, 0, 0, 0x7E, 0]);
        assert_eq!(encode_pcr((1 << 33) - 1), [0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0]);
        assert_eq!(encode_pcr(1), [0, 0, 0, 0, 0xFE, 0]);
    }

    #[test]
    fn adts_header_for_lc_48k_stereo() {
        // ASC 0x11 0x90: AAC LC, index 3 (48 kHz), 2 channels. The ADTS header of a 100-byte
        // frame (107 with the header) as ffmpeg writes it.
        let config = AdtsConfig::parse(2, &[0x11, 0x90]).unwrap();
        assert_eq!(
            (
                config.profile,
                config.sampling_frequency_index,
                config.channel_configuration
            ),
            (1, 3, 2)
        );
        assert_eq!(
            adts_header(1, 3, 2, 107),
            [0xFF, 0xF1, 0x4C, 0x80, 0x0D, 0x7F, 0xFC]
        );
        // HE-AAC with explicit SBR: object type 5, then the LC core.
        let he = AdtsConfig::parse(2, &[0x2B, 0x92, 0x08, 0x00]).unwrap();
        assert_eq!(he.profile, 1);
        assert!(AdtsConfig::parse(2, &[0x11]).is_err());
        assert!(
            AdtsConfig::parse(2, &[0x11, 0x80]).is_err(),
            "channel configuration 0"
        );
    }

    #[test]
    fn packets_are_188_bytes_with_stuffing_and_counters() {
        let mut continuity = Continuity::new();
        for len in [0usize, 1, 2, 175, 176, 177, 182, 183, 184, 185, 400, 1000] {
            for (pcr, rai) in [(None, false), (Some(12345), true), (None, true)] {
                let mut out = Vec::new();
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                write_packets(&mut out, 0x100, &payload, pcr, rai, &mut continuity);
                assert_eq!(out.len() % PACKET_SIZE, 0, "len {len}");
                // Reassemble the payload.
                let mut back = Vec::new();
                for packet in out.chunks(PACKET_SIZE) {
                    assert_eq!(packet[0], 0x47);
                    let af = packet[3] & 0x20 != 0;
                    let start = if af { 5 + usize::from(packet[4]) } else { 4 };
                    back.extend_from_slice(&packet[start..]);
                }
                assert_eq!(back, payload, "len {len}");
            }
        }
        // Counters wrap at 16.
        let mut continuity = Continuity::new();
        let counters: Vec<u8> = (0..18).map(|_| continuity.next(7)).collect();
        assert_eq!(counters[15..], [15, 0, 1]);
    }

    #[test]
    fn avcc_to_annex_b() {
        // avcC: version 1, profile 0x64, compat 0, level 0x1E, 4-byte lengths, 1 SPS, 1 PPS.
        let avcc = [
            1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67, 0xAA, 1, 0, 1, 0x68,
        ];
        let config = AvcConfig::parse(1, &avcc).unwrap();
        let sample = |keyframe, data: &[u8]| Sample {
            track: 1,
            dts: 0,
            pts: 0,
            duration: 3600,
            keyframe,
            data: Bytes::copy_from_slice(data),
        };
        let mut out = Vec::new();
        annex_b_access_unit(
            &mut out,
            &config,
            &sample(true, &[0, 0, 0, 2, 0x65, 0x11, 0, 0, 0, 2, 0x09, 0xF0]),
        )
        .unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0xAA, 0, 0, 0, 1, 0x68, 0, 0, 0, 1, 0x65,
                0x11
            ]
        );
        out.clear();
        annex_b_access_unit(&mut out, &config, &sample(false, &[0, 0, 0, 1, 0x41])).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x41]);
        let err = annex_b_access_unit(&mut out, &config, &sample(false, &[0, 0, 0, 9, 0x41]));
        assert!(matches!(err, Err(Error::InvalidFrame { track: 1, .. })));
        assert!(AvcConfig::parse(1, &avcc[..7]).is_err());
        assert!(AvcConfig::parse(1, &[]).is_err());
    }

    #[test]
    fn h265_and_g711_are_refused() {
        let track = Track {
            number: 1,
            codec: Codec::H265 {
                hvcc: Bytes::new(),
                width: 1,
                height: 1,
            },
            timescale: 90_000,
            dts_shift: 0,
        };
        let err = segment(&[track], &[], &mut Continuity::new()).unwrap_err();
        assert!(matches!(
            err,
            Error::UnsupportedCodec {
                format: "MPEG-TS",
                ..
            }
        ));
        let track = Track {
            number: 2,
            codec: Codec::G711 {
                mu_law: false,
                sample_rate: 8000,
                channels: 1,
            },
            timescale: 8000,
            dts_shift: 0,
        };
        assert!(matches!(
            segment(&[track], &[], &mut Continuity::new()),
            Err(Error::UnsupportedCodec { .. })
        ));
    }

    #[test]
    fn rescaling_and_wrapping() {
        assert_eq!(rescale_90k(48_000, 48_000).unwrap(), 90_000);
        assert_eq!(rescale_90k(-1, 90_000).unwrap(), -1);
        assert_eq!(wrap_33(-1), (1 << 33) - 1);
        assert!(rescale_90k(1, 0).is_err());
    }
}
