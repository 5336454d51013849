//! The producer's Tags elements: which fragment they belong to, how they count toward its
//! limit, what they hold (custom tags, reserved ones, the end-of-fragment tag), and their
//! custom part as stored with the fragment.
//!
//! # Which fragment
//!
//! Tags that follow a Cluster belong to its fragment (see [`super`]), up to the
//! end-of-fragment tag or the next Cluster that completes it. Tags that come while **no
//! fragment is open** (before the session's first Cluster, or after a fragment that an
//! end-of-fragment tag completed) are held for the next fragment, with one exception:
//!
//! **Tags closed by an end-of-fragment tag before any Cluster opens belong to a fragment that
//! has already ended.** This is how the KVS producer SDK resumes after a reconnect (a dropped
//! connection, a server restart). Its PIC packages a fragment's pending metadata and the
//! `AWS_KINESISVIDEO_END_OF_FRAGMENT` tag as one buffer item after the fragment's last frame
//! (`putFrame` in the PIC's `Stream.c`, on an end-of-fragment frame: the tag is appended to the
//! metadata queue and the queue packaged as that item); on reconnect it resumes streaming at
//! a boundary item, which may be such a fragment-end item as well as a fragment start
//! (`getNextBoundaryViewItem`), and puts the new session's EBML header and Tracks in front of
//! it (`streamStartFixupOnReconnect`). So a resumed session may begin: header, the Tags of the
//! fragment the previous session ended with, the end-of-fragment tag, then the next Cluster.
//!
//! Such Tags are checked like any (names, values, and the count below, which the previous
//! session already applied to the same group) and then **dropped**: they are not counted
//! toward the next fragment, not stored anywhere, and get no ack (none is due; they are not a
//! fragment). Vigil does not try to add them to the fragment they describe: a stored fragment
//! is immutable, and that fragment either was completed and stored with these same Tags when
//! they first followed its Cluster, or never completed, in which case the SDK (which had no
//! PERSISTED ack for it) sends it again whole, its Tags included.
//!
//! # How many
//!
//! At most [`MAX_FRAGMENT_TAGS`] (10) tags per fragment, **the end-of-fragment tag
//! included**: the fragment's custom SimpleTags (nested ones included) before and after its
//! Cluster, plus 1 if an end-of-fragment tag completes it. KVS counts it so: its limit is 10
//! metadata tags per fragment (the PIC's `MAX_FRAGMENT_METADATA_TAGS` in `Include.h`, while its
//! own queue takes `MAX_FRAGMENT_METADATA_COUNT`, 25, and the end-of-fragment tag joins that
//! queue as one more entry), the AWS embedded-C producer reserves one of the 10 for the
//! end-of-fragment tag, and the C SDK's sample puts 9 per fragment for that reason (its
//! captures: 9 `TEST_KEY_*` tags, then the end-of-fragment tag). One more is ERROR 4009
//! `FRAGMENT_METADATA_LIMIT_REACHED`, for the fragment being received (dropped), as KVS answers
//! it. Image-generation and notification tags are event metadata, counted apart by KVS
//! (`MAX_EVENT_CUSTOM_PAIRS`), and not counted here; their custom children are.

use bytes::Bytes;
use vigil_mkv::ebml::{Child, Children};
use vigil_mkv::{SimpleTag, Tag, TagValue, encode_tags, ids};

use super::{
    AckError, END_OF_FRAGMENT_TAG, Ingest, MAX_FRAGMENT_TAGS, MAX_TAG_NAME_BYTES,
    MAX_TAG_VALUE_BYTES, PRODUCER_TAGS, RESERVED_TAG_PREFIX, TagsSummary,
};

impl Ingest {
    /// A whole Tags element at `offset..end`: checked, counted, then stored with the fragment
    /// it belongs to, held for the next one, or dropped (see the module docs).
    pub(super) fn on_tags(&mut self, offset: u64, end: Option<u64>, tags: &[Tag]) {
        let Some(raw) = self.take_element(offset, end) else {
            return;
        };
        let summary = match summarize_tags(tags) {
            Ok(s) => s,
            Err(detail) => {
                return self.fail(AckError::FragmentMetadataLimitReached, None, detail);
            }
        };
        let end_of_fragment = usize::from(summary.end_of_fragment);
        let count = match self.fragment.as_mut() {
            Some(f) => {
                f.custom_tags += summary.custom;
                f.custom_tags + end_of_fragment
            }
            None => {
                self.pending_custom += summary.custom;
                self.pending_custom + end_of_fragment
            }
        };
        if count > MAX_FRAGMENT_TAGS {
            return self.fail(
                AckError::FragmentMetadataLimitReached,
                None,
                format!(
                    "{count} metadata tags for one fragment, its end-of-fragment tag counted; \
                     at most {MAX_FRAGMENT_TAGS}"
                ),
            );
        }
        if self.fragment.is_none() && summary.end_of_fragment {
            // The Tags of a fragment that has already ended: dropped (module docs).
            tracing::debug!(
                tags = self.pending_custom,
                "Tags of an ended fragment, before any Cluster: dropped"
            );
            self.pending_tags.clear();
            self.pending_custom = 0;
            return;
        }
        if summary.custom > 0 {
            let stored = if !summary.reserved && is_plain(&raw) {
                raw
            } else {
                let mut out = Vec::with_capacity(raw.len());
                encode_tags(&mut out, &custom_only(tags));
                Bytes::from(out)
            };
            if self.fragment.is_some() {
                self.append_to_fragment(stored);
            } else {
                self.pending_tags.push(stored);
            }
        }
        if summary.end_of_fragment
            && let Some(f) = self.fragment.take()
        {
            self.complete(f);
            if self.displaced {
                self.fail_displaced(None);
            } else if self.draining {
                self.end();
            } else if self.expired {
                self.fail(
                    AckError::MaxConnectionDurationReached,
                    None,
                    "the connection reached its maximum duration".into(),
                );
            }
        }
    }
}

/// Counts a Tags element's custom SimpleTags (nested ones included) and checks them and the
/// reserved ones; notes the end-of-fragment tag.
pub(super) fn summarize_tags(tags: &[Tag]) -> Result<TagsSummary, String> {
    let mut summary = TagsSummary {
        custom: 0,
        end_of_fragment: false,
        reserved: false,
    };
    for tag in tags {
        summarize_simple_tags(&tag.simple_tags, &mut summary)?;
    }
    Ok(summary)
}

/// [`summarize_tags`] for SimpleTags and, recursively, their children (whose depth the
/// demuxer bounds).
fn summarize_simple_tags(list: &[SimpleTag], summary: &mut TagsSummary) -> Result<(), String> {
    for st in list {
        let value_len = match &st.value {
            TagValue::None => 0,
            TagValue::String(s) => s.len(),
            TagValue::Binary(b) => b.len(),
        };
        if value_len > MAX_TAG_VALUE_BYTES {
            return Err(format!(
                "metadata tag {:?} has a value of {value_len} bytes; at most {MAX_TAG_VALUE_BYTES}",
                st.name
            ));
        }
        if st.name.starts_with(RESERVED_TAG_PREFIX) {
            if !PRODUCER_TAGS.contains(&st.name.as_str()) {
                return Err(format!(
                    "metadata tag {:?}: a reserved name producers may not send",
                    st.name
                ));
            }
            summary.reserved = true;
            summary.end_of_fragment |= st.name == END_OF_FRAGMENT_TAG;
        } else {
            if st.name.starts_with("AWS") {
                return Err(format!(
                    "metadata tag {:?}: custom names may not start with AWS",
                    st.name
                ));
            }
            if st.name.len() > MAX_TAG_NAME_BYTES {
                return Err(format!(
                    "a metadata tag name of {} bytes; at most {MAX_TAG_NAME_BYTES}",
                    st.name.len()
                ));
            }
            summary.custom += 1;
        }
        summarize_simple_tags(&st.children, summary)?;
    }
    Ok(())
}

/// The Tags without their reserved SimpleTags: each custom SimpleTag as decoded, with its
/// custom children; the custom children of a reserved one in its place. Tags left with no
/// SimpleTag are dropped.
pub(super) fn custom_only(tags: &[Tag]) -> Vec<Tag> {
    tags.iter()
        .filter_map(|tag| {
            let simple_tags = custom_simple_tags(&tag.simple_tags);
            (!simple_tags.is_empty()).then(|| Tag {
                targets: tag.targets.clone(),
                simple_tags,
            })
        })
        .collect()
}

fn custom_simple_tags(list: &[SimpleTag]) -> Vec<SimpleTag> {
    let mut out = Vec::new();
    for st in list {
        if st.name.starts_with(RESERVED_TAG_PREFIX) {
            out.extend(custom_simple_tags(&st.children));
        } else {
            out.push(SimpleTag {
                name: st.name.clone(),
                language: st.language.clone(),
                default: st.default,
                value: st.value.clone(),
                children: custom_simple_tags(&st.children),
            });
        }
    }
    out
}

/// Whether a whole Tags element (as received, already decoded without error) holds nothing
/// but what its decoding accounts for, so that storing it raw stores exactly the tags that
/// were checked (see the module docs).
pub(super) fn is_plain(raw: &Bytes) -> bool {
    let Ok(Some(header)) = vigil_mkv::ebml::read_header(raw) else {
        return false;
    };
    let start = usize::from(header.header_len);
    if raw.len() < start || header.size != Some((raw.len() - start) as u64) {
        return false;
    }
    all_children(raw.slice(start..), |tag| {
        tag.id == ids::TAG
            && all_children(tag.data.clone(), |c| match c.id {
                ids::TARGETS => all_children(c.data.clone(), |t| {
                    matches!(
                        t.id,
                        ids::TARGET_TYPE_VALUE | ids::TARGET_TYPE | ids::TAG_TRACK_UID
                    )
                }),
                ids::SIMPLE_TAG => is_plain_simple_tag(c.data.clone()),
                _ => false,
            })
    })
}

fn is_plain_simple_tag(data: Bytes) -> bool {
    let (mut names, mut languages, mut defaults, mut values) = (0u8, 0u8, 0u8, 0u8);
    all_children(data, |c| match c.id {
        ids::TAG_NAME => {
            names += 1;
            names == 1 && std::str::from_utf8(&c.data).is_ok() && !c.data.contains(&0)
        }
        ids::TAG_LANGUAGE => {
            languages += 1;
            languages == 1
        }
        ids::TAG_DEFAULT => {
            defaults += 1;
            defaults == 1
        }
        ids::TAG_STRING | ids::TAG_BINARY => {
            values += 1;
            values == 1
        }
        ids::SIMPLE_TAG => is_plain_simple_tag(c.data.clone()),
        _ => false,
    })
}

/// Whether every child of a master element's payload reads and passes `f`; Void and CRC-32
/// elements (which hold nothing) pass.
fn all_children(data: Bytes, mut f: impl FnMut(&Child) -> bool) -> bool {
    Children::new(data, 0).all(|c| c.is_ok_and(|c| matches!(c.id, ids::VOID | ids::CRC32) || f(&c)))
}
