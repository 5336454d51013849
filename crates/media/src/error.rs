//! The packaging errors.

/// What can go wrong packaging media.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Matroska input is malformed.
    #[error("invalid Matroska: {0}")]
    Matroska(String),
    /// A codec the output format cannot carry (e.g. H.265 in MPEG-TS, G.711 in HLS).
    #[error("unsupported codec for {format}: {codec}")]
    UnsupportedCodec {
        /// The output format.
        format: &'static str,
        /// The codec.
        codec: String,
    },
    /// CodecPrivate is missing where the codec needs it.
    #[error("track {track}: missing codec private data")]
    MissingCodecPrivate {
        /// The track number.
        track: u64,
    },
    /// CodecPrivate does not parse.
    #[error("track {track}: invalid codec private data: {detail}")]
    InvalidCodecPrivate {
        /// The track number.
        track: u64,
        /// What is wrong.
        detail: String,
    },
    /// A frame that cannot be carried (e.g. a NAL length beyond the frame).
    #[error("track {track}: invalid media frame: {detail}")]
    InvalidFrame {
        /// The track number.
        track: u64,
        /// What is wrong.
        detail: String,
    },
    /// The input is empty or exceeds a limit of the output.
    #[error("{0}")]
    Limit(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
