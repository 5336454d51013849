//! Subscription filter policies, as Amazon SNS defines them: which published messages a
//! subscription receives.
//!
//! A filter policy is a JSON object whose keys name message properties and whose values are
//! arrays of conditions. A message is delivered when, for every key of the policy (AND), at least
//! one condition of its array (OR) holds. `"$or": [{..}, {..}]` makes alternatives of whole groups
//! of keys. With [`Scope::MessageAttributes`] (the default of the `FilterPolicyScope`
//! subscription attribute) the keys name message attributes and the policy cannot nest; with
//! [`Scope::MessageBody`] the keys name properties of the message body, which must be a JSON
//! object, and the policy nests as the body does.
//!
//! # Conditions
//!
//! | condition | matches |
//! | --- | --- |
//! | `"text"` | a string equal to `text` (case-sensitive; IP addresses compare as addresses) |
//! | `100`, `3.015e2` | a number equal to it, to 5 decimal places (`100` matches `100.0`) |
//! | `true`, `false`, `null` | that JSON value (message bodies and `String.Array` elements only) |
//! | `{"prefix": "bas"}`, `{"suffix": "ball"}` | a string starting (ending) with it |
//! | `{"equals-ignore-case": "tennis"}` | a string equal to it ignoring case |
//! | `{"anything-but": "x" \| 5 \| ["x", "y"] \| [5, 6]}` | a value of the same type (string or number) that is none of those |
//! | `{"anything-but": {"prefix": "bas"}}` | a string not starting with it |
//! | `{"numeric": ["=", 5]}`, `{"numeric": [">", 0, "<=", 150]}` | a number in that range (`<`, `<=`, `=`, `>=`, `>`; a range is `>`/`>=` then `<`/`<=`) |
//! | `{"exists": true}` | a property that is present with a non-null value |
//! | `{"exists": false}` | a property that is absent, in a message that has at least one property |
//! | `{"cidr": "10.0.0.0/24"}` | a string that is an IPv4 or IPv6 address in that block |
//!
//! Types never mix: a `String` attribute or a JSON string never matches a numeric condition, a
//! `Number` attribute or a JSON number never matches a string condition. `Binary` attributes are
//! ignored (as if absent). A `String.Array` attribute's value is a JSON array whose elements are
//! matched one by one: a condition holds if it holds for any element, except `anything-but`,
//! which holds only if it holds for every element ("it matches if none of the array elements are
//! listed in the policy property"). In a message body an array matches if any of its elements
//! matches (for every condition, `anything-but` included, as AWS's examples show), and arrays of
//! objects are looked into. Nested keys join with `.`, and as in AWS a policy key `"a.b"` matches
//! the body `{"a": {"b": ..}}` as well as `{"a.b": ..}`. A body that is not a JSON object matches
//! nothing.
//!
//! # Limits
//!
//! [`FilterPolicy::parse`] rejects what SNS rejects, with SNS's words (the part of its
//! `InvalidParameter` message after `FilterPolicy: `; see [`FilterPolicyError::api_message`]):
//! a policy over 256 KB; JSON that does not parse or is not an object; keys whose value is
//! neither an array nor an object; nested objects with the attribute scope; empty arrays and
//! objects; unknown operators and operands of the wrong type (the messages are those of AWS's
//! `event-ruler`, the matcher SNS filters with); numeric operands outside ±10⁹; more than 5 keys
//! (in each `$or` alternative, counting only top-level keys of a body policy); and more than 150
//! combinations. The combinations are the sum, over the alternatives `$or` makes, of the product
//! over the keys of (number of values × nesting depth of the key), as AWS's documentation
//! computes them (`3 x 4 x 2 x 3 x 1 x 3 = 216` for its nested example). That rule also bounds
//! the nesting of a body policy (a key at depth 151 is too complex by itself), and JSON nests at
//! most 128 levels here: parsing and matching are bounded in time, memory and recursion.
//!
//! # Sources
//!
//! AWS's SNS developer guide: "Amazon SNS subscription filter policies", "Filter policy
//! constraints in Amazon SNS", "String value matching", "Numeric value matching", "Key
//! matching", "AND/OR logic", "Amazon SNS message filtering"; the error texts and the
//! combination and key rules as AWS returned them to LocalStack's AWS-validated tests
//! (`tests/aws/services/sns/test_sns_filter_policy.snapshot.json`, May 2024); the operator
//! grammar and messages of `aws/event-ruler` (`JsonRuleCompiler`, `CIDR`), in the version SNS ran
//! then (`anything-but` took only `prefix` as a nested operator: `{"anything-but": {"suffix": ..}}`
//! is refused with `Unsupported anything-but pattern: suffix`).

mod matching;
mod parse;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::model::Attributes;

use matching::{attribute_vals, collect_path, is_matchable};
use parse::{Compiler, parse_object, product};

/// The largest filter policy SNS accepts, in bytes of JSON (256 KB).
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// The most keys a filter policy (each of its `$or` alternatives) may have.
pub const MAX_KEYS: usize = 5;

/// The most combinations of values a filter policy may have.
pub const MAX_COMBINATIONS: u64 = 150;

/// Numeric operands and compared values must lie within ±this (10⁹).
pub const NUMERIC_LIMIT: f64 = 1e9;

/// Numbers compare to 5 decimal places: they are scaled by 10⁵ and rounded.
const NUMERIC_SCALE: f64 = 1e5;

/// How deep the matcher walks into a JSON value (the parser stops at 128 levels anyway).
const MAX_WALK_DEPTH: usize = 256;

/// Keys that may not name properties inside `$or` (event-ruler reserves them).
const RESERVED_IN_OR: &[&str] = &[
    "exact",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
];

/// What a filter policy applies to: the `FilterPolicyScope` subscription attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// The message attributes (SNS's default).
    #[default]
    MessageAttributes,
    /// The message body, which must be a JSON object.
    MessageBody,
}

impl Scope {
    /// The attribute value: `MessageAttributes` or `MessageBody`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MessageAttributes => "MessageAttributes",
            Scope::MessageBody => "MessageBody",
        }
    }

    /// Parses the attribute value (exactly `MessageAttributes` or `MessageBody`, as SNS
    /// requires).
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "MessageAttributes" => Some(Scope::MessageAttributes),
            "MessageBody" => Some(Scope::MessageBody),
            _ => None,
        }
    }
}

/// Why a filter policy was refused: SNS's wording, the part of the `InvalidParameter` message
/// after `FilterPolicy: ` (as in `Invalid parameter: FilterPolicy: Filter policy is too
/// complex`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterPolicyError(pub String);

impl FilterPolicyError {
    fn new(msg: impl Into<String>) -> Self {
        FilterPolicyError(msg.into())
    }

    /// The whole message of SNS's `InvalidParameter` error: `Invalid parameter: FilterPolicy:
    /// ...` from `SetSubscriptionAttributes`, `Invalid parameter: Attributes Reason:
    /// FilterPolicy: ...` from `Subscribe` (`in_subscribe`). The one error SNS words without
    /// `FilterPolicy: ` (a nested policy with the attribute scope) comes out as SNS words it.
    pub fn api_message(&self, in_subscribe: bool) -> String {
        let reason = if in_subscribe {
            "Attributes Reason: "
        } else {
            ""
        };
        if self.0.starts_with("Filter policy scope ") {
            format!("Invalid parameter: {reason}{}", self.0)
        } else {
            format!("Invalid parameter: {reason}FilterPolicy: {}", self.0)
        }
    }
}

fn too_complex() -> FilterPolicyError {
    FilterPolicyError::new("Filter policy is too complex")
}

/// A parsed, validated filter policy, ready to match messages.
#[derive(Debug, Clone)]
pub struct FilterPolicy {
    scope: Scope,
    /// The distinct property paths the policy names (nested keys joined with `.`).
    paths: Vec<String>,
    /// The condition arrays of the policy.
    conds: Vec<Vec<Cond>>,
    /// The alternatives (`$or` expanded): a message matches if all entries of one match.
    branches: Vec<Vec<Entry>>,
}

/// One key of one alternative: its path, its conditions, for the limits its top-level key and
/// its weight (values × depth).
#[derive(Debug, Clone, Copy)]
struct Entry {
    path: usize,
    conds: usize,
    top: usize,
    weight: u64,
}

/// One condition of a policy array.
#[derive(Debug, Clone)]
enum Cond {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Prefix(String),
    Suffix(String),
    /// Stored lowercased.
    EqualsIgnoreCase(String),
    AnythingButStr(Vec<String>),
    AnythingButNum(Vec<f64>),
    AnythingButPrefix(String),
    Range(NumRange),
    Exists(bool),
    Cidr(IpRange),
}

/// A numeric range in scaled units; each bound is (value, inclusive).
#[derive(Debug, Clone, Copy)]
struct NumRange {
    lo: Option<(i64, bool)>,
    hi: Option<(i64, bool)>,
}

/// An inclusive range of addresses.
#[derive(Debug, Clone, Copy)]
enum IpRange {
    V4(u32, u32),
    V6(u128, u128),
}

/// A value of a message that conditions test.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Null,
}

/// The values a message has at one path.
#[derive(Debug, Default)]
struct PathVals<'a> {
    vals: Vec<Val<'a>>,
    /// A `String.Array` attribute: `anything-but` must hold for every element.
    every_element: bool,
}

/// A policy as written, before `$or` is expanded.
#[derive(Debug)]
enum Member {
    Field(String, Field),
    Or(Vec<Vec<Member>>),
}

#[derive(Debug)]
enum Field {
    Nested(Vec<Member>),
    Conds(Vec<Cond>),
}

impl FilterPolicy {
    /// Parses and validates a filter policy (the `FilterPolicy` subscription attribute) for the
    /// given scope, with SNS's limits and error messages.
    pub fn parse(json: &str, scope: Scope) -> Result<Self, FilterPolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(FilterPolicyError::new(
                "Filter policy can not be larger than 256 KB",
            ));
        }
        let value: Value = serde_json::from_str(json)
            .map_err(|e| FilterPolicyError::new(format!("failed to parse JSON. {e}")))?;
        let Value::Object(map) = value else {
            return Err(FilterPolicyError::new("Filter is not an object"));
        };
        let members = parse_object(&map, scope, false)?;
        drop(map);

        let mut compiler = Compiler::default();
        let branches = compiler.expand(members, "", 1, None, vec![Vec::new()])?;
        let total = branches
            .iter()
            .fold(0u64, |acc, b| acc.saturating_add(product(b)));
        if total > MAX_COMBINATIONS {
            return Err(too_complex());
        }
        Ok(FilterPolicy {
            scope,
            paths: compiler.paths,
            conds: compiler.conds,
            branches,
        })
    }

    /// The scope the policy was parsed for.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Matches the message attributes (whatever the scope): a `String` attribute by its string
    /// value, a `Number` attribute by its numeric value, a `String.Array` attribute by the
    /// elements of the JSON array its string value holds (any element matching a condition
    /// matches it, but `anything-but` must hold for every element). `Binary` attributes are
    /// never matched, and count as absent.
    pub fn matches_attributes(&self, attrs: &Attributes) -> bool {
        let any_present = attrs.values().any(is_matchable);
        // The arrays of String.Array attributes, parsed once per path.
        let arrays: Vec<Option<Value>> = self
            .paths
            .iter()
            .map(|p| {
                attrs
                    .get(p)
                    .filter(|a| a.base_type() == "String.Array")
                    .and_then(|a| a.string_value.as_deref())
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
            })
            .collect();
        let vals: Vec<PathVals<'_>> = self
            .paths
            .iter()
            .zip(arrays.iter())
            .map(|(p, array)| attribute_vals(attrs.get(p), array.as_ref()))
            .collect();
        self.eval(&vals, any_present)
    }

    /// Matches the message body (whatever the scope): it must be a JSON object; nested keys
    /// follow its nesting, and an array matches if any of its elements does. A body that is
    /// not a JSON object matches nothing.
    pub fn matches_body(&self, body: &str) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return false;
        };
        let Value::Object(map) = &value else {
            return false;
        };
        let any_present = !map.is_empty();
        let vals: Vec<PathVals<'_>> = self
            .paths
            .iter()
            .map(|p| {
                let mut vals = Vec::new();
                collect_path(&value, p, &mut vals, 0);
                PathVals {
                    vals,
                    every_element: false,
                }
            })
            .collect();
        self.eval(&vals, any_present)
    }

    /// Matches the message by the policy's scope: its attributes or its body.
    pub fn matches(&self, attrs: &Attributes, body: &str) -> bool {
        match self.scope {
            Scope::MessageAttributes => self.matches_attributes(attrs),
            Scope::MessageBody => self.matches_body(body),
        }
    }

    fn eval(&self, vals: &[PathVals<'_>], any_present: bool) -> bool {
        self.branches.iter().any(|branch| {
            branch
                .iter()
                .all(|e| match (vals.get(e.path), self.conds.get(e.conds)) {
                    (Some(pv), Some(conds)) => pv.matches(conds, any_present),
                    _ => false,
                })
        })
    }
}
