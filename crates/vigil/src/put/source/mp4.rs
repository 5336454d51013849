//! MP4/MOV input (progressive: one `moov` with sample tables), read with `mp4-atom`.
//!
//! The `moov` is found by walking the top-level boxes (it may come after `mdat`), decoded, and
//! each H.264 (`avc1`/`avc3`), H.265 (`hvc1`/`hev1`) and AAC (`mp4a`) track's sample table
//! (stts, ctts, stss, stsc, stsz, stco/co64) is expanded into a list of samples; the lists are
//! merged by decode time and each sample is read where its chunk offset says. Presentation
//! times are decode time + composition offset − the first edit's media time, so a B-frame
//! file starts at 0 as players show it. Sample data is passed as it is: MP4 and Matroska both
//! store length-prefixed NAL units described by the same `avcC`/`hvcC`.
//!
//! Fragmented MP4 (`moof`) is refused with a hint: remux it (`ffmpeg -i in.mp4 -c copy
//! out.mkv`) or pipe Matroska instead.

use std::io::{Read, Seek, SeekFrom};

use anyhow::{Context, bail};
use bytes::Bytes;
use mp4_atom::{Codec, Decode, Encode, Moov, Trak};
use vigil_mkv::{Audio, TrackEntry, Video};

use super::{Sample, Source};

/// The largest `moov` read (sample tables of very long files).
const MAX_MOOV: u64 = 512 << 20;
/// The largest sample read.
const MAX_SAMPLE: u32 = 64 << 20;

struct TrackSamples {
    number: u64,
    timescale: u64,
    samples: Vec<Entry>,
    next: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    size: u32,
    dts: i64,
    pts: i64,
    sync: bool,
}

pub struct Mp4Source<R> {
    reader: R,
    tracks: Vec<TrackEntry>,
    samples: Vec<TrackSamples>,
}

impl<R: Read + Seek + Send> Mp4Source<R> {
    pub fn open(mut reader: R) -> anyhow::Result<Self> {
        let moov = find_moov(&mut reader)?;
        let mut tracks = Vec::new();
        let mut samples = Vec::new();
        for trak in &moov.trak {
            let number = tracks.len() as u64 + 1;
            let Some(entry) = track_entry(trak, number)? else {
                continue;
            };
            let table = sample_table(trak, number, moov.mvhd.timescale)
                .with_context(|| format!("the sample table of MP4 track {}", trak.tkhd.track_id))?;
            tracks.push(entry);
            samples.push(table);
        }
        if tracks.is_empty() {
            bail!("the MP4 has no H.264, H.265 or AAC track");
        }
        Ok(Mp4Source {
            reader,
            tracks,
            samples,
        })
    }
}

/// Walks the top-level boxes to `moov` and decodes it.
fn find_moov<R: Read + Seek>(r: &mut R) -> anyhow::Result<Moov> {
    let mut pos = 0u64;
    loop {
        r.seek(SeekFrom::Start(pos)).context("seeking in the MP4")?;
        let mut head = [0u8; 8];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                bail!("the MP4 has no moov box (is the file complete?)")
            }
            Err(e) => return Err(e).context("reading the MP4"),
        }
        let [a, b, c, d, t0, t1, t2, t3] = head;
        let size32 = u32::from_be_bytes([a, b, c, d]);
        let kind = [t0, t1, t2, t3];
        let (size, header_len) = match size32 {
            1 => {
                let mut large = [0u8; 8];
                r.read_exact(&mut large).context("reading the MP4")?;
                (u64::from_be_bytes(large), 16)
            }
            0 => (u64::MAX, 8), // to the end of the file
            s => (u64::from(s), 8),
        };
        if size < header_len {
            bail!("the MP4 has a malformed box at byte {pos}");
        }
        match &kind {
            b"moov" => {
                if size > MAX_MOOV || size == u64::MAX {
                    bail!("the MP4's moov box is too large ({size} bytes)");
                }
                let mut buf = vec![0u8; size as usize];
                r.seek(SeekFrom::Start(pos)).context("seeking in the MP4")?;
                r.read_exact(&mut buf).context("reading the moov box")?;
                return Moov::decode(&mut buf.as_slice()).context("the MP4's moov box is invalid");
            }
            b"moof" => bail!(
                "fragmented MP4 is not supported as input; remux it first \
                 (ffmpeg -i in.mp4 -c copy out.mkv) or send Matroska"
            ),
            _ => {}
        }
        if size == u64::MAX {
            bail!("the MP4 has no moov box");
        }
        pos = pos
            .checked_add(size)
            .context("the MP4's box sizes overflow")?;
    }
}

/// The box's payload as Matroska CodecPrivate: the encoded box minus its 8-byte header.
fn box_payload<T: Encode>(b: &T) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    b.encode(&mut out)
        .context("re-encoding a codec configuration")?;
    Ok(Bytes::from(out.get(8..).unwrap_or_default().to_vec()))
}

fn track_entry(trak: &Trak, number: u64) -> anyhow::Result<Option<TrackEntry>> {
    let Some(codec) = trak.mdia.minf.stbl.stsd.codecs.first() else {
        return Ok(None);
    };
    let video = |w: u16, h: u16| Video {
        pixel_width: u64::from(w),
        pixel_height: u64::from(h),
        ..Video::default()
    };
    let (track_type, codec_id, private, v, a) = match codec {
        Codec::Avc1(c) => (
            1,
            "V_MPEG4/ISO/AVC",
            box_payload(&c.avcc)?,
            Some(video(c.visual.width, c.visual.height)),
            None,
        ),
        Codec::Avc3(c) => (
            1,
            "V_MPEG4/ISO/AVC",
            box_payload(&c.avcc)?,
            Some(video(c.visual.width, c.visual.height)),
            None,
        ),
        Codec::Hvc1(c) => (
            1,
            "V_MPEGH/ISO/HEVC",
            box_payload(&c.hvcc)?,
            Some(video(c.visual.width, c.visual.height)),
            None,
        ),
        Codec::Hev1(c) => (
            1,
            "V_MPEGH/ISO/HEVC",
            box_payload(&c.hvcc)?,
            Some(video(c.visual.width, c.visual.height)),
            None,
        ),
        Codec::Mp4a(c) => {
            let Some(ds) = &c.esds.es_desc.dec_config.dec_specific else {
                bail!("the MP4's AAC track has no AudioSpecificConfig");
            };
            let rate = [
                96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
                7350,
            ]
            .get(usize::from(ds.freq_index))
            .copied()
            .unwrap_or_else(|| u32::from(c.audio.sample_rate.integer()));
            let channels = if ds.chan_conf > 0 {
                u64::from(ds.chan_conf)
            } else {
                u64::from(c.audio.channel_count)
            };
            let private = if ds.raw.is_empty() {
                // Re-derive the 2-byte AudioSpecificConfig from its fields.
                let v = (u16::from(ds.profile) << 11)
                    | (u16::from(ds.freq_index) << 7)
                    | (u16::from(ds.chan_conf) << 3);
                Bytes::from(v.to_be_bytes().to_vec())
            } else {
                Bytes::from(ds.raw.clone())
            };
            (
                2,
                "A_AAC",
                private,
                None,
                Some(Audio {
                    sampling_frequency: f64::from(rate),
                    channels,
                    ..Audio::default()
                }),
            )
        }
        _ => {
            eprintln!(
                "warning: MP4 track {} has a codec KVS does not play; it is not sent",
                trak.tkhd.track_id
            );
            return Ok(None);
        }
    };
    Ok(Some(TrackEntry {
        number,
        uid: number,
        track_type,
        codec_id: codec_id.to_owned(),
        codec_private: Some(private),
        name: Some(if track_type == 1 { "video" } else { "audio" }.to_owned()),
        video: v,
        audio: a,
        ..TrackEntry::default()
    }))
}

/// Expands a track's sample table.
fn sample_table(trak: &Trak, number: u64, movie_timescale: u32) -> anyhow::Result<TrackSamples> {
    let stbl = &trak.mdia.minf.stbl;
    let timescale = u64::from(trak.mdia.mdhd.timescale);
    let movie_timescale = u64::from(movie_timescale);
    if timescale == 0 {
        bail!("the track's timescale is 0");
    }
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        mp4_atom::StszSamples::Identical { count, size } => vec![*size; *count as usize],
        mp4_atom::StszSamples::Different { sizes } => sizes.clone(),
    };
    let count = sizes.len();
    let chunk_offsets: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(s), _) => s.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(c)) => c.entries.clone(),
        (None, None) => bail!("no chunk offsets (stco/co64)"),
    };
    // Decode times.
    let mut dts = Vec::with_capacity(count);
    let mut t: i64 = 0;
    for e in &stbl.stts.entries {
        for _ in 0..e.sample_count {
            if dts.len() == count {
                break;
            }
            dts.push(t);
            t = t.saturating_add(i64::from(e.sample_delta));
        }
    }
    if dts.len() < count {
        bail!("stts describes {} of {count} samples", dts.len());
    }
    // Composition offsets.
    let mut cts = vec![0i64; count];
    if let Some(ctts) = &stbl.ctts {
        let mut i = 0usize;
        for e in &ctts.entries {
            for _ in 0..e.sample_count {
                if let Some(c) = cts.get_mut(i) {
                    *c = e.sample_offset;
                }
                i += 1;
            }
        }
    }
    // The edit list: empty edits first delay the track (their durations are in the movie's
    // timescale), then the first edit's media time is where presentation starts.
    let mut shift: i64 = 0;
    if let Some(elst) = trak.edts.as_ref().and_then(|e| e.elst.as_ref()) {
        let mut delay: i128 = 0;
        for e in &elst.entries {
            match e.media_time {
                None => {
                    delay += i128::from(e.segment_duration) * i128::from(timescale)
                        / i128::from(movie_timescale.max(1));
                }
                Some(m) => {
                    shift = i64::try_from(i128::from(m) - delay).unwrap_or(0);
                    break;
                }
            }
        }
    }
    let sync: Option<std::collections::HashSet<u32>> = stbl
        .stss
        .as_ref()
        .map(|s| s.entries.iter().copied().collect());

    // Sample offsets, chunk by chunk.
    let mut samples = Vec::with_capacity(count);
    let stsc = &stbl.stsc.entries;
    let mut sample = 0usize;
    for (ci, &chunk_offset) in chunk_offsets.iter().enumerate() {
        let chunk_no = ci as u32 + 1;
        let per_chunk = stsc
            .iter()
            .rev()
            .find(|e| e.first_chunk <= chunk_no)
            .map(|e| e.samples_per_chunk)
            .unwrap_or(0);
        let mut offset = chunk_offset;
        for _ in 0..per_chunk {
            let (Some(&size), Some(&d), Some(&c)) =
                (sizes.get(sample), dts.get(sample), cts.get(sample))
            else {
                break;
            };
            samples.push(Entry {
                offset,
                size,
                dts: d,
                pts: d.saturating_add(c).saturating_sub(shift),
                sync: sync
                    .as_ref()
                    .is_none_or(|s| s.contains(&(sample as u32 + 1))),
            });
            offset = offset.saturating_add(u64::from(size));
            sample += 1;
        }
    }
    if samples.len() < count {
        bail!("stsc/stco place {} of {count} samples", samples.len());
    }
    Ok(TrackSamples {
        number,
        timescale,
        samples,
        next: 0,
    })
}

fn to_ns(t: i64, timescale: u64) -> i64 {
    (i128::from(t) * 1_000_000_000 / i128::from(timescale.max(1))) as i64
}

impl<R: Read + Seek + Send> Source for Mp4Source<R> {
    fn tracks(&self) -> &[TrackEntry] {
        &self.tracks
    }

    fn next_sample(&mut self) -> anyhow::Result<Option<Sample>> {
        // The track whose next sample decodes first.
        let next = self
            .samples
            .iter_mut()
            .filter_map(|t| {
                let e = *t.samples.get(t.next)?;
                Some((to_ns(e.dts, t.timescale), t))
            })
            .min_by_key(|(dts, _)| *dts);
        let Some((_, track)) = next else {
            return Ok(None);
        };
        let Some(e) = track.samples.get(track.next).copied() else {
            return Ok(None);
        };
        track.next += 1;
        if e.size > MAX_SAMPLE {
            bail!("an MP4 sample of {} bytes is too large", e.size);
        }
        let mut data = vec![0u8; e.size as usize];
        self.reader
            .seek(SeekFrom::Start(e.offset))
            .context("seeking in the MP4")?;
        self.reader.read_exact(&mut data).with_context(|| {
            format!(
                "reading a sample at byte {} (is the file complete?)",
                e.offset
            )
        })?;
        Ok(Some(Sample {
            track: track.number,
            pts_ns: to_ns(e.pts, track.timescale),
            keyframe: e.sync,
            data: Bytes::from(data),
        }))
    }
}
