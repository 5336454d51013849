//! The media plane (`kinesis-video-media`): PutMedia (ingest) and GetMedia (live and
//! archived reads), over the fragment contract in `vigil-api-kvs-common`'s crate docs.

mod acks;
pub mod getmedia;
pub mod ingest;
pub mod putmedia;
pub mod sessions;

pub use getmedia::get_media;
pub use putmedia::put_media;
pub use sessions::Sessions;
