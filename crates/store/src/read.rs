//! Reading fragments back: whole ([`Store::read_meta`]) or a chunk at a time
//! ([`Store::open_fragment`]).
//!
//! A fragment written in chunks (record body version 2, [`crate::chunks`]) is read by a
//! [`FragmentReader`] one chunk (64 KiB) at a time, each chunk checked (AES-GCM, or its CRC
//! when the stream is not encrypted) before it is handed out, so a reader holds one chunk in
//! memory whatever the fragment's size: that is what bounds the memory of every response
//! that streams a fragment (GetMedia, GetMediaForFragmentList, HLS and DASH segments). A
//! fragment written before chunking (version 1) is sealed whole and comes back whole, as one
//! chunk. All reads are blocking file reads: call them from a blocking thread.

use bytes::Bytes;

use crate::chunks::{ChunkOpen, Layout, open_chunk};
use crate::engine::{Store, StoredFragment};
use crate::error::{Result, StoreError};
use crate::record::{BODY_HEADER_LEN, FLAG_ENCRYPTED, FRAME_LEN, Frame, RecordHeader, check_body};
use crate::types::FragmentMeta;

/// A fragment being read a chunk at a time (see the module docs).
#[derive(Debug)]
pub struct FragmentReader {
    store: Store,
    meta: FragmentMeta,
    head: RecordHeader,
    head_bytes: [u8; BODY_HEADER_LEN],
    layout: Option<Layout>,
    /// The next chunk to read.
    next: u32,
    /// A fragment stored whole (version 1), once read.
    whole: Option<Bytes>,
    /// The last chunk [`FragmentReader::read_range`] read, by index.
    cache: Option<(u32, Bytes)>,
}

impl Store {
    /// Reads the fragment a metadata entry points to, whole: checked (CRC) and authenticated
    /// (AES-GCM). Its memory is the fragment's size: prefer [`Store::open_fragment`] for
    /// anything that streams it.
    pub fn read_meta(&self, meta: &FragmentMeta) -> Result<StoredFragment> {
        let loc = meta.location;
        let buf = self
            .0
            .blobs
            .read(loc.segment, loc.offset, loc.len as usize)?;
        let frame = Frame::decode(&buf).ok_or_else(|| self.corrupt(meta, "short record"))?;
        let body = buf
            .get(FRAME_LEN..)
            .filter(|b| b.len() == frame.body_len as usize)
            .ok_or_else(|| self.corrupt(meta, "record length disagrees with the index"))?;
        let h = check_body(&frame, body).map_err(|e| self.corrupt(meta, &e))?;
        self.check_identity(meta, &h)?;
        if let Some(layout) = Layout::of(&h) {
            let r = FragmentReader {
                store: self.clone(),
                meta: *meta,
                head: h,
                head_bytes: h.encode(),
                layout: Some(layout),
                next: 0,
                whole: None,
                cache: None,
            };
            let start = FRAME_LEN + BODY_HEADER_LEN;
            let mut payload = Vec::with_capacity(h.payload_len as usize);
            for i in 0..layout.chunk_count() {
                let (off, len) = layout
                    .stored(i)
                    .ok_or_else(|| self.corrupt(meta, "chunk out of range"))?;
                let from = start + usize::try_from(off).unwrap_or(usize::MAX);
                let mut chunk = buf
                    .get(from..from.saturating_add(len))
                    .ok_or_else(|| self.corrupt(meta, "chunk out of range"))?
                    .to_vec();
                r.open(i, &mut chunk)?;
                payload.extend_from_slice(&chunk);
            }
            return Ok(StoredFragment {
                meta: *meta,
                payload: Bytes::from(payload),
            });
        }
        let mut buf = buf;
        let start = FRAME_LEN + BODY_HEADER_LEN;
        if h.flags & FLAG_ENCRYPTED != 0 {
            let key = self.data_key(meta.stream, h.key_gen)?;
            let (head, payload) = buf.split_at_mut(start);
            let aad = head.get(FRAME_LEN..).unwrap_or_default();
            let n = key
                .open(h.nonce, aad, payload)
                .ok_or_else(|| StoreError::Authentication {
                    what: format!("fragment {} of stream {}", meta.number, meta.stream),
                })?;
            if n != h.payload_len as usize {
                return Err(self.corrupt(meta, "payload length disagrees"));
            }
        }
        let payload = Bytes::from(buf).slice(start..start + h.payload_len as usize);
        Ok(StoredFragment {
            meta: *meta,
            payload,
        })
    }

    /// Opens a fragment to read it a chunk at a time ([`FragmentReader::next_chunk`]).
    /// Reads and checks the record's header only.
    pub fn open_fragment(&self, meta: &FragmentMeta) -> Result<FragmentReader> {
        let loc = meta.location;
        let buf = self
            .0
            .blobs
            .read(loc.segment, loc.offset, FRAME_LEN + BODY_HEADER_LEN)?;
        let frame = Frame::decode(&buf).ok_or_else(|| self.corrupt(meta, "short record"))?;
        if !frame.is_sane() || u64::from(frame.body_len) + FRAME_LEN as u64 != u64::from(loc.len) {
            return Err(self.corrupt(meta, "record length disagrees with the index"));
        }
        let body = buf.get(FRAME_LEN..).unwrap_or_default();
        let head = RecordHeader::decode(body).map_err(|e| self.corrupt(meta, &e))?;
        if head.stored_payload_len() + BODY_HEADER_LEN != frame.body_len as usize {
            return Err(self.corrupt(meta, "payload length disagrees with record length"));
        }
        self.check_identity(meta, &head)?;
        Ok(FragmentReader {
            store: self.clone(),
            meta: *meta,
            head,
            head_bytes: head.encode(),
            layout: Layout::of(&head),
            next: 0,
            whole: None,
            cache: None,
        })
    }

    fn check_identity(&self, meta: &FragmentMeta, h: &RecordHeader) -> Result<()> {
        if h.stream != meta.stream || h.number != meta.number {
            return Err(self.corrupt(
                meta,
                &format!(
                    "record holds fragment {} of stream {}, the index expected {} of {}",
                    h.number, h.stream, meta.number, meta.stream
                ),
            ));
        }
        Ok(())
    }

    fn corrupt(&self, meta: &FragmentMeta, detail: &str) -> StoreError {
        StoreError::Corrupt {
            file: self.0.blobs.describe(meta.location.segment),
            offset: meta.location.offset,
            detail: detail.to_owned(),
        }
    }
}

impl FragmentReader {
    /// The fragment's metadata.
    pub fn meta(&self) -> &FragmentMeta {
        &self.meta
    }

    /// The next chunk of the payload, checked; `None` after the last one. A fragment stored
    /// whole (body version 1) comes as one chunk.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(layout) = self.layout else {
            if self.next > 0 {
                return Ok(None);
            }
            self.next = 1;
            return self.whole().map(Some);
        };
        if self.next >= layout.chunk_count() {
            return Ok(None);
        }
        let i = self.next;
        let chunk = self.read_chunk(layout, i)?;
        self.next = i + 1;
        Ok(Some(chunk))
    }

    /// `len` bytes of the payload from offset `at` (clamped to the payload), reading only
    /// the chunks that hold them, each one checked; the last one is kept for the next call.
    pub fn read_range(&mut self, at: u64, len: usize) -> Result<Bytes> {
        let size = u64::from(self.head.payload_len);
        let end = at.saturating_add(len as u64).min(size);
        if at >= end {
            return Ok(Bytes::new());
        }
        let Some(layout) = self.layout else {
            let whole = self.whole()?;
            let (a, b) = (
                usize::try_from(at).unwrap_or(usize::MAX),
                usize::try_from(end).unwrap_or(usize::MAX),
            );
            return Ok(whole.slice(a.min(whole.len())..b.min(whole.len())));
        };
        let mut out = Vec::with_capacity(usize::try_from(end - at).unwrap_or(0));
        for i in layout.chunk_at(at)..=layout.chunk_at(end - 1) {
            let chunk = match &self.cache {
                Some((c, bytes)) if *c == i => bytes.clone(),
                _ => {
                    let bytes = self.read_chunk(layout, i)?;
                    self.cache = Some((i, bytes.clone()));
                    bytes
                }
            };
            let (start, _) = layout.plain(i).unwrap_or((0, 0));
            let from = usize::try_from(at.saturating_sub(start)).unwrap_or(usize::MAX);
            let to = usize::try_from(end - start).unwrap_or(usize::MAX);
            out.extend_from_slice(
                chunk
                    .get(from.min(chunk.len())..to.min(chunk.len()))
                    .unwrap_or_default(),
            );
        }
        Ok(Bytes::from(out))
    }

    fn whole(&mut self) -> Result<Bytes> {
        if let Some(w) = &self.whole {
            return Ok(w.clone());
        }
        let w = self.store.read_meta(&self.meta)?.payload;
        self.whole = Some(w.clone());
        Ok(w)
    }

    fn read_chunk(&self, layout: Layout, i: u32) -> Result<Bytes> {
        let (off, len) = layout
            .stored(i)
            .ok_or_else(|| self.store.corrupt(&self.meta, "chunk out of range"))?;
        let loc = self.meta.location;
        let at = loc.offset + (FRAME_LEN + BODY_HEADER_LEN) as u64 + off;
        let mut chunk = self.store.0.blobs.read(loc.segment, at, len)?;
        self.open(i, &mut chunk)?;
        Ok(Bytes::from(chunk))
    }

    fn open(&self, i: u32, chunk: &mut Vec<u8>) -> Result<()> {
        let result = if self.head.flags & FLAG_ENCRYPTED != 0 {
            let key = self.store.data_key(self.meta.stream, self.head.key_gen)?;
            let open = |n: [u8; 12], aad: &[u8], b: &mut [u8]| key.open(n, aad, b);
            open_chunk(
                &self.head,
                &self.head_bytes,
                i,
                chunk,
                Some(&open as ChunkOpen),
            )
        } else {
            open_chunk(&self.head, &self.head_bytes, i, chunk, None)
        };
        result.map_err(|detail| {
            if self.head.flags & FLAG_ENCRYPTED != 0 {
                StoreError::Authentication {
                    what: format!(
                        "fragment {} of stream {} ({detail})",
                        self.meta.number, self.meta.stream
                    ),
                }
            } else {
                self.store.corrupt(&self.meta, &detail)
            }
        })
    }
}
