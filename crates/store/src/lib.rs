//! Vigil's fragment store: every stream's media, durable, indexed, encrypted, with retention;
//! and durable logs of small entries beside it.
//!
//! A stream's media is a sequence of **fragments** (one Matroska cluster each, with the track
//! header it was ingested under), numbered in ingest order across the whole store and indexed
//! by number, producer timestamp and server timestamp. The store knows nothing of HTTP, AWS or
//! Matroska: a fragment is opaque bytes with metadata.
//!
//! A **log group** holds numbered **logs** of entries (a key and data each), appended in
//! batches that take their numbers from the same sequence as fragments and go through the
//! same group commit into the same segment files: see [`logs`]. An upper layer builds data
//! streams on them; the store knows nothing of what the entries are.
//!
//! # Layout
//!
//! ```text
//! <data dir>/
//!   LOCK                      held (flock) by the process that has the store open
//!   index.redb                the index: streams, keys, headers, fragment index, log groups
//!                             and log batch index (redb; tables in `index`)
//!   index.redb.bak            the index backup: the tables the segments cannot rebuild
//!                             (see [`backup`])
//!   keys/default.key          the default master key (0600), created when the directory is
//!                             new, never replaced (see [`datadir`])
//!   segments/<id>.seg         append-only segment files of fragment and log batch records
//!                             (format in `record`)
//! ```
//!
//! Face collections (records, face metadata, sealed embeddings) live in the index only, with
//! no segment files: see [`faces`].
//!
//! Segments are **shared by all streams and log groups of similar retention** (a *lane*, see
//! [`lane_for`]), not kept per stream: one active segment per lane takes every stream's
//! fragments and every log's batches as they complete, so writes are sequential and one fsync
//! per lane makes a whole batch of streams durable (group commit). The price is that a segment
//! can only be deleted when every record in it has expired; lanes keep that cost small, because fragments that share a segment expire
//! at about the same time. Per-stream files would make expiry exact but cost an fsync per stream
//! per batch and scatter the writes.
//!
//! # Durability contract
//!
//! When a fragment's [`Durable`] resolves `Ok`:
//! - its record (plaintext header, AES-256-GCM ciphertext, CRC-32) is in a segment file that
//!   has been `fdatasync`ed, and the file's directory entry was synced when it was created;
//! - its index entry is in the index, visible to every reader; it is durable in the index file
//!   at the next checkpoint (at most `checkpoint_interval_ms` later), and until then the segment
//!   is the log: a restart re-indexes every record after the last checkpoint;
//! - its stream record, data key and track header were made durable (fsync) before the
//!   fragment began.
//!
//! So after SIGKILL or power loss at any moment, every fragment reported durable reads back
//! byte-identical; a record torn by the crash (never reported durable) is cut off on open.
//! A stream with retention 0 persists nothing: its fragments live in a bounded memory window.
//!
//! The index backup `index.redb.bak` is at every moment one whole, consistent snapshot of the
//! index's metadata (everything but what the segments rebuild). A metadata change (a stream
//! created, a key rotated, a track header registered, ...) is in it at most
//! `index_backup_interval_ms` after it was made, plus the time a backup takes, and every
//! change is in it once the store has closed cleanly; a backup that fails is logged and leaves
//! the previous one whole ([`backup`]). A data directory whose index or default master key is
//! missing or damaged is refused on open, never started over ([`datadir`]).
//!
//! When a log append's [`LogAppend`] resolves `Ok`, the same holds of its batch (one record,
//! sealed under its group's data key, in a synced segment; its row in the index; the group
//! record and key durable since the group was created), and moreover the batch is in its
//! log's in-memory tail and every subscriber has been told. Batch numbers are drawn from the
//! store-wide sequence under the log's lock, so a log's positions increase in the order its
//! batches become durable and visible, and stay above everything before a restart.
//!
//! # Entry points
//!
//! [`Store::open`], then [`Store::create_stream`], [`Store::register_header`],
//! [`Store::begin_fragment`] → [`FragmentWriter`] → [`Durable`], and the reads:
//! [`Store::read_fragment`], [`Store::list_fragments`] (timestamp ranges, paginated),
//! [`Store::tail`] (from EARLIEST, NOW, a number or a timestamp, into the live edge),
//! [`Store::live_edge`] (the fragments in memory and a receiver of the stream's changes).
//! Logs: [`Store::create_log_group`], [`Store::append_log`] → [`LogAppend`], and
//! [`Store::read_log`], [`Store::log_bounds`], [`Store::position_at_time`],
//! [`Store::subscribe_log`]. [`check::check`] verifies a store; [`backup::restore_index`]
//! restores a lost or damaged index from its backup.

pub mod backup;
pub mod blob;
pub mod check;
pub mod chunks;
pub mod clock;
mod commit;
pub mod conformance;
pub mod crypto;
pub mod datadir;
pub mod documents;
mod engine;
pub mod error;
pub mod faces;
pub mod fs;
pub mod fuzzing;
pub mod index;
mod ingest;
pub mod live;
pub mod logs;
mod read;
pub mod record;
pub mod recovery;
pub mod retention;
pub mod sealed;
pub mod space;
mod tail;
pub mod types;

pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::StoreStats;
pub use engine::{
    DEFAULT_MASTER_KEY_ID, Store, StoreConfig, StoredFragment, StreamRef, WeakStore, lane_for,
};
pub use error::{Result, StoreError};
pub use faces::{CollectionRecord, StoredFace};
pub use ingest::{Durable, FragmentWriter, MAX_FRAGMENT_BYTES};
pub use logs::{
    Appended, LogAppend, LogBounds, LogEntry, LogGroupRecord, LogGroupRef, LogGroupStatus,
    LogTailLimits, NewEntry, NewLogGroup, Position,
};
pub use read::FragmentReader;
pub use sealed::SealedDocument;
pub use tail::{FragmentStart, LiveEdge, StartAt, Tail, TailEvent};
pub use types::{
    FragmentMeta, Location, NewStream, Page, PageCursor, StreamRecord, StreamStatus, StreamUsage,
    TimestampKind,
};
