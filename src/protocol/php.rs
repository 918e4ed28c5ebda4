//! PHP's `serialize()` format for the values sessions hold: null, bool, int, float, string and
//! arrays. Objects, enums and references are refused (GatewayWorker itself unserializes with
//! `allowed_classes => false`); so are duplicate keys, trailing bytes, nesting deeper than
//! [`Limits::max_depth`] and more than [`Limits::max_items`] values in all.
//!
//! Nothing is allocated beyond what the input can hold: a declared string length or element
//! count is checked against the bytes left before anything is reserved.
//!
//! [`to_json`] and [`from_json`] map between these values and JSON, so a session set by PHP
//! reads as JSON through the HTTP API and the other way round.

use serde_json::{Map, Number, Value};
use std::collections::HashSet;
use std::fmt;

/// One PHP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Php {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer (PHP's are 64-bit).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string: bytes, not necessarily UTF-8.
    Str(Vec<u8>),
    /// An ordered array, keys unique.
    Array(Vec<(Key, Php)>),
}

/// An array key. PHP turns a string key that is a canonical decimal integer into an int key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An int key.
    Int(i64),
    /// A string key (never a canonical integer).
    Str(Vec<u8>),
}

impl Key {
    /// The key PHP would store for the string `s`.
    pub fn from_bytes(s: &[u8]) -> Key {
        match canonical_int(s) {
            Some(i) => Key::Int(i),
            None => Key::Str(s.to_vec()),
        }
    }
}

/// A string PHP treats as an integer key: `0`, or an optional `-` then digits not starting with
/// `0`, within i64 (and not `-0`).
fn canonical_int(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    let ok = match digits {
        [b'0'] => s.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !ok {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Bounds on what [`unserialize`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest array nesting (1 = an array of scalars).
    pub max_depth: usize,
    /// Most values in all (every array element and the arrays themselves).
    pub max_items: usize,
}

impl Limits {
    /// Generous enough for any session, small enough to bound work per message.
    pub const SESSION: Limits = Limits {
        max_depth: 32,
        max_items: 65_536,
    };
}

/// Why bytes are not an accepted serialized value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhpError {
    /// The input ended inside a value.
    Truncated,
    /// A byte that cannot start or continue a value here.
    Unexpected {
        /// Offset in the input.
        at: usize,
    },
    /// An object, enum, custom-serialized class or reference (`O`, `C`, `E`, `r`, `R`).
    Refused {
        /// Offset in the input.
        at: usize,
        /// The type letter.
        kind: u8,
    },
    /// A number that does not parse or does not fit.
    BadNumber {
        /// Offset in the input.
        at: usize,
    },
    /// A declared string length or element count larger than the bytes left.
    BadLength {
        /// Offset in the input.
        at: usize,
    },
    /// The same key twice in one array.
    DuplicateKey {
        /// Offset in the input.
        at: usize,
    },
    /// Arrays nested deeper than the limit.
    TooDeep,
    /// More values than the limit.
    TooManyItems,
    /// Bytes after the value.
    Trailing {
        /// Offset in the input.
        at: usize,
    },
}

impl fmt::Display for PhpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PhpError::Truncated => f.write_str("serialized value truncated"),
            PhpError::Unexpected { at } => write!(f, "unexpected byte at {at}"),
            PhpError::Refused { at, kind } => {
                write!(f, "refused type '{}' at {at}", char::from(kind))
            }
            PhpError::BadNumber { at } => write!(f, "bad number at {at}"),
            PhpError::BadLength { at } => write!(f, "length past the end at {at}"),
            PhpError::DuplicateKey { at } => write!(f, "duplicate array key at {at}"),
            PhpError::TooDeep => f.write_str("arrays nested too deep"),
            PhpError::TooManyItems => f.write_str("too many values"),
            PhpError::Trailing { at } => write!(f, "trailing bytes at {at}"),
        }
    }
}

impl std::error::Error for PhpError {}

/// The value `input` holds, entirely.
pub fn unserialize(input: &[u8], limits: Limits) -> Result<Php, PhpError> {
    let mut p = Parser {
        b: input,
        at: 0,
        items: 0,
        limits,
    };
    let v = p.value(0)?;
    if p.at != input.len() {
        return Err(PhpError::Trailing { at: p.at });
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    at: usize,
    items: usize,
    limits: Limits,
}

/// Fewest bytes one array element can take (`i:0;N;`), to bound a declared count.
const MIN_ELEMENT: usize = 6;

impl Parser<'_> {
    fn peek(&self) -> Result<u8, PhpError> {
        self.b.get(self.at).copied().ok_or(PhpError::Truncated)
    }

    fn expect(&mut self, c: u8) -> Result<(), PhpError> {
        if self.peek()? != c {
            return Err(PhpError::Unexpected { at: self.at });
        }
        self.at += 1;
        Ok(())
    }

    /// Bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8) -> Result<&[u8], PhpError> {
        let rest = self.b.get(self.at..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&c| c == end)
            .ok_or(PhpError::Truncated)?;
        let s = &rest[..n];
        self.at += n + 1;
        Ok(s)
    }

    fn int_until(&mut self, end: u8) -> Result<i64, PhpError> {
        let at = self.at;
        let s = self.until(end)?;
        let digits = s.strip_prefix(b"+").unwrap_or(s);
        let body = digits.strip_prefix(b"-").unwrap_or(digits);
        if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
            return Err(PhpError::BadNumber { at });
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(PhpError::BadNumber { at })
    }

    fn len_until(&mut self, end: u8) -> Result<usize, PhpError> {
        let at = self.at;
        let s = self.until(end)?;
        if s.is_empty() || s.len() > 10 || !s.iter().all(u8::is_ascii_digit) {
            return Err(PhpError::BadNumber { at });
        }
        std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(PhpError::BadNumber { at })
    }

    fn count(&mut self) -> Result<(), PhpError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(PhpError::TooManyItems);
        }
        Ok(())
    }

    fn string(&mut self) -> Result<&[u8], PhpError> {
        let at = self.at;
        let len = self.len_until(b':')?;
        self.expect(b'"')?;
        let start = self.at;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.b.len())
            .ok_or(PhpError::BadLength { at })?;
        self.at = end;
        self.expect(b'"')?;
        self.expect(b';')?;
        Ok(&self.b[start..end])
    }

    fn value(&mut self, depth: usize) -> Result<Php, PhpError> {
        self.count()?;
        let at = self.at;
        let kind = self.peek()?;
        self.at += 1;
        if kind == b'N' {
            self.expect(b';')?;
            return Ok(Php::Null);
        }
        match kind {
            b'b' | b'i' | b'd' | b's' | b'a' => self.expect(b':')?,
            b'O' | b'C' | b'E' | b'r' | b'R' | b'o' => return Err(PhpError::Refused { at, kind }),
            _ => return Err(PhpError::Unexpected { at }),
        }
        match kind {
            b'b' => match self.until(b';')? {
                b"0" => Ok(Php::Bool(false)),
                b"1" => Ok(Php::Bool(true)),
                _ => Err(PhpError::BadNumber { at: at + 2 }),
            },
            b'i' => Ok(Php::Int(self.int_until(b';')?)),
            b'd' => {
                let s = self.until(b';')?;
                parse_float(s)
                    .map(Php::Float)
                    .ok_or(PhpError::BadNumber { at: at + 2 })
            }
            b's' => Ok(Php::Str(self.string()?.to_vec())),
            _ => self.array(depth + 1, at),
        }
    }

    fn array(&mut self, depth: usize, at: usize) -> Result<Php, PhpError> {
        if depth > self.limits.max_depth {
            return Err(PhpError::TooDeep);
        }
        let n = self.len_until(b':')?;
        self.expect(b'{')?;
        let left = self.b.len() - self.at;
        if n > left / MIN_ELEMENT {
            return Err(PhpError::BadLength { at });
        }
        let mut items: Vec<(Key, Php)> = Vec::with_capacity(n);
        // Small arrays are checked for duplicates by a scan, larger ones by a set.
        let mut seen: Option<HashSet<Key>> = (n > 8).then(HashSet::new);
        for _ in 0..n {
            let kat = self.at;
            let key = match self.peek()? {
                b'i' => {
                    self.at += 1;
                    self.expect(b':')?;
                    Key::Int(self.int_until(b';')?)
                }
                b's' => {
                    self.at += 1;
                    self.expect(b':')?;
                    Key::from_bytes(self.string()?)
                }
                _ => return Err(PhpError::Unexpected { at: kat }),
            };
            let dup = match seen.as_mut() {
                Some(set) => !set.insert(key.clone()),
                None => items.iter().any(|(k, _)| *k == key),
            };
            if dup {
                return Err(PhpError::DuplicateKey { at: kat });
            }
            let v = self.value(depth)?;
            items.push((key, v));
        }
        self.expect(b'}')?;
        Ok(Php::Array(items))
    }
}

fn parse_float(s: &[u8]) -> Option<f64> {
    match s {
        b"INF" => return Some(f64::INFINITY),
        b"-INF" => return Some(f64::NEG_INFINITY),
        b"NAN" => return Some(f64::NAN),
        _ => {}
    }
    // Digits, one optional '.', an optional exponent: nothing Rust's parser would take beyond
    // that ("inf", "nan", "infinity" spelled otherwise).
    if s.is_empty()
        || !s
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Appends the serialized form of `v` to `out`, byte for byte as PHP 8's `serialize()`.
pub fn serialize(v: &Php, out: &mut Vec<u8>) {
    match v {
        Php::Null => out.extend_from_slice(b"N;"),
        Php::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
        Php::Int(i) => {
            out.extend_from_slice(format!("i:{i};").as_bytes());
        }
        Php::Float(f) => {
            out.extend_from_slice(b"d:");
            out.extend_from_slice(php_float(*f).as_bytes());
            out.push(b';');
        }
        Php::Str(s) => put_str(out, s),
        Php::Array(items) => {
            out.extend_from_slice(format!("a:{}:{{", items.len()).as_bytes());
            for (k, v) in items {
                match k {
                    Key::Int(i) => out.extend_from_slice(format!("i:{i};").as_bytes()),
                    Key::Str(s) => put_str(out, s),
                }
                serialize(v, out);
            }
            out.push(b'}');
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("s:{}:\"", s.len()).as_bytes());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\";");
}

/// A float as PHP writes it with `serialize_precision = -1`: the shortest digits that read
/// back the same, in fixed notation unless the exponent is below -4 or above 16 (PHP's
/// `%.17H`: `1.0E+25`, `1.0E-5`, `0.1`, `100`, `-0`, `INF`, `NAN`).
pub fn php_float(f: f64) -> String {
    if f.is_nan() {
        return "NAN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "INF" } else { "-INF" }.into();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde±x".
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    // PHP's decpt: the value is 0.DIGITS x 10^decpt.
    let decpt = exp + 1;
    const NDIGIT: i32 = 17;
    if !(-3..=NDIGIT).contains(&decpt) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}.{rest}E{esign}{}", exp.abs());
    }
    if decpt <= 0 {
        let zeros = "0".repeat(decpt.unsigned_abs() as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let d = decpt as usize;
    if digits.len() <= d {
        let zeros = "0".repeat(d - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        format!("{sign}{}.{}", &digits[..d], &digits[d..])
    }
}

/// Why a PHP value has no JSON form, or a JSON value no PHP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// A string or key that is not UTF-8.
    NotUtf8,
    /// A float JSON cannot hold (infinite or NaN).
    NotFinite,
    /// A JSON number PHP cannot hold.
    BadNumber,
    /// A session must be an array (JSON object).
    NotAnArray,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonError::NotUtf8 => "string is not UTF-8",
            JsonError::NotFinite => "float is infinite or NaN",
            JsonError::BadNumber => "number out of range",
            JsonError::NotAnArray => "session is not an array",
        })
    }
}

impl std::error::Error for JsonError {}

/// JSON for a PHP value: a list (keys 0, 1, ... in order) becomes an array, any other array an
/// object (int keys written in decimal).
pub fn to_json(v: &Php) -> Result<Value, JsonError> {
    Ok(match v {
        Php::Null => Value::Null,
        Php::Bool(b) => Value::Bool(*b),
        Php::Int(i) => Value::from(*i),
        Php::Float(f) => Value::Number(Number::from_f64(*f).ok_or(JsonError::NotFinite)?),
        Php::Str(s) => Value::String(utf8(s)?),
        Php::Array(items) => {
            let is_list = items
                .iter()
                .enumerate()
                .all(|(n, (k, _))| *k == Key::Int(n as i64));
            // An empty array is a list too, as PHP's `json_encode` writes it.
            if is_list {
                Value::Array(
                    items
                        .iter()
                        .map(|(_, v)| to_json(v))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Value::Object(object(items)?)
            }
        }
    })
}

fn object(items: &[(Key, Php)]) -> Result<Map<String, Value>, JsonError> {
    let mut m = Map::new();
    for (k, v) in items {
        let key = match k {
            Key::Int(i) => i.to_string(),
            Key::Str(s) => utf8(s)?,
        };
        m.insert(key, to_json(v)?);
    }
    Ok(m)
}

fn utf8(s: &[u8]) -> Result<String, JsonError> {
    String::from_utf8(s.to_vec()).map_err(|_| JsonError::NotUtf8)
}

/// PHP value for JSON: arrays become lists, objects arrays with their keys (numeric strings as
/// int keys, as PHP would store them).
pub fn from_json(v: &Value) -> Result<Php, JsonError> {
    Ok(match v {
        Value::Null => Php::Null,
        Value::Bool(b) => Php::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Php::Int(i),
            // u64 above i64::MAX: PHP would make it a float too.
            (None, Some(f)) => Php::Float(f),
            (None, None) => return Err(JsonError::BadNumber),
        },
        Value::String(s) => Php::Str(s.as_bytes().to_vec()),
        Value::Array(a) => Php::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| Ok((Key::Int(i as i64), from_json(v)?)))
                .collect::<Result<_, JsonError>>()?,
        ),
        Value::Object(m) => session_from_map(m)?,
    })
}

/// A session as a JSON object (the form kefu's registry and HTTP API keep).
pub fn session_to_map(v: &Php) -> Result<Map<String, Value>, JsonError> {
    match v {
        Php::Array(items) => object(items),
        // GatewayWorker treats an empty or null session as no session.
        Php::Null => Ok(Map::new()),
        _ => Err(JsonError::NotAnArray),
    }
}

/// The PHP array of a JSON-object session.
pub fn session_from_map(m: &Map<String, Value>) -> Result<Php, JsonError> {
    let mut items: Vec<(Key, Php)> = Vec::with_capacity(m.len());
    for (k, v) in m {
        let key = Key::from_bytes(k.as_bytes());
        let v = from_json(v)?;
        // Distinct JSON keys stay distinct: only the canonical spelling of an integer becomes
        // an int key.
        items.push((key, v));
    }
    Ok(Php::Array(items))
}

/// Serialized bytes of a JSON-object session (`a:0:{}` for an empty one).
pub fn serialize_session(m: &Map<String, Value>) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    serialize(&session_from_map(m)?, &mut out);
    Ok(out)
}

#[cfg(test)]
#[path = "php_tests.rs"]
mod tests;
