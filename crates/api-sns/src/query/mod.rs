//! The AWS query protocol as SNS speaks it: request bodies in ([`Form`]), XML documents out
//! ([`Xml`]).
//!
//! # Requests
//!
//! A request is `POST /` with `Content-Type: application/x-www-form-urlencoded;
//! charset=utf-8` and a body of `name=value` pairs joined by `&`, both sides percent-encoded
//! (botocore encodes with Python's `urlencode`, i.e. `quote_plus`: a space is `+`, everything
//! but `A-Z a-z 0-9 _ . - ~` is `%XX` of its UTF-8 bytes). `Action` names the operation and
//! `Version` the API version (`2010-03-31`); the other pairs are the operation's input, its
//! structure flattened into dotted names by botocore's `QuerySerializer`:
//!
//! | model shape | encoding | read with |
//! |---|---|---|
//! | scalar member `Name` | `Name=v`; booleans `true`/`false` | [`Form::get`] |
//! | blob | base64 (standard alphabet, padded) | [`Form::get`], or inside [`RawAttribute`] |
//! | structure member `S` | its members as `S.Member=v` | [`Form::sub`] |
//! | list `L` of strings | `L.member.1=a&L.member.2=b` | [`Form::list`] |
//! | list `L` of structures | `L.member.1.Key=k&L.member.1.Value=v` | [`Form::struct_list`], [`Form::tags`] |
//! | empty list | `L=` (one pair with an empty value) | any of the list readers: empty |
//! | map `M` of strings | `M.entry.1.key=k&M.entry.1.value=v` | [`Form::map`] |
//! | `MessageAttributes` map | `M.entry.1.Name=k&M.entry.1.Value.DataType=String&M.entry.1.Value.StringValue=v` (`.Value.BinaryValue` base64) | [`Form::message_attributes`] |
//! | empty map | nothing at all | any of the map readers: empty |
//!
//! List and map indices count from 1 in the order of the client's list or map. SNS's model has
//! no flattened lists or maps, and the only renamed map members are `MessageAttributes`'
//! (`Name`, `Value`); lists always use `member`. Member names are the model's, case and all
//! (`GetSMSAttributes` and `SetSMSAttributes` take a lower-case `attributes`).
//!
//! # What this decoder accepts
//!
//! - A body of at most [`MAX_PAIRS`] pairs whose names decode to at most [`MAX_KEY_LEN`]
//!   bytes; empty segments (`a=1&&b=2`) are skipped, a segment without `=` is a name with an
//!   empty value, and a `%` not followed by two hex digits stands for itself (the WHATWG
//!   `application/x-www-form-urlencoded` rules). Names and values must decode to UTF-8.
//!   Otherwise the body is [`QueryError::Malformed`].
//! - **A name given twice is [`QueryError::Malformed`].** botocore and the other SDKs build
//!   the body from a map and never repeat a name; AWS documents nothing about repeats, and
//!   look-alikes differ (moto and LocalStack take the first). Refusing leaves no doubt about
//!   which value a request meant. (Percent-encoded spellings of one name count as the same
//!   name: `Na%6De` is `Name`.)
//! - Indices are decimal without sign or leading zeros, from 1 to the reader's `max`, and
//!   contiguous; an index 0, a gap, an index over `max`, a malformed index, a map entry without
//!   its key or its value, the same map key twice, or a name under `L.member.` / `M.entry.`
//!   that does not fit the shape (`L.member.1.Extra` for a list of strings) is
//!   [`QueryError::Invalid`]. Names under `L.` that are neither `member.N` nor `entry.N` are
//!   left alone, as unknown parameters are elsewhere. A bare `L=` (botocore's empty list)
//!   reads as empty; a bare `L` with a value is [`QueryError::Invalid`].
//!
//! Memory: a [`Form`] holds each name and value once (no more than the body decoded), and the
//! readers allocate only what they return, each bounded by its `max` and by [`MAX_PAIRS`].
//! Nothing here panics on any input.
//!
//! # Responses
//!
//! A result is `<{Op}Response xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><{Op}Result>
//! ...</{Op}Result><ResponseMetadata><RequestId>ID</RequestId></ResponseMetadata>
//! </{Op}Response>` (what botocore's `QueryParser` looks for: it finds the model's
//! `resultWrapper`, `{Op}Result`, by name under the root, so an operation whose output shape
//! has no members still needs an empty `<{Op}Result></{Op}Result>`). Operations without an
//! output shape ([`OPERATIONS_WITHOUT_RESULT`]) answer only the `ResponseMetadata`
//! ([`Xml::finish_without_result`]). Lists are `<L><member>..</member></L>`, maps
//! `<M><entry><key>k</key><value>v</value></entry></M>`.
//!
//! Text is escaped ([`escape_text`]): the five XML specials as entities and a carriage return
//! as `&#xD;` (an XML parser turns a literal CR or CR LF into LF; the reference keeps it).
//! Characters XML 1.0 cannot carry at all, not even as references (U+0000 to U+001F other than
//! tab, LF and CR, and U+FFFE, U+FFFF), become U+FFFD, so the document always parses; a
//! handler that must not alter a value refuses it at the door instead ([`is_xml_text`], the
//! character set AWS's query services document for their inputs).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt::Write as _;
use std::ops::Bound;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

#[cfg(test)]
mod tests;
mod xml;

pub use xml::{OPERATIONS_WITHOUT_RESULT, XMLNS, Xml, escape_text, is_xml_char, is_xml_text};

/// The most `name=value` pairs a body may have.
pub const MAX_PAIRS: usize = 10_000;

/// The longest parameter name, in bytes after decoding (the longest SNS sends is under 90:
/// `PublishBatchRequestEntries.member.10.MessageAttributes.entry.10.Value.BinaryValue`).
pub const MAX_KEY_LEN: usize = 512;

/// Base64 as botocore writes blobs (standard alphabet); padding optional on the way in.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A request body the query protocol cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The body is not form-encoded UTF-8, has more than [`MAX_PAIRS`] pairs, a name longer
    /// than [`MAX_KEY_LEN`] or a name twice.
    #[error("{0}")]
    Malformed(String),
    /// An indexed list or map with a gap, index 0, a malformed index or one over its maximum
    /// count, a name that does not fit the shape, a map entry without its key or value, a map
    /// key twice, or a blob that is not base64.
    #[error("{0}")]
    Invalid(String),
}

/// A decoded form body: its names and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: BTreeMap<String, String>,
}

/// A `MessageAttributes` value as the request carries it (the model's
/// `MessageAttributeValue`); the service checks the data type against the values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawAttribute {
    /// `Value.DataType`: `String`, `Number` or `Binary`, optionally with a `.custom` suffix.
    pub data_type: Option<String>,
    /// `Value.StringValue`.
    pub string_value: Option<String>,
    /// `Value.BinaryValue`, base64-decoded.
    pub binary_value: Option<Vec<u8>>,
}

impl Form {
    /// Parses an `application/x-www-form-urlencoded` body (also usable for a URL's query
    /// string, without its `?`). Limits: at most [`MAX_PAIRS`] pairs, each name at most
    /// [`MAX_KEY_LEN`] bytes decoded; a name given twice is refused (module docs).
    pub fn parse(body: &[u8]) -> Result<Form, QueryError> {
        let mut pairs = BTreeMap::new();
        for segment in body.split(|&b| b == b'&') {
            if segment.is_empty() {
                continue;
            }
            if pairs.len() >= MAX_PAIRS {
                return Err(QueryError::Malformed(format!(
                    "The request has more than {MAX_PAIRS} parameters."
                )));
            }
            let mut halves = segment.splitn(2, |&b| b == b'=');
            let raw_key = halves.next().unwrap_or_default();
            let raw_value = halves.next().unwrap_or_default();
            // Cheap first: no encoding makes a name more than three times shorter.
            if raw_key.len() > 3 * MAX_KEY_LEN {
                return Err(key_too_long());
            }
            let key = decode(raw_key)?;
            if key.len() > MAX_KEY_LEN {
                return Err(key_too_long());
            }
            let value = decode(raw_value)?;
            match pairs.entry(key) {
                Entry::Vacant(e) => {
                    e.insert(value);
                }
                Entry::Occupied(e) => {
                    return Err(QueryError::Malformed(format!(
                        "The parameter {} is given more than once.",
                        e.key()
                    )));
                }
            }
        }
        Ok(Form { pairs })
    }

    /// The value of `name`, if the body has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    /// `Action`: the operation's name.
    pub fn action(&self) -> Option<&str> {
        self.get("Action")
    }

    /// `Version`: the API version the client speaks (`2010-03-31`).
    pub fn version(&self) -> Option<&str> {
        self.get("Version")
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the form has no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every name and value, in the names' byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The form encoded again, in the names' byte order, the way botocore encodes (Python's
    /// `quote_plus`: unreserved `A-Z a-z 0-9 _ . - ~` as they are, space as `+`, every other
    /// byte of the UTF-8 as `%XX`). [`Form::parse`] reads it back to an equal form.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            encode_into(&mut out, k);
            out.push('=');
            encode_into(&mut out, v);
        }
        out
    }

    /// The pairs under `prefix.` with the prefix and the dot stripped: a structure member,
    /// e.g. `form.sub("PublishBatchRequestEntries.member.1")`.
    pub fn sub(&self, prefix: &str) -> Form {
        Form {
            pairs: self
                .under(prefix)
                .map(|(rest, v)| (rest.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// A list of strings, `prefix.member.1 ..= N` (contiguous from 1; empty when absent or
    /// given as botocore's empty list, `prefix=`). `max` bounds N.
    pub fn list(&self, prefix: &str, max: usize) -> Result<Vec<String>, QueryError> {
        self.indexed(prefix, "member", max)?
            .into_iter()
            .enumerate()
            .map(|(i, fields)| match fields.as_slice() {
                [(None, v)] => Ok((*v).to_owned()),
                _ => Err(QueryError::Invalid(format!(
                    "{prefix}.member.{} must be a single value.",
                    i + 1
                ))),
            })
            .collect()
    }

    /// A list of structures, `prefix.member.N.*`, as sub-forms (names relative to the
    /// element), in index order. `max` bounds N.
    pub fn struct_list(&self, prefix: &str, max: usize) -> Result<Vec<Form>, QueryError> {
        let mut out = Vec::new();
        for (i, fields) in self.indexed(prefix, "member", max)?.into_iter().enumerate() {
            let mut pairs = BTreeMap::new();
            for (tail, v) in fields {
                let Some(tail) = tail else {
                    return Err(QueryError::Invalid(format!(
                        "{prefix}.member.{} must be a structure.",
                        i + 1
                    )));
                };
                pairs.insert(tail.to_owned(), v.to_owned());
            }
            out.push(Form { pairs });
        }
        Ok(out)
    }

    /// A map of strings, `prefix.entry.N.{key_name}` / `prefix.entry.N.{value_name}` (for
    /// `Attributes`: `"key"` and `"value"`). `max` bounds N.
    pub fn map(
        &self,
        prefix: &str,
        key_name: &str,
        value_name: &str,
        max: usize,
    ) -> Result<BTreeMap<String, String>, QueryError> {
        let mut out = BTreeMap::new();
        for (i, fields) in self.indexed(prefix, "entry", max)?.into_iter().enumerate() {
            let n = i + 1;
            let (mut key, mut value) = (None, None);
            for (tail, v) in fields {
                match tail {
                    Some(t) if t == key_name => key = Some(v),
                    Some(t) if t == value_name => value = Some(v),
                    _ => return Err(unexpected(prefix, "entry", n, tail)),
                }
            }
            let (Some(key), Some(value)) = (key, value) else {
                return Err(QueryError::Invalid(format!(
                    "{prefix}.entry.{n} needs both .{key_name} and .{value_name}."
                )));
            };
            insert_once(&mut out, prefix, key, value.to_owned())?;
        }
        Ok(out)
    }

    /// `MessageAttributes`: `prefix.entry.N.Name` with `prefix.entry.N.Value.DataType`,
    /// `.Value.StringValue` and `.Value.BinaryValue` (base64, decoded here), keyed by name.
    /// An entry needs its name and at least one of the value's members. `max` bounds N.
    pub fn message_attributes(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<BTreeMap<String, RawAttribute>, QueryError> {
        let mut out = BTreeMap::new();
        for (i, fields) in self.indexed(prefix, "entry", max)?.into_iter().enumerate() {
            let n = i + 1;
            let mut name = None;
            let mut attr = RawAttribute::default();
            let mut has_value = false;
            for (tail, v) in fields {
                match tail {
                    Some("Name") => name = Some(v),
                    Some("Value.DataType") => attr.data_type = Some(v.to_owned()),
                    Some("Value.StringValue") => attr.string_value = Some(v.to_owned()),
                    Some("Value.BinaryValue") => {
                        let bytes = BASE64.decode(v).map_err(|_| {
                            QueryError::Invalid(format!(
                                "{prefix}.entry.{n}.Value.BinaryValue is not base64."
                            ))
                        })?;
                        attr.binary_value = Some(bytes);
                    }
                    _ => return Err(unexpected(prefix, "entry", n, tail)),
                }
                has_value |= tail != Some("Name");
            }
            let (Some(name), true) = (name, has_value) else {
                return Err(QueryError::Invalid(format!(
                    "{prefix}.entry.{n} needs both .Name and .Value."
                )));
            };
            insert_once(&mut out, prefix, name, attr)?;
        }
        Ok(out)
    }

    /// Tags: `prefix.member.N.Key` / `prefix.member.N.Value`, in index order (a key given
    /// twice is kept twice: the service decides). `max` bounds N.
    pub fn tags(&self, prefix: &str, max: usize) -> Result<Vec<(String, String)>, QueryError> {
        let mut out = Vec::new();
        for (i, fields) in self.indexed(prefix, "member", max)?.into_iter().enumerate() {
            let n = i + 1;
            let (mut key, mut value) = (None, None);
            for (tail, v) in fields {
                match tail {
                    Some("Key") => key = Some(v),
                    Some("Value") => value = Some(v),
                    _ => return Err(unexpected(prefix, "member", n, tail)),
                }
            }
            let (Some(key), Some(value)) = (key, value) else {
                return Err(QueryError::Invalid(format!(
                    "{prefix}.member.{n} needs both .Key and .Value."
                )));
            };
            out.push((key.to_owned(), value.to_owned()));
        }
        Ok(out)
    }

    /// The pairs whose names start with `prefix.`, with that stripped.
    fn under<'a>(&'a self, prefix: &str) -> impl Iterator<Item = (&'a str, &'a str)> {
        let start = format!("{prefix}.");
        self.pairs
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
            .map_while(move |(k, v)| {
                k.strip_prefix(start.as_str())
                    .map(|rest| (rest, v.as_str()))
            })
    }

    /// The elements of the indexed collection `prefix.{kind}.N[.tail]`, in index order, each
    /// as its (tail, value) pairs; checked to be numbered 1 ..= n with n <= `max`.
    #[allow(clippy::type_complexity)]
    fn indexed<'a>(
        &'a self,
        prefix: &str,
        kind: &str,
        max: usize,
    ) -> Result<Vec<Vec<(Option<&'a str>, &'a str)>>, QueryError> {
        match self.get(prefix) {
            Some(v) if !v.is_empty() => {
                return Err(QueryError::Invalid(format!(
                    "{prefix} must be given as {prefix}.{kind}.N."
                )));
            }
            _ => {}
        }
        let mut elements: BTreeMap<usize, Vec<(Option<&'a str>, &'a str)>> = BTreeMap::new();
        for (rest, v) in self.under(prefix) {
            let Some(rest) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix('.')) else {
                continue;
            };
            let (index, tail) = match rest.split_once('.') {
                Some((index, tail)) => (index, Some(tail)),
                None => (rest, None),
            };
            let n = parse_index(index, max)
                .map_err(|why| QueryError::Invalid(format!("{prefix}.{kind}.{index}: {why}")))?;
            elements.entry(n).or_default().push((tail, v));
        }
        let mut out = Vec::with_capacity(elements.len());
        for (expected, (n, fields)) in (1..).zip(elements) {
            if n != expected {
                return Err(QueryError::Invalid(format!(
                    "{prefix}.{kind}.{expected} is missing (the indices must run from 1 \
                     without gaps)."
                )));
            }
            out.push(fields);
        }
        Ok(out)
    }
}

/// A list or map index: decimal, no sign or leading zero, 1 ..= `max`.
fn parse_index(s: &str, max: usize) -> Result<usize, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
        return Err(if s == "0" {
            "indices start at 1".to_owned()
        } else {
            "not an index".to_owned()
        });
    }
    match s.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("at most {max} elements")),
    }
}

fn unexpected(prefix: &str, kind: &str, n: usize, tail: Option<&str>) -> QueryError {
    QueryError::Invalid(match tail {
        Some(t) => format!("{prefix}.{kind}.{n}.{t} is not a member of this parameter."),
        None => format!("{prefix}.{kind}.{n} must be a structure."),
    })
}

fn insert_once<V>(
    map: &mut BTreeMap<String, V>,
    prefix: &str,
    key: &str,
    value: V,
) -> Result<(), QueryError> {
    match map.entry(key.to_owned()) {
        Entry::Vacant(e) => {
            e.insert(value);
            Ok(())
        }
        Entry::Occupied(_) => Err(QueryError::Invalid(format!(
            "{prefix} has the key {key} more than once."
        ))),
    }
}

fn key_too_long() -> QueryError {
    QueryError::Malformed(format!(
        "A parameter name is longer than {MAX_KEY_LEN} bytes."
    ))
}

/// One name or value percent-decoded (`+` is a space; a `%` without two hex digits is
/// itself), as UTF-8.
fn decode(raw: &[u8]) -> Result<String, QueryError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        i += 1;
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i).and_then(|&h| hex(h));
                let lo = raw.get(i + 1).and_then(|&l| hex(l));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out)
        .map_err(|_| QueryError::Malformed("The request body is not UTF-8.".to_owned()))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `s` percent-encoded as Python's `quote_plus` does.
fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// The body of the `sns_query` fuzz target (`fuzz/fuzz_targets/sns_query.rs`), here so that
/// ordinary tests replay its corpus too. Panics when an invariant fails, which is what the
/// fuzzer looks for:
///
/// - [`Form::parse`] is bounded ([`MAX_PAIRS`], [`MAX_KEY_LEN`]), and what parses encodes back
///   ([`Form::encode`]) to a body that parses to the same form;
/// - every reader runs on the prefixes SNS uses (and on the sub-forms of
///   `PublishBatchRequestEntries`), returning no more than its `max` and, when it succeeds,
///   what re-encoding its result the botocore way gives back;
/// - every name and value written as XML text gives only XML characters and unescapes to
///   the value with the characters XML cannot carry replaced.
pub fn fuzz_form(data: &[u8]) {
    let Ok(form) = Form::parse(data) else {
        return;
    };
    assert!(form.len() <= MAX_PAIRS);
    assert!(form.iter().all(|(k, _)| k.len() <= MAX_KEY_LEN));
    let again = Form::parse(form.encode().as_bytes());
    assert_eq!(
        again.as_ref(),
        Ok(&form),
        "encode then parse is the identity"
    );
    let _ = (form.action(), form.version());

    const MAX: usize = 10;
    for p in ["AWSAccountId", "ActionName", "TagKeys", "attributes"] {
        if let Ok(v) = form.list(p, MAX) {
            assert!(v.len() <= MAX);
            let mut body = String::new();
            for (i, s) in v.iter().enumerate() {
                push_pair(&mut body, &format!("{p}.member.{}", i + 1), s);
            }
            assert_eq!(
                Form::parse(body.as_bytes()).and_then(|f| f.list(p, MAX)),
                Ok(v)
            );
        }
    }
    for p in ["Attributes", "attributes"] {
        if let Ok(m) = form.map(p, "key", "value", MAX) {
            assert!(m.len() <= MAX);
            let mut body = String::new();
            for (i, (k, v)) in m.iter().enumerate() {
                push_pair(&mut body, &format!("{p}.entry.{}.key", i + 1), k);
                push_pair(&mut body, &format!("{p}.entry.{}.value", i + 1), v);
            }
            let back = Form::parse(body.as_bytes()).and_then(|f| f.map(p, "key", "value", MAX));
            assert_eq!(back, Ok(m));
        }
    }
    if let Ok(t) = form.tags("Tags", MAX) {
        assert!(t.len() <= MAX);
    }
    check_attributes(&form, "MessageAttributes");
    if let Ok(entries) = form.struct_list("PublishBatchRequestEntries", MAX) {
        assert!(entries.len() <= MAX);
        for e in &entries {
            let _ = (e.get("Id"), e.get("Message"));
            check_attributes(e, "MessageAttributes");
        }
    }
    let _ = form.sub("Attributes").len();

    for (k, v) in form.iter() {
        for s in [k, v] {
            let mut xml = Xml::new("Publish");
            xml.elem("Message", s);
            let doc = xml.finish("id");
            assert!(is_xml_text(&doc));
            let mut text = String::new();
            escape_text(&mut text, s);
            let expected: String = s
                .chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect();
            assert_eq!(unescape(&text), expected);
        }
    }
}

/// [`fuzz_form`]'s check of a `MessageAttributes` reader: bounded, and what it reads encodes
/// back to itself.
fn check_attributes(form: &Form, p: &str) {
    const MAX: usize = 10;
    let Ok(attrs) = form.message_attributes(p, MAX) else {
        return;
    };
    assert!(attrs.len() <= MAX);
    let mut body = String::new();
    for (i, (name, a)) in attrs.iter().enumerate() {
        let e = format!("{p}.entry.{}", i + 1);
        push_pair(&mut body, &format!("{e}.Name"), name);
        if let Some(t) = &a.data_type {
            push_pair(&mut body, &format!("{e}.Value.DataType"), t);
        }
        if let Some(s) = &a.string_value {
            push_pair(&mut body, &format!("{e}.Value.StringValue"), s);
        }
        if let Some(b) = &a.binary_value {
            push_pair(
                &mut body,
                &format!("{e}.Value.BinaryValue"),
                &BASE64.encode(b),
            );
        }
    }
    let back = Form::parse(body.as_bytes()).and_then(|f| f.message_attributes(p, MAX));
    assert_eq!(back, Ok(attrs));
}

/// Appends `&key=value` (no `&` first), encoded.
fn push_pair(body: &mut String, key: &str, value: &str) {
    if !body.is_empty() {
        body.push('&');
    }
    encode_into(body, key);
    body.push('=');
    encode_into(body, value);
}

/// The inverse of [`escape_text`] on its own output.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let entities = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&apos;", '\''),
            ("&#xD;", '\r'),
        ];
        match entities.iter().find(|(e, _)| from.starts_with(e)) {
            Some((e, c)) => {
                out.push(*c);
                rest = from.get(e.len()..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = from.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}
