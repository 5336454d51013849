//! Matching: the values a message has at a policy's paths, and the conditions that test them.

use std::net::IpAddr;

use serde_json::Value;

use super::{Cond, IpRange, MAX_WALK_DEPTH, NUMERIC_LIMIT, NUMERIC_SCALE, NumRange, PathVals, Val};
use crate::model::MessageAttribute;

impl PathVals<'_> {
    fn present(&self) -> bool {
        self.vals.iter().any(|v| !matches!(v, Val::Null))
    }

    pub(super) fn matches(&self, conds: &[Cond], any_present: bool) -> bool {
        conds.iter().any(|c| match c {
            Cond::Exists(true) => self.present(),
            Cond::Exists(false) => any_present && !self.present(),
            Cond::AnythingButStr(_) | Cond::AnythingButNum(_) | Cond::AnythingButPrefix(_)
                if self.every_element =>
            {
                !self.vals.is_empty() && self.vals.iter().all(|v| c.test(*v))
            }
            _ => self.vals.iter().any(|v| c.test(*v)),
        })
    }
}

/// Whether SNS compares an attribute at all (`String`, `Number`, `String.Array`).
pub(super) fn is_matchable(a: &MessageAttribute) -> bool {
    matches!(a.base_type(), "String" | "Number" | "String.Array")
}

pub(super) fn attribute_vals<'a>(
    attr: Option<&'a MessageAttribute>,
    array: Option<&'a Value>,
) -> PathVals<'a> {
    let Some(attr) = attr else {
        return PathVals::default();
    };
    let mut vals = Vec::new();
    let mut every_element = false;
    match attr.base_type() {
        "String" => {
            if let Some(s) = attr.string_value.as_deref() {
                vals.push(Val::Str(s));
            }
        }
        "Number" => {
            if let Some(n) = attr.string_value.as_deref().and_then(parse_number) {
                vals.push(Val::Num(n));
            }
        }
        "String.Array" => {
            every_element = true;
            if let Some(v @ Value::Array(_)) = array {
                leaves(v, &mut vals, 0);
            }
        }
        _ => {}
    }
    PathVals {
        vals,
        every_element,
    }
}

/// The value of a `Number` attribute (a decimal number, as SNS accepts them).
fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Collects the leaf values at `path` (nested keys joined with `.`) under `v`.
pub(super) fn collect_path<'a>(v: &'a Value, path: &str, out: &mut Vec<Val<'a>>, depth: usize) {
    if depth > MAX_WALK_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == path {
                    leaves(child, out, depth + 1);
                } else if let Some(rest) = path
                    .strip_prefix(k.as_str())
                    .and_then(|r| r.strip_prefix('.'))
                {
                    collect_path(child, rest, out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_path(item, path, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// The scalar values of `v`: itself, or the elements of arrays (nested arrays flattened);
/// objects are not leaves.
fn leaves<'a>(v: &'a Value, out: &mut Vec<Val<'a>>, depth: usize) {
    if depth > MAX_WALK_DEPTH {
        return;
    }
    match v {
        Value::String(s) => out.push(Val::Str(s)),
        Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                out.push(Val::Num(x));
            }
        }
        Value::Bool(b) => out.push(Val::Bool(*b)),
        Value::Null => out.push(Val::Null),
        Value::Array(items) => {
            for item in items {
                leaves(item, out, depth + 1);
            }
        }
        Value::Object(_) => {}
    }
}

impl Cond {
    /// Whether the condition holds for one value (`exists` is decided per path, not here).
    fn test(&self, v: Val<'_>) -> bool {
        match (self, v) {
            (Cond::Str(p), Val::Str(s)) => str_eq(p, s),
            (Cond::Num(p), Val::Num(x)) => num_eq(*p, x),
            (Cond::Bool(p), Val::Bool(b)) => *p == b,
            (Cond::Null, Val::Null) => true,
            (Cond::Prefix(p), Val::Str(s)) => s.starts_with(p.as_str()),
            (Cond::Suffix(p), Val::Str(s)) => s.ends_with(p.as_str()),
            (Cond::EqualsIgnoreCase(p), Val::Str(s)) => {
                s.chars().flat_map(char::to_lowercase).eq(p.chars())
            }
            (Cond::AnythingButStr(set), Val::Str(s)) => !set.iter().any(|p| str_eq(p, s)),
            (Cond::AnythingButNum(set), Val::Num(x)) => !set.iter().any(|p| num_eq(*p, x)),
            (Cond::AnythingButPrefix(p), Val::Str(s)) => !s.starts_with(p.as_str()),
            (Cond::Range(r), Val::Num(x)) => r.contains(x),
            (Cond::Cidr(r), Val::Str(s)) => parse_ip(s).is_some_and(|ip| r.contains(ip)),
            _ => false,
        }
    }
}

/// A number in units of 10⁻⁵, if it is within ±10⁹.
pub(super) fn scaled(x: f64) -> Option<i64> {
    if x.is_finite() && x.abs() <= NUMERIC_LIMIT {
        Some((x * NUMERIC_SCALE).round() as i64)
    } else {
        None
    }
}

fn num_eq(a: f64, b: f64) -> bool {
    match (scaled(a), scaled(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn str_eq(policy: &str, value: &str) -> bool {
    policy == value
        || match (parse_ip(policy), parse_ip(value)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
}

impl NumRange {
    fn contains(&self, x: f64) -> bool {
        let Some(v) = scaled(x) else {
            return false;
        };
        let lo_ok = match self.lo {
            None => true,
            Some((b, true)) => v >= b,
            Some((b, false)) => v > b,
        };
        let hi_ok = match self.hi {
            None => true,
            Some((b, true)) => v <= b,
            Some((b, false)) => v < b,
        };
        lo_ok && hi_ok
    }
}

impl IpRange {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpRange::V4(lo, hi), IpAddr::V4(a)) => (*lo..=*hi).contains(&u32::from(a)),
            (IpRange::V6(lo, hi), IpAddr::V6(a)) => (*lo..=*hi).contains(&u128::from(a)),
            _ => false,
        }
    }
}

/// What event-ruler takes for an IPv4 literal: four dot-separated runs of digits.
fn looks_like_ipv4(s: &str) -> bool {
    let mut parts = 0;
    for part in s.split('.') {
        parts += 1;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts == 4
}

/// What event-ruler takes for an IPv6 literal: hex digits and colons, at least one colon.
fn looks_like_ipv6(s: &str) -> bool {
    s.contains(':') && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
}

pub(super) fn looks_like_ip(s: &str) -> bool {
    looks_like_ipv4(s) || looks_like_ipv6(s)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    if looks_like_ip(s) {
        s.parse().ok()
    } else {
        None
    }
}
