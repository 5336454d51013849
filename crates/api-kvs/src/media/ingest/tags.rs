//! The producer's Tags elements: what they hold (custom tags, reserved ones, the
//! end-of-fragment tag), and their custom part as stored with the fragment.

use bytes::Bytes;
use vigil_mkv::ebml::{Child, Children};
use vigil_mkv::{SimpleTag, Tag, TagValue, ids};

use super::{
    END_OF_FRAGMENT_TAG, MAX_TAG_NAME_BYTES, MAX_TAG_VALUE_BYTES, PRODUCER_TAGS,
    RESERVED_TAG_PREFIX, TagsSummary,
};

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
