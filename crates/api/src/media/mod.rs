//! The media plane: PutMedia (ingest), GetMedia (live and archived reads),
//! ListFragments and GetMediaForFragmentList.
//!
//! # How a fragment is stored
//!
//! This is the contract between ingest ([`putmedia`]) and every reader ([`getmedia`],
//! [`archived`], and later HLS/DASH/clips): the store holds opaque bytes, and this module
//! decides what they are.
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
//!   none ([`ingest`]). A stored payload therefore never carries a reserved tag: those a
//!   reader sees are the ones GetMedia adds.
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

pub mod archived;
pub mod clip;
pub mod document;
pub mod getmedia;
pub mod images;
pub mod ingest;
pub mod playback;
pub mod putmedia;
pub mod readers;
pub mod sessions;

pub use archived::{get_media_for_fragment_list, list_fragments};
pub use clip::get_clip;
pub use getmedia::get_media;
pub use images::get_images;
pub use putmedia::put_media;
pub use sessions::Sessions;
