//! Parsing and validation of filter policies, with SNS's limits and error messages.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::matching::{looks_like_ip, scaled};
use super::{
    Cond, Entry, Field, FilterPolicyError, IpRange, MAX_COMBINATIONS, MAX_KEYS, Member, NumRange,
    RESERVED_IN_OR, Scope, too_complex,
};

/// Parses a `cidr` operand as event-ruler does (its messages; the block runs from the address
/// given up to the end of its network, and the mask must be below the address width).
fn parse_cidr(s: &str) -> Result<IpRange, FilterPolicyError> {
    let mut parts: Vec<&str> = s.split('/').collect();
    // Java's String.split drops trailing empty strings.
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    let [ip, mask] = parts.as_slice() else {
        return Err(FilterPolicyError::new("Malformed CIDR, one '/' required"));
    };
    let mask: i32 = mask
        .parse()
        .map_err(|_| FilterPolicyError::new("Malformed CIDR, mask bits must be an integer"))?;
    let Ok(mask) = u32::try_from(mask) else {
        return Err(FilterPolicyError::new(
            "Malformed CIDR, mask bits must not be negative",
        ));
    };
    if !looks_like_ip(ip) {
        return Err(FilterPolicyError::new(format!(
            "Nonstandard IP address: {ip}"
        )));
    }
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| FilterPolicyError::new(format!("Invalid IP address: {ip}")))?;
    match addr {
        IpAddr::V4(a) => {
            if mask > 31 {
                return Err(FilterPolicyError::new("IPv4 mask bits must be < 32"));
            }
            let base = u32::from(a);
            let host = u32::MAX.checked_shr(mask).unwrap_or(0);
            Ok(IpRange::V4(base, base | host))
        }
        IpAddr::V6(a) => {
            if mask > 127 {
                return Err(FilterPolicyError::new("IPv6 mask bits must be < 128"));
            }
            let base = u128::from(a);
            let host = u128::MAX.checked_shr(mask).unwrap_or(0);
            Ok(IpRange::V6(base, base | host))
        }
    }
}

/// What Jackson's `getText` shows for a token, in event-ruler's messages (`]` for the end of
/// the array).
fn token_text(v: Option<&Value>) -> String {
    match v {
        None => "]".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Null) => "null".to_owned(),
        Some(Value::Array(_)) => "[".to_owned(),
        Some(Value::Object(_)) => "{".to_owned(),
    }
}

pub(super) fn parse_object(
    map: &Map<String, Value>,
    scope: Scope,
    in_or: bool,
) -> Result<Vec<Member>, FilterPolicyError> {
    if map.is_empty() {
        return Err(FilterPolicyError::new("Empty objects are not allowed"));
    }
    let mut members = Vec::with_capacity(map.len());
    for (key, value) in map {
        if key == "$or" {
            members.push(Member::Or(parse_or(value, scope)?));
            continue;
        }
        if in_or && RESERVED_IN_OR.contains(&key.as_str()) {
            return Err(FilterPolicyError::new(format!(
                "{key} is Ruler reserved fieldName which cannot be used inside $or."
            )));
        }
        let field = match value {
            Value::Object(inner) => {
                if scope == Scope::MessageAttributes {
                    return Err(FilterPolicyError::new(
                        "Filter policy scope MessageAttributes does not support nested filter policy",
                    ));
                }
                Field::Nested(parse_object(inner, scope, in_or)?)
            }
            Value::Array(items) => Field::Conds(parse_values(items)?),
            _ => {
                return Err(FilterPolicyError::new(format!(
                    "\"{key}\" must be an object or an array"
                )));
            }
        };
        members.push(Member::Field(key.clone(), field));
    }
    Ok(members)
}

fn parse_or(value: &Value, scope: Scope) -> Result<Vec<Vec<Member>>, FilterPolicyError> {
    let Value::Array(items) = value else {
        return Err(FilterPolicyError::new(
            "It must be an Array followed with $or.",
        ));
    };
    let mut alternatives = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(map) = item else {
            return Err(FilterPolicyError::new(
                "Only JSON object is allowed in array of $or relationship.",
            ));
        };
        alternatives.push(parse_object(map, scope, true)?);
    }
    if alternatives.len() < 2 {
        return Err(FilterPolicyError::new(
            "There must have at least 2 Objects in $or relationship.",
        ));
    }
    Ok(alternatives)
}

fn parse_values(items: &[Value]) -> Result<Vec<Cond>, FilterPolicyError> {
    if items.is_empty() {
        return Err(FilterPolicyError::new("Empty arrays are not allowed"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) => parse_match_expression(m),
            Value::String(s) => Ok(Cond::Str(s.clone())),
            // Always finite: serde_json has no NaN or infinity.
            Value::Number(n) => Ok(Cond::Num(n.as_f64().unwrap_or(f64::NAN))),
            Value::Bool(b) => Ok(Cond::Bool(*b)),
            Value::Null => Ok(Cond::Null),
            Value::Array(_) => Err(FilterPolicyError::new(
                "Match value must be String, number, true, false, or null",
            )),
        })
        .collect()
}

fn string_operand(v: &Value, op: &str) -> Result<String, FilterPolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(FilterPolicyError::new(format!(
            "{op} match pattern must be a string"
        ))),
    }
}

fn only_one_key() -> FilterPolicyError {
    FilterPolicyError::new("Only one key allowed in match expression")
}

fn too_many_elements() -> FilterPolicyError {
    FilterPolicyError::new("Too many elements in numeric expression")
}

fn parse_match_expression(m: &Map<String, Value>) -> Result<Cond, FilterPolicyError> {
    let Some((op, operand)) = m.iter().next() else {
        return Err(FilterPolicyError::new("Match expression name not found"));
    };
    let single = m.len() == 1;
    let cond = match op.as_str() {
        "prefix" => Cond::Prefix(string_operand(operand, "prefix")?),
        "suffix" => Cond::Suffix(string_operand(operand, "suffix")?),
        "equals-ignore-case" => {
            let s = string_operand(operand, "equals-ignore-case")?;
            Cond::EqualsIgnoreCase(s.chars().flat_map(char::to_lowercase).collect())
        }
        "numeric" => {
            let Value::Array(items) = operand else {
                return Err(FilterPolicyError::new("Value of numeric must be an array."));
            };
            let range = parse_numeric(items)?;
            if !single {
                return Err(too_many_elements());
            }
            Cond::Range(range)
        }
        "anything-but" => {
            let cond = parse_anything_but(operand)?;
            if !single {
                return Err(too_many_elements());
            }
            cond
        }
        "exists" => match operand {
            Value::Bool(b) => Cond::Exists(*b),
            _ => {
                return Err(FilterPolicyError::new(
                    "exists match pattern must be either true or false.",
                ));
            }
        },
        // event-ruler words a non-string CIDR as it words a non-string prefix.
        "cidr" => Cond::Cidr(parse_cidr(&string_operand(operand, "prefix")?)?),
        other => {
            return Err(FilterPolicyError::new(format!(
                "Unrecognized match type {other}"
            )));
        }
    };
    if !single {
        return Err(only_one_key());
    }
    Ok(cond)
}

/// A numeric operand within ±10⁹, in scaled units.
fn numeric_operand(x: f64) -> Result<i64, FilterPolicyError> {
    scaled(x)
        .ok_or_else(|| FilterPolicyError::new("Value must be between -1.0E9 and 1.0E9, inclusive"))
}

fn number_of(v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Number(n)) => n.as_f64().filter(|x| x.is_finite()),
        _ => None,
    }
}

fn parse_numeric(items: &[Value]) -> Result<NumRange, FilterPolicyError> {
    let mut it = items.iter();
    let first = it.next();
    let Some(Value::String(op)) = first else {
        return Err(FilterPolicyError::new(format!(
            "Invalid member in numeric match: {}",
            token_text(first)
        )));
    };
    let must_be_numeric =
        |name: &str| FilterPolicyError::new(format!("Value of {name} must be numeric"));
    match op.as_str() {
        "=" => {
            let x = number_of(it.next()).ok_or_else(|| must_be_numeric("equals"))?;
            if it.next().is_some() {
                return Err(too_many_elements());
            }
            let v = numeric_operand(x)?;
            Ok(NumRange {
                lo: Some((v, true)),
                hi: Some((v, true)),
            })
        }
        "<" | "<=" => {
            let x = number_of(it.next()).ok_or_else(|| must_be_numeric(op))?;
            if it.next().is_some() {
                return Err(too_many_elements());
            }
            Ok(NumRange {
                lo: None,
                hi: Some((numeric_operand(x)?, op == "<=")),
            })
        }
        ">" | ">=" => {
            let bottom = number_of(it.next()).ok_or_else(|| must_be_numeric(op))?;
            let lo = (bottom, op == ">=");
            let next = it.next();
            let Some(next) = next else {
                return Ok(NumRange {
                    lo: Some((numeric_operand(bottom)?, lo.1)),
                    hi: None,
                });
            };
            let Value::String(op2) = next else {
                return Err(FilterPolicyError::new(format!(
                    "Bad value in numeric range: {}",
                    token_text(Some(next))
                )));
            };
            if op2 != "<" && op2 != "<=" {
                return Err(FilterPolicyError::new(format!(
                    "Bad numeric range operator: {op2}"
                )));
            }
            let top = number_of(it.next()).ok_or_else(|| must_be_numeric(op2))?;
            if it.next().is_some() {
                return Err(FilterPolicyError::new(
                    "Too many terms in numeric range expression",
                ));
            }
            let lo_v = numeric_operand(bottom)?;
            let hi_v = numeric_operand(top)?;
            if bottom >= top {
                return Err(FilterPolicyError::new("Bottom must be less than top"));
            }
            Ok(NumRange {
                lo: Some((lo_v, lo.1)),
                hi: Some((hi_v, op2 == "<=")),
            })
        }
        _ => Err(FilterPolicyError::new(format!(
            "Unrecognized numeric range operator: {op}"
        ))),
    }
}

fn parse_anything_but(operand: &Value) -> Result<Cond, FilterPolicyError> {
    match operand {
        Value::Object(m) => {
            let Some((inner, v)) = m.iter().next() else {
                return Err(FilterPolicyError::new(
                    "Anything-But expression name not found",
                ));
            };
            if inner != "prefix" {
                return Err(FilterPolicyError::new(format!(
                    "Unsupported anything-but pattern: {inner}"
                )));
            }
            let prefix = string_operand(v, "prefix")?;
            if prefix.is_empty() {
                return Err(FilterPolicyError::new("Null prefix not allowed"));
            }
            if m.len() > 1 {
                return Err(only_one_key());
            }
            Ok(Cond::AnythingButPrefix(prefix))
        }
        Value::Array(items) => {
            let mut strings = Vec::new();
            let mut numbers = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => strings.push(s.clone()),
                    Value::Number(_) => {
                        let x = number_of(Some(item)).unwrap_or(f64::INFINITY);
                        numeric_operand(x)?;
                        numbers.push(x);
                    }
                    _ => {
                        return Err(FilterPolicyError::new(
                            "Inside anything but list, start|null|boolean is not supported.",
                        ));
                    }
                }
            }
            match (strings.is_empty(), numbers.is_empty()) {
                (false, true) => Ok(Cond::AnythingButStr(strings)),
                (true, false) => Ok(Cond::AnythingButNum(numbers)),
                _ => Err(FilterPolicyError::new(
                    "Inside anything but list, either all values are number or string, mixed type is not supported",
                )),
            }
        }
        Value::String(s) => Ok(Cond::AnythingButStr(vec![s.clone()])),
        Value::Number(_) => {
            let x = number_of(Some(operand)).unwrap_or(f64::INFINITY);
            numeric_operand(x)?;
            Ok(Cond::AnythingButNum(vec![x]))
        }
        _ => Err(FilterPolicyError::new(
            "Value of anything-but must be an array or single string/number value.",
        )),
    }
}

/// The product of an alternative's weights.
pub(super) fn product(branch: &[Entry]) -> u64 {
    branch
        .iter()
        .fold(1u64, |acc, e| acc.saturating_mul(e.weight))
}

/// Expands `$or` into alternatives, interning paths, checking the limits as it goes so that
/// no more than [`MAX_COMBINATIONS`] alternatives ever exist.
#[derive(Debug, Default)]
pub(super) struct Compiler {
    pub(super) paths: Vec<String>,
    tops: Vec<String>,
    pub(super) conds: Vec<Vec<Cond>>,
}

fn intern(list: &mut Vec<String>, s: &str) -> usize {
    if let Some(i) = list.iter().position(|x| x == s) {
        return i;
    }
    list.push(s.to_owned());
    list.len() - 1
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

impl Compiler {
    pub(super) fn expand(
        &mut self,
        members: Vec<Member>,
        prefix: &str,
        depth: u64,
        top: Option<usize>,
        mut branches: Vec<Vec<Entry>>,
    ) -> Result<Vec<Vec<Entry>>, FilterPolicyError> {
        for member in members {
            match member {
                Member::Field(name, Field::Nested(inner)) => {
                    let top = match top {
                        Some(t) => t,
                        None => intern(&mut self.tops, &name),
                    };
                    let path = join(prefix, &name);
                    branches =
                        self.expand(inner, &path, depth.saturating_add(1), Some(top), branches)?;
                }
                Member::Field(name, Field::Conds(conds)) => {
                    let top = match top {
                        Some(t) => t,
                        None => intern(&mut self.tops, &name),
                    };
                    let path = intern(&mut self.paths, &join(prefix, &name));
                    let weight = u64::try_from(conds.len())
                        .unwrap_or(u64::MAX)
                        .saturating_mul(depth);
                    let entry = Entry {
                        path,
                        conds: self.conds.len(),
                        top,
                        weight,
                    };
                    self.conds.push(conds);
                    for branch in &mut branches {
                        // A key given twice in one alternative: the later one stands, as in
                        // event-ruler.
                        match branch.iter_mut().find(|e| e.path == path) {
                            Some(slot) => *slot = entry,
                            None => branch.push(entry),
                        }
                        check_branch(branch)?;
                    }
                }
                Member::Or(alternatives) => {
                    let mut out: Vec<Vec<Entry>> = Vec::new();
                    for alternative in alternatives {
                        out.extend(self.expand(
                            alternative,
                            prefix,
                            depth,
                            top,
                            branches.clone(),
                        )?);
                        // Every alternative counts at least 1 combination.
                        if u64::try_from(out.len()).unwrap_or(u64::MAX) > MAX_COMBINATIONS {
                            return Err(too_complex());
                        }
                    }
                    branches = out;
                }
            }
        }
        Ok(branches)
    }
}

/// The limits on one alternative: at most 5 (top-level) keys, at most 150 combinations.
fn check_branch(branch: &[Entry]) -> Result<(), FilterPolicyError> {
    let mut tops: Vec<usize> = branch.iter().map(|e| e.top).collect();
    tops.sort_unstable();
    tops.dedup();
    if tops.len() > MAX_KEYS {
        return Err(FilterPolicyError::new(
            "Filter policy can not have more than 5 keys",
        ));
    }
    if product(branch) > MAX_COMBINATIONS {
        return Err(too_complex());
    }
    Ok(())
}
