//! The XML side of the query protocol: response documents ([`Xml`]) and text escaping.

use std::fmt::Write as _;

/// SNS's XML namespace, on every response's root element.
pub const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// The operations whose model has no output shape: their response is `<{Op}Response>` with
/// only the `ResponseMetadata` ([`Xml::finish_without_result`]). Every other operation has a
/// `{Op}Result` element, empty or not.
pub const OPERATIONS_WITHOUT_RESULT: &[&str] = &[
    "AddPermission",
    "DeleteEndpoint",
    "DeletePlatformApplication",
    "DeleteTopic",
    "PutDataProtectionPolicy",
    "RemovePermission",
    "SetEndpointAttributes",
    "SetPlatformApplicationAttributes",
    "SetSubscriptionAttributes",
    "SetTopicAttributes",
    "Unsubscribe",
];

/// Whether XML 1.0 can carry `c` (its `Char` production: tab, LF, CR, U+0020 to U+D7FF,
/// U+E000 to U+FFFD, U+10000 up).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Whether every character of `s` is one XML 1.0 can carry ([`is_xml_char`]): what a value
/// must satisfy to come back unchanged in a response.
pub fn is_xml_text(s: &str) -> bool {
    s.chars().all(is_xml_char)
}

/// Appends `s` to `out` as XML text: `<`, `>`, `&`, `"`, `'` as entities, CR as `&#xD;`
/// (so that it survives the parser's line-end normalisation), and each character XML 1.0
/// cannot carry ([`is_xml_char`]) as U+FFFD.
pub fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c if is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// A query-protocol response document under construction.
///
/// Element names come from the code (the model's member names), never from a request, and are
/// written as they are; text is escaped ([`escape_text`]). [`Xml::close`] always closes the
/// innermost open element and [`Xml::finish`] closes whatever is still open, so the document
/// is well-formed however the calls are made.
///
/// ```
/// use vigil_api_sns::query::Xml;
/// let mut x = Xml::new("CreateTopic");
/// x.elem("TopicArn", "arn:aws:sns:us-east-1:123456789012:alerts");
/// assert_eq!(
///     x.finish("r-1"),
///     "<CreateTopicResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
///      <CreateTopicResult><TopicArn>arn:aws:sns:us-east-1:123456789012:alerts</TopicArn>\
///      </CreateTopicResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>\
///      </CreateTopicResponse>"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Xml {
    out: String,
    op: String,
    open: Vec<String>,
}

impl Xml {
    /// Starts `op`'s response: `<{op}Response xmlns=XMLNS><{op}Result>`.
    pub fn new(op: &str) -> Self {
        let mut out = String::with_capacity(256);
        let _ = write!(out, "<{op}Response xmlns=\"{XMLNS}\"><{op}Result>");
        Xml {
            out,
            op: op.to_owned(),
            open: Vec::new(),
        }
    }

    /// `<name>text</name>`, the text escaped.
    pub fn elem(&mut self, name: &str, text: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>");
        escape_text(&mut self.out, text);
        let _ = write!(self.out, "</{name}>");
        self
    }

    /// `<name>`: opens an element for what follows (a structure, a list's `member`).
    pub fn open(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>");
        self.open.push(name.to_owned());
        self
    }

    /// Closes the innermost open element, which should be `name` (checked in debug builds);
    /// nothing when none is open.
    pub fn close(&mut self, name: &str) -> &mut Self {
        if let Some(top) = self.open.pop() {
            debug_assert_eq!(top, name, "Xml::close closes the innermost element");
            let _ = write!(self.out, "</{top}>");
        }
        self
    }

    /// A list of strings: `<name><member>a</member>...</name>`.
    pub fn strings<S: AsRef<str>>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.open(name);
        for s in items {
            self.elem("member", s.as_ref());
        }
        self.close(name)
    }

    /// A map of strings: `<name><entry><key>k</key><value>v</value></entry>...</name>`.
    pub fn map<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        name: &str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> &mut Self {
        self.open(name);
        for (k, v) in entries {
            self.open("entry")
                .elem("key", k.as_ref())
                .elem("value", v.as_ref())
                .close("entry");
        }
        self.close(name)
    }

    /// The document: closes what is open and the `{op}Result`, adds the `ResponseMetadata`
    /// with `request_id` and closes the `{op}Response`.
    pub fn finish(mut self, request_id: &str) -> String {
        while let Some(top) = self.open.pop() {
            let _ = write!(self.out, "</{top}>");
        }
        let op = self.op;
        let _ = write!(self.out, "</{op}Result>");
        push_metadata(&mut self.out, request_id);
        let _ = write!(self.out, "</{op}Response>");
        self.out
    }

    /// The whole response of an operation without an output shape
    /// ([`OPERATIONS_WITHOUT_RESULT`]): `<{op}Response xmlns=XMLNS><ResponseMetadata>
    /// <RequestId>..</RequestId></ResponseMetadata></{op}Response>`.
    pub fn finish_without_result(op: &str, request_id: &str) -> String {
        let mut out = format!("<{op}Response xmlns=\"{XMLNS}\">");
        push_metadata(&mut out, request_id);
        let _ = write!(out, "</{op}Response>");
        out
    }
}

fn push_metadata(out: &mut String, request_id: &str) {
    out.push_str("<ResponseMetadata><RequestId>");
    escape_text(out, request_id);
    out.push_str("</RequestId></ResponseMetadata>");
}
