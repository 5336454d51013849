//! What the Kinesis Video Streams services share on the wire.
//!
//! KVS is three botocore services on one signing name (`kinesisvideo`): the control plane
//! (`kinesisvideo`), the media plane (`kinesis-video-media`) and archived media
//! (`kinesis-video-archived-media`). Vigil answers them in two crates, `vigil-api-kvs`
//! (streams, PutMedia, GetMedia) and `vigil-api-playback` (archived media), which never import
//! each other; this crate is what both speak (`../shared/spec/kvs-api.md` is the reference):
//!
//! - [`error`]: [`KvsError`], the KVS exceptions with their statuses (rest-json bodies).
//! - [`model`], [`validate`]: timestamps, fragment numbers, stream ARNs, `StreamInfo`, and the
//!   service models' patterns and ranges.
//! - [`call`]: [`Call`], one call of an operation: its input, authorisation, and the stream it
//!   names by `StreamName` or `StreamARN`.
//! - [`document`]: the per-fragment Matroska documents GetMedia and GetMediaForFragmentList
//!   send, with the `AWS_KINESISVIDEO_*` tags.
//! - [`readers`]: the media readers' metrics.
//!
//! # How a fragment is stored
//!
//! This is the contract between ingest (`vigil-api-kvs`'s PutMedia) and every reader (GetMedia,
//! GetMediaForFragmentList, HLS/DASH, clips, images): the store holds opaque bytes, and this
//! section decides what they are.
//!
//! - **Track header** (`Store::register_header`, once per PutMedia session, deduplicated by
//!   the store): the start of a GetMedia document up to the fragment's own tags, ready to be
//!   written as is: the producer's EBML header element (raw), a Segment ID with an unknown
//!   size (`18 53 80 67 01 FF FF FF FF FF FF FF`), then the producer's Info and Tracks
//!   elements (raw, as ingested).
//! - **Fragment payload** (`FragmentWriter::append`): the producer's Cluster element as
//!   ingested, from its ID to its last byte (an unknown-size Cluster keeps its unknown size;
//!   it ends at the next level-1 element), followed by the producer Tags elements attached to
//!   that fragment, holding only their custom metadata: raw when that is all they hold, else
//!   re-encoded without the reserved `AWS_KINESISVIDEO_*` tags, and left out when they hold
//!   none. A stored payload therefore never carries a reserved tag: those a reader sees are
//!   the ones GetMedia adds.
//!   Bytes are appended as they arrive, so live readers get each frame at once; what a live
//!   reader has seen is always a prefix of the final payload.
//! - **Timestamps**: producer timestamp = the Cluster Timecode converted to ms (ABSOLUTE), or
//!   `x-amzn-producer-start-timestamp` + that (RELATIVE); server timestamp = when the
//!   fragment's first byte arrived (the store stamps it in `begin_fragment`).
//!
//! A GetMedia document for one fragment is then: the track header, a Tags element with
//! `AWS_KINESISVIDEO_FRAGMENT_NUMBER`, `AWS_KINESISVIDEO_SERVER_TIMESTAMP` and
//! `AWS_KINESISVIDEO_PRODUCER_TIMESTAMP`, the payload, and a Tags element with
//! `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW` and `AWS_KINESISVIDEO_CONTINUATION_TOKEN`
//! (`../shared/spec/kvs-api.md` §3).

pub mod budget;
pub mod call;
pub mod document;
pub mod error;
pub mod model;
pub mod readers;
pub mod validate;

pub use call::{
    Call, Context, Operation, answer, blocking, json, json_call, media_response, resolve_stream,
    route,
};
pub use error::{KvsError, KvsResult};
