//! One camera's task: connect, stream, and reconnect with back-off, until told to stop.
//!
//! A session: DESCRIBE, SETUP of the first H.264/H.265 video stream and the first AAC audio
//! stream (frames as 4-byte length-prefixed NAL units and raw AAC, Matroska's forms), PLAY,
//! then frames until the camera stops or fails. Frames before the first video key frame are
//! dropped (nothing decodes before it). Each run of frames with the same codec parameters is
//! one *pipeline*: a [`Fragmenter`] with those parameters in its track header, and an
//! [`Uploader`] (one PutMedia connection at a time). New parameters mid-session (a new SPS)
//! end the pipeline (its last fragment is completed and sent) and start another, whose
//! PutMedia connection begins with the new header; the clock map carries on, so times stay
//! increasing across them.
//!
//! A session ends with an error when the connection breaks, no frame comes for
//! [`STALL_TIMEOUT`], the clock error passes [`super::clock::MAX_ERROR_NS`], or an upload
//! fails; the last fragment is completed and sent first, then the task waits (back-off) and
//! starts a new session, with a new clock anchor.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, SessionOptions, SetupOptions,
    TcpTransportOptions, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vigil_mkv::{Audio, TrackEntry, Video};

use super::clock::ClockMap;
use super::{CameraConfig, RtpTransport, SharedStatus, State, redact};
use crate::client::Client;
use crate::put::Warn;
use crate::put::fragment::{Fragmenter, Out, Policy};
use crate::put::source::Sample;
use crate::put::upload::{Final, Stats, Uploader};

/// The first back-off, doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that streamed this long resets the back-off.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How long a session may go without a frame.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting (DESCRIBE to PLAY) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a finished pipeline's uploader may take for its last acks.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

const VIDEO_TRACK: u64 = 1;
const AUDIO_TRACK: u64 = 2;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Runs a camera until `stop` turns true.
pub async fn run(
    config: CameraConfig,
    client: Client,
    status: std::sync::Arc<SharedStatus>,
    mut stop: watch::Receiver<bool>,
    networks: Option<std::sync::Arc<super::reach::Networks>>,
) {
    let mut backoff = MIN_BACKOFF;
    let name = config.name.clone();
    loop {
        status.lock().state = State::Connecting;
        let started = Instant::now();
        // Checked before every connection: a name may resolve elsewhere since the last one.
        let checked = match &networks {
            Some(n) => n.check_url(&config.url).await,
            None => Ok(()),
        };
        let result = match checked {
            Ok(()) => session(&config, &client, &status, &mut stop).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        };
        if *stop.borrow() {
            break;
        }
        let why = match result {
            Ok(()) => "the camera ended the session".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = MIN_BACKOFF;
        }
        let wait = jitter(backoff);
        {
            let mut s = status.lock();
            s.state = State::Backoff;
            s.errors += 1;
            s.last_error = Some(why.clone());
            s.last_error_ms = Some(now_ns() / 1_000_000);
            s.retry_at_ms = Some(
                (now_ns() / 1_000_000).saturating_add(i64::try_from(wait.as_millis()).unwrap_or(0)),
            );
        }
        tracing::warn!(
            camera = name,
            url = redact(&config.url),
            retry_in_s = wait.as_secs_f64(),
            "camera error: {why}"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        status.lock().retry_at_ms = None;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let mut s = status.lock();
    s.state = State::Stopped;
    s.retry_at_ms = None;
}

/// `d` ± 20 %, from the clock's low bits (no need for a good generator).
fn jitter(d: Duration) -> Duration {
    let r = (now_ns().rem_euclid(1_000_003) as f64) / 1_000_003.0; // [0, 1)
    d.mul_f64(0.8 + 0.4 * r)
}

/// The stream's retention decides the final ack; a missing stream is created if allowed.
async fn prepare_stream(client: &Client, config: &CameraConfig) -> anyhow::Result<Final> {
    let stream = config.stream_name();
    let info = match crate::stream_cmd::stream_info(client, stream).await {
        Ok(info) => info,
        Err(e) if config.create_stream && e.kind() == Some("ResourceNotFoundException") => {
            client
                .json(
                    "/createStream",
                    &json!({
                        "StreamName": stream,
                        "DeviceName": format!("vigil-camera-{}", config.name),
                        "MediaType": "video/h264",
                        "DataRetentionInHours": config.retention_hours,
                    }),
                )
                .await
                .map_err(anyhow::Error::from)
                .with_context(|| format!("creating stream {stream}"))?;
            tracing::info!(camera = config.name, stream, "created the camera's stream");
            crate::stream_cmd::describe(client, stream).await?
        }
        Err(e) => {
            return Err(crate::stream_cmd::explain(e).context(format!("stream {stream}")));
        }
    };
    let retention = info
        .get("DataRetentionInHours")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(if retention > 0 {
        Final::Persisted
    } else {
        Final::Received
    })
}

/// The URL without credentials, and the credentials.
fn split_credentials(url: &str) -> anyhow::Result<(url::Url, Option<Credentials>)> {
    let mut u = url::Url::parse(url).map_err(|e| anyhow!("bad url {}: {e}", redact(url)))?;
    let creds = if u.username().is_empty() {
        None
    } else {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let c = Credentials {
            username: decode(u.username()),
            password: decode(u.password().unwrap_or("")),
        };
        let _ = u.set_username("");
        let _ = u.set_password(None);
        Some(c)
    };
    Ok((u, creds))
}

/// One pipeline: fragments of one set of codec parameters, and their uploader.
struct Pipeline {
    fragmenter: Fragmenter,
    tx: mpsc::Sender<Out>,
    uploader: JoinHandle<anyhow::Result<Stats>>,
    /// The wall-clock ms that sample time 0 stands for.
    base_ms: i64,
}

impl Pipeline {
    fn start(
        tracks: &[TrackEntry],
        base_ms: i64,
        client: &Client,
        config: &CameraConfig,
        final_ack: Final,
        status: &std::sync::Arc<SharedStatus>,
    ) -> anyhow::Result<Pipeline> {
        let mut fragmenter = Fragmenter::new(tracks, base_ms, Policy::default())?;
        let camera = config.name.clone();
        let warn = Warn::to(move |m: &str| tracing::warn!(camera, "{m}"));
        fragmenter.set_warn(warn.clone());
        let (tx, rx) = mpsc::channel::<Out>(256);
        let st = status.clone();
        let mut acked_before = 0;
        let on_progress = Box::new(move |s: &Stats| {
            let mut g = st.lock();
            g.fragments += s.fragments_acked.saturating_sub(acked_before);
            acked_before = s.fragments_acked;
        });
        let uploader = Uploader::new(
            client.clone(),
            config.stream_name(),
            fragmenter.header(),
            final_ack,
            on_progress,
        )
        .with_warn(warn);
        Ok(Pipeline {
            fragmenter,
            tx,
            uploader: tokio::spawn(uploader.run(rx)),
            base_ms,
        })
    }

    async fn push(&mut self, sample: &Sample) -> anyhow::Result<()> {
        let mut out = Vec::new();
        self.fragmenter.push(sample, &mut out)?;
        self.send(out).await
    }

    async fn send(&mut self, out: Vec<Out>) -> anyhow::Result<()> {
        for o in out {
            if self.tx.send(o).await.is_err() {
                // The uploader stopped: its result says why.
                return Err(match (&mut self.uploader).await {
                    Ok(Err(e)) => e.context("uploading"),
                    Ok(Ok(_)) => anyhow!("the uploader stopped"),
                    Err(e) => anyhow!("the uploader failed: {e}"),
                });
            }
        }
        Ok(())
    }

    /// Completes the last fragment and waits (a while) for the uploader's last acks.
    async fn finish(mut self) -> anyhow::Result<()> {
        let mut out = Vec::new();
        self.fragmenter.finish(&mut out)?;
        self.send(out).await?;
        drop(self.tx);
        match tokio::time::timeout(DRAIN_TIMEOUT, &mut self.uploader).await {
            Ok(Ok(r)) => r.map(|_| ()),
            Ok(Err(e)) => Err(anyhow!("the uploader failed: {e}")),
            Err(_) => {
                self.uploader.abort();
                Err(anyhow!("the last fragments were not acknowledged in time"))
            }
        }
    }
}

/// The Matroska track of a video stream's parameters.
fn video_track(p: &retina::codec::VideoParameters) -> anyhow::Result<(TrackEntry, &'static str)> {
    let (codec_id, mime) = match p.codec_params() {
        VideoParametersCodec::H264 { .. } => ("V_MPEG4/ISO/AVC", "video/h264"),
        VideoParametersCodec::H265 { .. } => ("V_MPEGH/ISO/HEVC", "video/h265"),
        other => bail!("video codec {other:?} is not supported (H.264 and H.265 are)"),
    };
    let (w, h) = p.pixel_dimensions();
    Ok((
        TrackEntry {
            number: VIDEO_TRACK,
            uid: VIDEO_TRACK,
            track_type: 1,
            codec_id: codec_id.into(),
            codec_private: Some(Bytes::copy_from_slice(p.extra_data())),
            video: Some(Video {
                pixel_width: u64::from(w),
                pixel_height: u64::from(h),
                ..Video::default()
            }),
            ..TrackEntry::default()
        },
        mime,
    ))
}

/// The Matroska track of an AAC stream's parameters.
fn audio_track(p: &retina::codec::AudioParameters) -> TrackEntry {
    TrackEntry {
        number: AUDIO_TRACK,
        uid: AUDIO_TRACK,
        track_type: 2,
        codec_id: "A_AAC".into(),
        codec_private: Some(Bytes::copy_from_slice(p.extra_data())),
        audio: Some(Audio {
            sampling_frequency: f64::from(p.clock_rate()),
            channels: u64::from(p.channels().get()),
            ..Audio::default()
        }),
        ..TrackEntry::default()
    }
}

/// A timestamp in ns since its stream's start.
fn media_ns(ts: retina::Timestamp) -> i64 {
    let rate = i128::from(ts.clock_rate().get());
    i64::try_from(i128::from(ts.elapsed()) * 1_000_000_000 / rate).unwrap_or(i64::MAX)
}

/// One RTSP session, until it ends or `stop` turns true (then `Ok`).
async fn session(
    config: &CameraConfig,
    client: &Client,
    status: &std::sync::Arc<SharedStatus>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let final_ack = prepare_stream(client, config).await?;
    let (url, creds) = split_credentials(&config.url)?;
    let transport = match config.transport {
        RtpTransport::Tcp => retina::client::Transport::Tcp(TcpTransportOptions::default()),
        RtpTransport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
    };
    let connect = async {
        let mut session = retina::client::Session::describe(
            url,
            SessionOptions::default()
                .creds(creds)
                .user_agent(crate::client::USER_AGENT.to_owned()),
        )
        .await
        .context("DESCRIBE")?;
        let streams = session.streams();
        let video = streams
            .iter()
            .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"));
        let audio = streams
            .iter()
            .position(|s| s.media() == "audio" && s.encoding_name() == "mpeg4-generic");
        let Some(video) = video else {
            let found: Vec<String> = streams
                .iter()
                .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                .collect();
            bail!(
                "the camera offers no H.264 or H.265 video (it offers {})",
                found.join(", ")
            );
        };
        for i in std::iter::once(video).chain(audio) {
            session
                .setup(
                    i,
                    SetupOptions::default()
                        .transport(transport.clone())
                        .frame_format(FrameFormat::MP4),
                )
                .await
                .context("SETUP")?;
        }
        let playing = session
            .play(PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive))
            .await
            .context("PLAY")?;
        let demuxed = playing.demuxed().context("PLAY")?;
        anyhow::Ok((demuxed, video, audio))
    };
    let (mut demuxed, video, audio) = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => {
            r.map_err(|_| anyhow!("no answer from the camera in {CONNECT_TIMEOUT:?}"))??
        }
        _ = stop.changed() => return Ok(()),
    };
    {
        let mut s = status.lock();
        s.sessions += 1;
        s.state = State::Streaming;
        s.clock_error_ms = None;
        s.camera_clock_rate = None;
    }
    tracing::info!(camera = config.name, "camera session playing");

    let mut clock = ClockMap::default();
    let mut pipeline: Option<Pipeline> = None;
    // New parameters seen, to be applied at the next key frame.
    let mut params_changed = false;
    let result: anyhow::Result<()> = async {
        loop {
            let item = tokio::select! {
                r = tokio::time::timeout(STALL_TIMEOUT, demuxed.next()) => match r {
                    Err(_) => bail!("no frame from the camera for {STALL_TIMEOUT:?}"),
                    Ok(None) => bail!("the camera closed the session"),
                    Ok(Some(item)) => item.context("receiving from the camera")?,
                },
                _ = stop.changed() => return Ok(()),
            };
            let wall_ns = now_ns();
            let (track, ts, keyframe, new_params, data) = match item {
                CodecItem::VideoFrame(f) if f.stream_id() == video => {
                    let ts = f.timestamp();
                    let key = f.is_random_access_point();
                    let new = f.has_new_parameters();
                    (VIDEO_TRACK, ts, key, new, Bytes::from(f.into_data()))
                }
                CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio => (
                    AUDIO_TRACK,
                    f.timestamp(),
                    true,
                    false,
                    Bytes::copy_from_slice(f.data()),
                ),
                _ => continue,
            };
            let media = media_ns(ts);
            if track == VIDEO_TRACK && keyframe {
                match clock.observe(media, wall_ns) {
                    Ok(Some(u)) => {
                        let mut s = status.lock();
                        s.clock_error_ms = Some(u.error_ns as f64 / 1e6);
                        s.camera_clock_rate = u.measured_rate.map(|r| 1.0 / r);
                        tracing::debug!(
                            camera = config.name,
                            error_ms = u.error_ns as f64 / 1e6,
                            rate = u.rate,
                            "clock update"
                        );
                    }
                    Ok(None) => {}
                    Err(e) => bail!(
                        "the camera's clock is {:.1} s off the server's, beyond what is \
                         corrected; starting a new session",
                        e as f64 / 1e9
                    ),
                }
            }
            // Nothing before the first video key frame.
            let Some(placed_ns) = clock.place(media) else {
                continue;
            };
            params_changed |= new_params;
            if track == VIDEO_TRACK && (pipeline.is_none() || params_changed) && keyframe {
                let params = demuxed.streams().get(video).and_then(|s| s.parameters());
                let Some(ParametersRef::Video(vp)) = params else {
                    continue; // Parameters come with a later key frame.
                };
                let (vtrack, vmime) = video_track(vp)?;
                let mut tracks = vec![vtrack];
                let mut codecs = vec![vmime.to_owned()];
                if let Some(ParametersRef::Audio(ap)) = audio
                    .and_then(|a| demuxed.streams().get(a))
                    .and_then(|s| s.parameters())
                {
                    tracks.push(audio_track(ap));
                    codecs.push("audio/aac".to_owned());
                }
                if let Some(old) = pipeline.take() {
                    tracing::info!(camera = config.name, "new codec parameters: new upload");
                    old.finish().await?;
                }
                params_changed = false;
                let base_ms = placed_ns.div_euclid(1_000_000);
                pipeline = Some(Pipeline::start(
                    &tracks, base_ms, client, config, final_ack, status,
                )?);
                status.lock().codecs = codecs;
            }
            let Some(p) = pipeline.as_mut() else {
                continue;
            };
            let sample = Sample {
                track,
                pts_ns: placed_ns.saturating_sub(p.base_ms.saturating_mul(1_000_000)),
                keyframe,
                data,
            };
            p.push(&sample).await?;
            let mut s = status.lock();
            s.frames += 1;
            if track == VIDEO_TRACK {
                s.last_frame_ms = Some(placed_ns.div_euclid(1_000_000));
            }
        }
    }
    .await;
    if let Some(p) = pipeline.take()
        && let Err(e) = p.finish().await
    {
        tracing::warn!(camera = config.name, "completing the last fragment: {e:#}");
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let (u, c) = split_credentials("rtsp://ad%40min:p%3As+s@10.0.0.5:554/s1?x=1").unwrap();
        assert_eq!(u.as_str(), "rtsp://10.0.0.5:554/s1?x=1");
        let c = c.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("ad@min", "p:s+s")
        );
        let (u, c) = split_credentials("rtsp://10.0.0.5/s1").unwrap();
        assert_eq!(u.as_str(), "rtsp://10.0.0.5/s1");
        assert!(c.is_none());
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(
                j >= Duration::from_secs(8) && j <= Duration::from_secs(12),
                "{j:?}"
            );
        }
    }
}
