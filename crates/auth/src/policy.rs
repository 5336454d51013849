//! Who may do what: principals, their policies, and authorisation.
//!
//! A [`Policy`] is two allow-lists of glob patterns (`*` any run of characters, `?` one
//! character): operation names as the API layer names them (`PutMedia`, `DescribeStream`,
//! `GetDataEndpoint`, `Get*`, `*`) and stream names (`cam-*`, `*`). A request is allowed when
//! its operation matches an operation pattern and, if it acts on one stream, the stream's name
//! matches a stream pattern. Matching is case-sensitive, as AWS operation and stream names are.
//! There are no deny rules and no conditions: keys are scoped, not IAM.
//!
//! Operations that act on no single stream (`ListStreams`) are checked against the operation
//! patterns only; the API layer passes `None` and may filter what it returns with
//! [`Policy::allows_stream`]. Callers resolve a stream ARN to its name before asking.
//!
//! The actions of the other services are named with their service prefix, as in IAM
//! ([`SERVICE_PREFIXES`]): `rekognition:IndexFaces`, `rekognition:Search*`, `kinesis:PutRecord`,
//! `kinesis:*`. Only patterns with the same prefix match them: a key allowed `*` (every KVS
//! operation) gets no access to face collections, which hold biometric data, or to data
//! streams, unless its policy names them. Rekognition actions act on no stream (the stream
//! patterns do not apply to them); Kinesis actions act on a data stream, whose name the stream
//! patterns must match.
//!
//! SNS actions (`sns:Publish`) act on a topic, whose name the stream patterns must match.
//!
//! Operations that make the server reach out ([`NAMED_ONLY`]: `PutCamera`, `DeleteCamera`; a
//! camera is an address the server dials; `sns:Subscribe`, whose endpoint the server posts
//! to) are allowed only by a pattern that names them, without a wildcard: a key allowed `*`,
//! `Put*` or `sns:*` cannot add cameras or subscriptions, so a leaked key with broad rights
//! cannot turn the server into a scanner of its network.
//!
//! The root principal may do everything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The prefix of Rekognition actions and of the operation patterns that match them.
pub const REKOGNITION_PREFIX: &str = "rekognition:";
/// The prefix of Kinesis Data Streams actions and of the operation patterns that match them.
pub const KINESIS_PREFIX: &str = "kinesis:";
/// The prefix of SNS actions and of the operation patterns that match them.
pub const SNS_PREFIX: &str = "sns:";
/// Every service prefix an action may carry; an action without one is a KVS operation.
pub const SERVICE_PREFIXES: [&str; 3] = [REKOGNITION_PREFIX, KINESIS_PREFIX, SNS_PREFIX];

/// An action's service prefix and the rest (`("kinesis:", "PutRecord")`), or `None` for a
/// KVS operation.
pub fn split_service(action: &str) -> Option<(&'static str, &str)> {
    SERVICE_PREFIXES
        .iter()
        .find_map(|p| action.strip_prefix(p).map(|rest| (*p, rest)))
}

/// Operations a pattern must name exactly (no `*` or `?`) to allow: those that make the
/// server dial an address a caller gives.
pub const NAMED_ONLY: [&str; 3] = ["PutCamera", "DeleteCamera", "sns:Subscribe"];

/// The most patterns of each kind in a policy.
pub const MAX_PATTERNS: usize = 100;
/// The longest operation pattern, in bytes.
pub const MAX_OPERATION_PATTERN_LEN: usize = 128;
/// The longest stream-name pattern, in bytes (KVS stream names have at most 256 characters).
pub const MAX_STREAM_PATTERN_LEN: usize = 256;

/// What a key may do: allow-lists of operation and stream-name glob patterns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Operation-name patterns (`PutMedia`, `Describe*`, `*`).
    pub operations: Vec<String>,
    /// Stream-name patterns (`cam-*`, `*`).
    pub streams: Vec<String>,
}

/// A policy that is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// More than [`MAX_PATTERNS`] patterns of one kind.
    #[error("a policy may have at most {MAX_PATTERNS} {kind} patterns")]
    TooManyPatterns {
        /// "operation" or "stream".
        kind: &'static str,
    },
    /// A pattern that is empty, too long, or has characters no name of its kind can have.
    #[error(
        "invalid {kind} pattern '{pattern}': operation patterns use letters, digits, '*' and \
         '?' (at most {MAX_OPERATION_PATTERN_LEN} bytes); stream patterns use letters, digits, \
         '_', '.', '-', '*' and '?' (at most {MAX_STREAM_PATTERN_LEN} bytes)"
    )]
    InvalidPattern {
        /// "operation" or "stream".
        kind: &'static str,
        /// The pattern.
        pattern: String,
    },
}

impl Policy {
    /// Everything on every stream.
    pub fn allow_all() -> Self {
        Self {
            operations: vec!["*".to_owned()],
            streams: vec!["*".to_owned()],
        }
    }

    /// Checks the patterns' count, length and characters.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bare: Vec<String> = self
            .operations
            .iter()
            .map(|p| {
                split_service(p)
                    .map_or(p.as_str(), |(_, rest)| rest)
                    .to_owned()
            })
            .collect();
        check_patterns("operation", &bare, MAX_OPERATION_PATTERN_LEN, |c| {
            c.is_ascii_alphanumeric()
        })?;
        check_patterns("stream", &self.streams, MAX_STREAM_PATTERN_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
        })
    }

    /// Whether the operation matches one of the operation patterns (a prefixed action, such
    /// as `rekognition:IndexFaces`, only patterns with the same prefix; a KVS operation only
    /// patterns without one).
    pub fn allows_operation(&self, operation: &str) -> bool {
        match split_service(operation) {
            Some(_) if NAMED_ONLY.contains(&operation) => {
                self.operations.iter().any(|p| p == operation)
            }
            Some((prefix, action)) => self.operations.iter().any(|p| {
                p.strip_prefix(prefix)
                    .is_some_and(|p| glob_match(p, action))
            }),
            None if NAMED_ONLY.contains(&operation) => {
                self.operations.iter().any(|p| p == operation)
            }
            None => self
                .operations
                .iter()
                .any(|p| split_service(p).is_none() && glob_match(p, operation)),
        }
    }

    /// Whether the stream name matches one of the stream patterns.
    pub fn allows_stream(&self, stream_name: &str) -> bool {
        self.streams.iter().any(|p| glob_match(p, stream_name))
    }

    /// Whether the operation is allowed, on `stream_name` if it acts on one stream.
    pub fn allows(&self, operation: &str, stream_name: Option<&str>) -> bool {
        self.allows_operation(operation) && stream_name.is_none_or(|s| self.allows_stream(s))
    }
}

fn check_patterns(
    kind: &'static str,
    patterns: &[String],
    max_len: usize,
    name_char: impl Fn(char) -> bool,
) -> Result<(), PolicyError> {
    if patterns.len() > MAX_PATTERNS {
        return Err(PolicyError::TooManyPatterns { kind });
    }
    for p in patterns {
        let ok = !p.is_empty()
            && p.len() <= max_len
            && p.chars().all(|c| c == '*' || c == '?' || name_char(c));
        if !ok {
            return Err(PolicyError::InvalidPattern {
                kind,
                pattern: p.chars().take(300).collect(),
            });
        }
    }
    Ok(())
}

/// Whether `text` matches the glob `pattern` (`*`: any run of characters, `?`: one
/// character, anything else: itself). Linear backtracking: at most
/// `pattern.len() * text.len()` steps.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently stands for up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || t.get(ti) == Some(&c) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == '*')
}

/// What kind of key a principal signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The root key: may do everything.
    Root,
    /// A key created with a policy.
    Key {
        /// Its name.
        name: String,
    },
}

/// Who signed a request: the access key and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The access key id.
    pub access_key_id: String,
    /// Root or a scoped key.
    pub kind: PrincipalKind,
    /// What it may do (everything, for root).
    pub policy: Arc<Policy>,
}

impl Principal {
    /// The root principal for this access key id.
    pub fn root(access_key_id: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            kind: PrincipalKind::Root,
            policy: Arc::new(Policy::allow_all()),
        }
    }

    /// Whether this is the root key.
    pub fn is_root(&self) -> bool {
        self.kind == PrincipalKind::Root
    }

    /// Allows or denies `operation` (on `stream_name`, if it acts on one stream).
    pub fn authorize(
        &self,
        operation: &str,
        stream_name: Option<&str>,
    ) -> Result<(), AccessDenied> {
        if self.is_root() || self.policy.allows(operation, stream_name) {
            Ok(())
        } else {
            Err(AccessDenied {
                access_key_id: self.access_key_id.clone(),
                operation: operation.to_owned(),
                stream_name: stream_name.map(str::to_owned),
            })
        }
    }
}

/// A principal may not do what it asked. The API layer answers it as the operation's model
/// says: `NotAuthorizedException` (401) for most kinesisvideo operations,
/// `AccessDeniedException` where an operation models that instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "User: {access_key_id} is not authorized to perform: {}{operation}{}",
    if split_service(operation).is_some() { "" } else { "kinesisvideo:" },
    stream_name.as_deref().map(|s| format!(" on resource: stream/{s}")).unwrap_or_default()
)]
pub struct AccessDenied {
    /// The access key.
    pub access_key_id: String,
    /// The operation asked for.
    pub operation: String,
    /// The stream it acts on, if one.
    pub stream_name: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("cam-*", "cam-1", true),
            ("cam-*", "cam-", true),
            ("cam-*", "cam", false),
            ("cam-?", "cam-12", false),
            ("cam-??", "cam-12", true),
            ("*-front", "garage-front", true),
            ("*-front", "garage-back", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("a*b*c", "abcbc", true),
            ("**", "x", true),
            ("exact", "exact", true),
            ("exact", "Exact", false),
            ("", "", true),
            ("", "x", false),
            ("?", "é", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
        // Pathological patterns stay fast.
        let text = "a".repeat(256);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!glob_match(&pattern, &text));
    }

    #[test]
    fn policies() {
        let p = Policy {
            operations: vec![
                "PutMedia".into(),
                "Describe*".into(),
                "GetDataEndpoint".into(),
            ],
            streams: vec!["cam-*".into()],
        };
        p.validate().unwrap();
        assert!(p.allows("PutMedia", Some("cam-1")));
        assert!(p.allows("DescribeStream", Some("cam-2")));
        assert!(!p.allows("PutMedia", Some("door-1")));
        assert!(!p.allows("DeleteStream", Some("cam-1")));
        assert!(p.allows("DescribeStream", None));
        assert!(!p.allows("ListStreams", None));

        let none = Policy {
            operations: vec!["*".into()],
            streams: vec![],
        };
        assert!(!none.allows("PutMedia", Some("cam-1")));
        assert!(none.allows("ListStreams", None));

        // Adding cameras needs the operation by name: no wildcard grants it.
        let broad = Policy {
            operations: vec!["*".into(), "Put*".into(), "*Camera".into()],
            streams: vec!["*".into()],
        };
        assert!(broad.allows("PutMedia", Some("porch")));
        assert!(broad.allows("ListCameras", None));
        assert!(!broad.allows("PutCamera", Some("porch")));
        assert!(!broad.allows("DeleteCamera", Some("porch")));
        let cameras = Policy {
            operations: vec!["PutCamera".into(), "DeleteCamera".into()],
            streams: vec!["porch".into()],
        };
        assert!(cameras.allows("PutCamera", Some("porch")));
        assert!(cameras.allows("DeleteCamera", Some("porch")));
        assert!(!cameras.allows("PutCamera", Some("garage")));
        assert!(
            !none.allows("rekognition:SearchFacesByImage", None),
            "`*` is every KVS operation, not face collections"
        );

        let faces = Policy {
            operations: vec![
                "rekognition:Search*".into(),
                "rekognition:DetectFaces".into(),
            ],
            streams: vec![],
        };
        faces.validate().unwrap();
        assert!(faces.allows("rekognition:SearchFaces", None));
        assert!(faces.allows("rekognition:SearchFacesByImage", None));
        assert!(faces.allows("rekognition:DetectFaces", None));
        assert!(!faces.allows("rekognition:IndexFaces", None));
        assert!(!faces.allows("SearchFaces", None));
        let all = Policy {
            operations: vec!["rekognition:*".into()],
            streams: vec![],
        };
        assert!(all.allows("rekognition:DeleteCollection", None));
        assert!(!all.allows("ListStreams", None));
        let denied = Principal {
            access_key_id: "AKID".into(),
            kind: PrincipalKind::Key { name: "k".into() },
            policy: Arc::new(faces),
        }
        .authorize("rekognition:IndexFaces", None)
        .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "User: AKID is not authorized to perform: rekognition:IndexFaces"
        );

        let data = Policy {
            operations: vec!["kinesis:Get*".into(), "kinesis:ListShards".into()],
            streams: vec!["faces-*".into()],
        };
        data.validate().unwrap();
        assert!(data.allows("kinesis:GetRecords", Some("faces-1")));
        assert!(data.allows("kinesis:ListShards", Some("faces-1")));
        assert!(!data.allows("kinesis:PutRecord", Some("faces-1")));
        assert!(!data.allows("kinesis:GetRecords", Some("other")));
        assert!(
            !data.allows("GetMedia", Some("faces-1")),
            "kinesis: is not KVS"
        );
        assert!(!data.allows("rekognition:GetFaces", None));
        assert!(
            !Policy::allow_all().allows("kinesis:PutRecord", Some("x")),
            "`*` is every KVS operation, not data streams"
        );
        let denied = Principal {
            access_key_id: "AKID".into(),
            kind: PrincipalKind::Key { name: "k".into() },
            policy: Arc::new(data),
        }
        .authorize("kinesis:PutRecord", Some("faces-1"))
        .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "User: AKID is not authorized to perform: kinesis:PutRecord on resource: \
             stream/faces-1"
        );
    }

    #[test]
    fn invalid_policies() {
        for (ops, streams) in [
            (vec![""], vec!["*"]),
            (vec!["Put Media"], vec!["*"]),
            (vec!["kinesisvideo:PutMedia"], vec!["*"]),
            (vec!["*"], vec!["cam/1"]),
            (vec!["*"], vec![""]),
        ] {
            let p = Policy {
                operations: ops.into_iter().map(String::from).collect(),
                streams: streams.into_iter().map(String::from).collect(),
            };
            assert!(
                matches!(p.validate(), Err(PolicyError::InvalidPattern { .. })),
                "{p:?}"
            );
        }
        let many = Policy {
            operations: vec!["*".into(); 101],
            streams: vec![],
        };
        assert!(matches!(
            many.validate(),
            Err(PolicyError::TooManyPatterns { .. })
        ));
        let long = Policy {
            operations: vec!["*".into()],
            streams: vec!["a".repeat(257)],
        };
        assert!(long.validate().is_err());
    }

    #[test]
    fn principals() {
        let root = Principal::root("ROOT");
        assert!(root.authorize("DeleteStream", Some("x")).is_ok());
        let key = Principal {
            access_key_id: "VKEY".into(),
            kind: PrincipalKind::Key {
                name: "cams".into(),
            },
            policy: Arc::new(Policy {
                operations: vec!["PutMedia".into()],
                streams: vec!["cam-*".into()],
            }),
        };
        assert!(key.authorize("PutMedia", Some("cam-1")).is_ok());
        let denied = key.authorize("PutMedia", Some("door")).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "User: VKEY is not authorized to perform: kinesisvideo:PutMedia on resource: stream/door"
        );
        let denied = key.authorize("ListStreams", None).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "User: VKEY is not authorized to perform: kinesisvideo:ListStreams"
        );
    }
}
