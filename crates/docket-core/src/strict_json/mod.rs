//! A strict, bounded first look at untrusted JSON request bodies, made before
//! any tree is built: budgets on size, depth, members, array length, values
//! and string length, and no duplicate keys at any depth.
//!
//! Two problems make this worth a pass of its own. A parser differential:
//! `{"model":"gpt-4.1","model":"gpt-4o-mini"}` reads as the last key to
//! `serde_json` but may read as the first to a provider, so policy would
//! decide on one model while the provider runs another; duplicates are
//! therefore refused, wherever they are. And memory amplification: a few MB
//! of `[0,0,0,…]` or of a 700,000-member object become many times that as a
//! `serde_json::Value`, before any limit on the parsed value can be checked.
//!
//! The walk drives `serde_json`'s own parser with a visitor that keeps
//! nothing but counters and the key set of each open object, rather than
//! lexing the bytes by hand: what it accepts must be exactly what the parse
//! after it accepts, and a second JSON grammar would be a differential of its
//! own. Its memory is a key set per level of object nesting (reused by the
//! next object at that level) and, for a string with escapes, `serde_json`'s
//! buffer for that one string. The path
//! to the value at fault is assembled only as an error unwinds, so a body
//! that passes never builds one.
//!
//! Numbers that do not survive the parse are refused too: one that overflows
//! to infinity (which `serde_json` refuses itself, here reported with its
//! path) and a non-zero literal that underflows to `0.0`, such as `1e-400`,
//! which `serde_json` quietly reads as zero. The visitor sees only the double,
//! not the literal, so for each `0.0` the walk reads the literal from the
//! bytes: the last string it was handed without escapes is a slice of the
//! body, which says where the walk is, and the few bytes from there to the
//! number (structure, whitespace, other numbers) are scanned. Each byte is
//! scanned at most once, and a body with no `0.0` is not scanned at all.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

/// The deepest `max_depth` honoured. `serde_json` refuses the 128th nested
/// array or object before a visitor sees it; held to 126, the walk refuses
/// the 127th itself, so depth is always reported as
/// [`StrictJsonError::TooDeep`] with its path, never as a syntax error.
pub const MAX_DEPTH_CEILING: usize = 126;

/// Keys and number literals longer than this many characters are cut short
/// (with a `…`) in errors: errors reach clients and logs, and the text
/// at fault can be as long as the body.
const SHOWN_CHARS: usize = 64;

/// An object's keys are compared by a linear search up to this many, then
/// moved into a hash set: most objects are small, and hashing each key of a
/// two-member message costs more than comparing it.
const LINEAR_KEYS: usize = 16;

/// Budgets for one JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the whole body.
    pub max_bytes: usize,
    /// Arrays and objects nested in one another; the top-level one is depth
    /// 1. Values above [`MAX_DEPTH_CEILING`] act as that.
    pub max_depth: usize,
    /// Members of any one object.
    pub max_members: usize,
    /// Elements of any one array.
    pub max_array_len: usize,
    /// Values in the whole document: every scalar, array and object,
    /// the top-level value included. This is what bounds the memory of the
    /// tree a passing body is parsed into.
    pub max_total_values: usize,
    /// Bytes of any one string or key, once unescaped (UTF-8).
    pub max_string_bytes: usize,
    /// Integer literals beyond ±2^53 refused: where the body is stored in
    /// canonical form (RFC 8785 reads every number as a double), such an
    /// integer would be kept as another one.
    pub exact_integers: bool,
}

impl Limits {
    /// Docket's own API (`POST /entries` and the control-plane routes),
    /// whose entry bodies are at most 256 KiB in canonical form.
    ///
    /// Entry bodies nest a few levels and hold tens of members; the slack
    /// above that is for what they carry verbatim (a tool call's `inputs`, a
    /// note's `content`) and for batches of entries. 32,768 values is one
    /// per 8 bytes of a full body, more than any real body reaches, and keeps
    /// the tree of a passing body to a few MB. Strings are not limited below
    /// the body size: a parsed string costs its own length, so it does not
    /// amplify memory, and refusing a long tool input would lose the record
    /// of a real call; routes that take only short fields can set less.
    pub const API: Limits = Limits {
        max_bytes: 256 * 1024,
        max_depth: 32,
        max_members: 1024,
        max_array_len: 4096,
        max_total_values: 32_768,
        max_string_bytes: 256 * 1024,
        exact_integers: true,
    };

    /// Model requests through the gateway: up to 8 MiB (the server's
    /// default `max_body_bytes`), because images and documents travel inside
    /// them as base64 strings, which is also why one string may take the
    /// whole body.
    ///
    /// Arrays hold up to 16,384 elements: a long agent conversation has
    /// thousands of messages, and an embeddings request up to 2,048 inputs or
    /// a token array of up to 8,192 ids. 400,000 values admits the largest
    /// embeddings request OpenAI accepts (300,000 tokens as id arrays) and
    /// cuts the worst case tenfold: 8 MiB of `[0,0,…]` is four million
    /// values. 8,192 members per object leaves room for large JSON-schema
    /// `properties` maps in tool and response-format definitions; depth 64
    /// for nested schemas.
    pub const GATEWAY: Limits = Limits {
        max_bytes: 8 * 1024 * 1024,
        max_depth: 64,
        max_members: 8192,
        max_array_len: 16_384,
        max_total_values: 400_000,
        max_string_bytes: 8 * 1024 * 1024,
        // Forwarded as sent, never re-encoded: a provider reads a 64-bit
        // `seed` as written.
        exact_integers: false,
    };
}

// The defaults are reported as set, never silently capped.
const _: () = {
    assert!(Limits::API.max_depth <= MAX_DEPTH_CEILING);
    assert!(Limits::GATEWAY.max_depth <= MAX_DEPTH_CEILING);
};

/// Why a body was refused. Paths are JSONPath-like: `$` is the whole
/// document, `.name` a member, `["a b"]` a member whose name is not a plain
/// identifier, `[3]` an array element.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StrictJsonError {
    #[error("body is {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("duplicate key {} at {path}", json_quoted(.key))]
    DuplicateKey { path: String, key: String },
    #[error("{path} is nested more than {limit} arrays/objects deep")]
    TooDeep { path: String, limit: usize },
    #[error("object at {path} has more than {limit} members")]
    TooManyMembers { path: String, limit: usize },
    #[error("array at {path} has more than {limit} elements")]
    ArrayTooLong { path: String, limit: usize },
    #[error("document has more than {limit} values (the first beyond the limit is at {path})")]
    TooManyValues { path: String, limit: usize },
    #[error("string at {path} is longer than {limit} bytes")]
    StringTooLong { path: String, limit: usize },
    #[error("a key of the object at {path} is longer than {limit} bytes")]
    KeyTooLong { path: String, limit: usize },
    /// A literal a 64-bit float reads as infinity, or as zero though it is
    /// not zero (`1e400`, `1e-400`). Long literals are shown with their
    /// middle cut out, so the exponent stays in view.
    #[error(
        "number {text} at {path} is out of range: a 64-bit float would read it as zero or infinity"
    )]
    NumberOutOfRange { path: String, text: String },
    /// An integer beyond ±2^53 where the body is kept in canonical form,
    /// which would store a neighbouring integer instead.
    #[error(
        "integer {text} at {path} is beyond ±2^53 and would not be kept exactly (JSON numbers are stored as 64-bit floats); send it as a string"
    )]
    InexactInteger { path: String, text: String },
}

/// Checks `bytes` as one JSON document against `limits`, without building
/// it. A body that passes parses with `serde_json` into a value within these
/// budgets, with no duplicate keys and every number as written (up to the
/// rounding of a double).
pub fn check(bytes: &[u8], limits: &Limits) -> Result<(), StrictJsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(StrictJsonError::TooLarge {
            bytes: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let mut walk = Walk {
        bytes,
        limits,
        max_depth: limits.max_depth.min(MAX_DEPTH_CEILING),
        depth: 0,
        open_objects: 0,
        values: 0,
        numbers: 0,
        mark: Mark::default(),
        key_sets: Vec::new(),
        problem: None,
        trail: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = ValueSeed {
        walk: &mut walk,
        extra_element: false,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    walked.map_err(|e| walk.into_error(&e))
}

/// A place in the body the walk is known to have passed: a byte offset at
/// the end of a token, and how many numbers come before it.
#[derive(Clone, Copy, Default)]
struct Mark {
    offset: usize,
    numbers: usize,
}

/// What the walk found wrong, before its path is known.
enum Problem {
    DuplicateKey(String),
    TooDeep,
    TooManyMembers,
    ArrayTooLong,
    TooManyValues,
    StringTooLong,
    KeyTooLong,
    NumberOutOfRange(String),
    InexactInteger(String),
}

/// One step of a path, pushed as an error unwinds (innermost first).
enum Segment {
    Index(usize),
    Key(String),
}

struct Walk<'l, 'de> {
    bytes: &'de [u8],
    limits: &'l Limits,
    max_depth: usize,
    depth: usize,
    open_objects: usize,
    values: usize,
    /// Number literals walked so far.
    numbers: usize,
    mark: Mark,
    /// One per level of object nesting, reused by sibling objects so a body
    /// of many small objects allocates a handful of sets, not one each.
    key_sets: Vec<KeySet<'de>>,
    problem: Option<Problem>,
    trail: Vec<Segment>,
}

impl<'de> Walk<'_, 'de> {
    /// Records `problem` and returns the error that unwinds the walk.
    fn fail<E: de::Error>(&mut self, problem: Problem) -> E {
        self.problem = Some(problem);
        E::custom("refused by strict_json")
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth >= self.max_depth {
            return Err(self.fail(Problem::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    fn number(&mut self) {
        self.numbers += 1;
    }

    /// An integer that fits 64 bits: refused past ±2^53 where integers
    /// must be kept exactly.
    fn integer<E: de::Error>(&mut self, magnitude: u64, negative: bool) -> Result<(), E> {
        self.numbers += 1;
        if self.limits.exact_integers && magnitude > MAX_EXACT {
            let sign = if negative { "-" } else { "" };
            return Err(self.fail(Problem::InexactInteger(format!("{sign}{magnitude}"))));
        }
        Ok(())
    }

    /// A number read as a double that may not be what its literal says:
    /// zero from a literal that is not zero, or (where integers must be
    /// exact) an integer literal too large for 64 bits.
    fn literal<E: de::Error>(&mut self) -> Result<(), E> {
        let ordinal = self.numbers;
        self.numbers += 1;
        // Everything up to this literal has been parsed, so from the mark on
        // the bytes are well-formed JSON and the literal is the
        // `ordinal - mark.numbers`th number after the mark.
        let Some((text, end)) = nth_number(self.bytes, self.mark, ordinal) else {
            // Cannot happen: the scan reads the bytes the parser has just
            // read. Should it, the number passes as `serde_json` reads it
            // rather than a body being refused for a fault of ours.
            return Ok(());
        };
        self.mark = Mark {
            offset: end,
            numbers: ordinal + 1,
        };
        if underflows(text) {
            return Err(self.fail(Problem::NumberOutOfRange(shorten_number(text))));
        }
        if self.limits.exact_integers && !text.contains(['.', 'e', 'E']) && !is_zero(text) {
            return Err(self.fail(Problem::InexactInteger(shorten_number(text))));
        }
        Ok(())
    }

    /// A string the parser lent from the body: it moves the mark to just
    /// past its closing quote.
    fn borrowed(&mut self, s: &'de str) {
        let start = (s.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
        let end = start.saturating_add(s.len());
        if start > self.mark.offset && self.bytes.get(end) == Some(&b'"') {
            self.mark = Mark {
                offset: end + 1,
                numbers: self.numbers,
            };
        }
    }

    fn string<E: de::Error>(&mut self, len: usize) -> Result<(), E> {
        if len > self.limits.max_string_bytes {
            return Err(self.fail(Problem::StringTooLong));
        }
        Ok(())
    }

    fn path(&self) -> String {
        let mut path = String::from("$");
        for segment in self.trail.iter().rev() {
            match segment {
                Segment::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
                Segment::Key(k) if is_identifier(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Segment::Key(k) => {
                    path.push('[');
                    path.push_str(&json_quoted(k));
                    path.push(']');
                }
            }
        }
        path
    }

    fn into_error(self, err: &serde_json::Error) -> StrictJsonError {
        let path = self.path();
        let limits = self.limits;
        match self.problem {
            Some(Problem::DuplicateKey(key)) => StrictJsonError::DuplicateKey { path, key },
            Some(Problem::TooDeep) => StrictJsonError::TooDeep {
                path,
                limit: self.max_depth,
            },
            Some(Problem::TooManyMembers) => StrictJsonError::TooManyMembers {
                path,
                limit: limits.max_members,
            },
            Some(Problem::ArrayTooLong) => StrictJsonError::ArrayTooLong {
                path,
                limit: limits.max_array_len,
            },
            Some(Problem::TooManyValues) => StrictJsonError::TooManyValues {
                path,
                limit: limits.max_total_values,
            },
            Some(Problem::StringTooLong) => StrictJsonError::StringTooLong {
                path,
                limit: limits.max_string_bytes,
            },
            Some(Problem::KeyTooLong) => StrictJsonError::KeyTooLong {
                path,
                limit: limits.max_string_bytes,
            },
            Some(Problem::NumberOutOfRange(text)) => {
                StrictJsonError::NumberOutOfRange { path, text }
            }
            Some(Problem::InexactInteger(text)) => StrictJsonError::InexactInteger { path, text },
            None => match overflowing_literal(self.bytes, err.line(), err.column()) {
                Some(text) => StrictJsonError::NumberOutOfRange {
                    path,
                    text: shorten_number(text),
                },
                None => syntax(err),
            },
        }
    }
}

/// `serde_json`'s own error, its position moved into fields.
fn syntax(err: &serde_json::Error) -> StrictJsonError {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    StrictJsonError::Syntax {
        line: err.line(),
        column: err.column(),
        message,
    }
}

/// The keys of one object seen so far.
#[derive(Default)]
struct KeySet<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

impl<'de> KeySet<'de> {
    fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }

    fn clear(&mut self) {
        self.few.clear();
        self.many.clear();
    }

    /// Adds `key`; false if it was already there.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if self.many.is_empty() {
            if self.few.contains(&key) {
                return false;
            }
            if self.few.len() < LINEAR_KEYS {
                self.few.push(key);
                return true;
            }
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(key)
    }
}

/// Walks one value. `extra_element` marks the element one past an array's
/// limit: it is refused as soon as it turns out to exist.
struct ValueSeed<'w, 'l, 'de> {
    walk: &'w mut Walk<'l, 'de>,
    extra_element: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let walk = self.walk;
        if self.extra_element {
            return Err(walk.fail(Problem::ArrayTooLong));
        }
        walk.values += 1;
        if walk.values > walk.limits.max_total_values {
            return Err(walk.fail(Problem::TooManyValues));
        }
        d.deserialize_any(ValueVisitor(walk))
    }
}

struct ValueVisitor<'w, 'l, 'de>(&'w mut Walk<'l, 'de>);

impl<'de> Visitor<'de> for ValueVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.integer(v.unsigned_abs(), v < 0)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.integer(v, false)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Integer literals past 64 bits arrive here as doubles.
        if v == 0.0 || (self.0.limits.exact_integers && v.abs() >= MAX_EXACT as f64) {
            return self.0.literal();
        }
        self.0.number();
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.0.borrowed(v);
        self.0.string(v.len())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.string(v.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.0;
        walk.enter()?;
        let mut index = 0;
        loop {
            let extra_element = index >= walk.limits.max_array_len;
            let seed = ValueSeed {
                walk: &mut *walk,
                extra_element,
            };
            match seq.next_element_seed(seed) {
                Ok(Some(())) => index += 1,
                Ok(None) => break,
                Err(e) => {
                    // The extra element's error is the array's own.
                    if !extra_element {
                        walk.trail.push(Segment::Index(index));
                    }
                    return Err(e);
                }
            }
        }
        walk.depth -= 1;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.0;
        walk.enter()?;
        // Each level of nesting has its own set, so a nested object's keys
        // never mix with its parent's, and siblings reuse one allocation.
        let level = walk.open_objects;
        if walk.key_sets.len() <= level {
            walk.key_sets.push(KeySet::default());
        }
        walk.key_sets[level].clear();
        walk.open_objects += 1;
        while let Some(key) = map.next_key_seed(KeySeed(&mut *walk))? {
            // A duplicate is named as such even in a full object; the set
            // holds at most one key over the limit.
            let keys = &mut walk.key_sets[level];
            if !keys.insert(key.clone()) {
                return Err(walk.fail(Problem::DuplicateKey(shorten(&key))));
            }
            if keys.len() > walk.limits.max_members {
                return Err(walk.fail(Problem::TooManyMembers));
            }
            let seed = ValueSeed {
                walk: &mut *walk,
                extra_element: false,
            };
            if let Err(e) = map.next_value_seed(seed) {
                walk.trail.push(Segment::Key(shorten(&key)));
                return Err(e);
            }
        }
        walk.open_objects -= 1;
        walk.depth -= 1;
        Ok(())
    }
}

/// Reads one key, borrowed from the body unless it has escapes.
struct KeySeed<'w, 'l, 'de>(&'w mut Walk<'l, 'de>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_, 'de> {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_, 'de> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<Self::Value, E> {
        self.0.borrowed(v);
        self.key_len(v.len())?;
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Self::Value, E> {
        self.key_len(v.len())?;
        Ok(Cow::Owned(v.to_owned()))
    }
}

impl KeySeed<'_, '_, '_> {
    fn key_len<E: de::Error>(&mut self, len: usize) -> Result<(), E> {
        if len > self.0.limits.max_string_bytes {
            return Err(self.0.fail(Problem::KeyTooLong));
        }
        Ok(())
    }
}

/// The number literal with index `ordinal` among the body's numbers, and
/// the offset just past it, found by scanning from `mark`. The bytes from
/// the mark to the literal have been parsed already: outside strings, `-`
/// and digits start numbers and nothing else.
fn nth_number(bytes: &[u8], mark: Mark, ordinal: usize) -> Option<(&str, usize)> {
    let mut numbers = mark.numbers;
    let mut i = mark.offset;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => i = after_string(bytes, i + 1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while bytes.get(i).is_some_and(|&c| is_number_byte(c)) {
                    i += 1;
                }
                if numbers == ordinal {
                    let text = std::str::from_utf8(bytes.get(start..i)?).ok()?;
                    return Some((text, i));
                }
                numbers += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// The index just past the string whose contents start at `i`.
fn after_string(bytes: &[u8], mut i: usize) -> usize {
    loop {
        let Some(rest) = bytes.get(i..) else {
            return i;
        };
        match rest.iter().position(|&c| c == b'"' || c == b'\\') {
            Some(n) if rest[n] == b'\\' => i += n + 2,
            Some(n) => return i + n + 1,
            None => return bytes.len(),
        }
    }
}

fn is_number_byte(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Whether the literal `text` is non-zero but reads as `0.0`. Integers
/// never underflow.
/// Integers up to this magnitude are exact as 64-bit floats.
const MAX_EXACT: u64 = 1 << 53;

/// Whether a literal is a zero written as an integer (`0`, `-0`).
fn is_zero(text: &str) -> bool {
    text.trim_start_matches('-').bytes().all(|b| b == b'0')
}

fn underflows(text: &str) -> bool {
    if !text.contains(['.', 'e', 'E']) {
        return false;
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'))
        && text.parse::<f64>().is_ok_and(|f| f == 0.0)
}

/// The number literal around the position of a `serde_json` error, if the
/// error was that literal overflowing to infinity. `serde_json` reports that
/// at the end of the literal, or within its exponent if the exponent itself
/// is too long for it; either way the literal is the number bytes before the
/// position and the digits from it.
fn overflowing_literal(bytes: &[u8], line: usize, column: usize) -> Option<&str> {
    let line_start = if line <= 1 {
        0
    } else {
        let newline = bytes
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(line - 2)?
            .0;
        newline + 1
    };
    let at = line_start.checked_add(column)?.min(bytes.len());
    let mut start = at;
    while start > 0 && bytes.get(start - 1).is_some_and(|&c| is_number_byte(c)) {
        start -= 1;
    }
    let mut end = at;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    let text = std::str::from_utf8(bytes.get(start..end)?).ok()?;
    text.parse::<f64>()
        .is_ok_and(|f| f.is_infinite())
        .then_some(text)
}

fn is_identifier(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `s` cut to [`SHOWN_CHARS`] characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

fn json_quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// A number literal (ASCII) cut to its first and last characters.
fn shorten_number(text: &str) -> String {
    const HEAD: usize = SHOWN_CHARS - TAIL;
    const TAIL: usize = 24;
    match (
        text.get(..HEAD),
        text.get(text.len().saturating_sub(TAIL)..),
    ) {
        (Some(head), Some(tail)) if text.len() > SHOWN_CHARS => format!("{head}…{tail}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
