//! RFC 8785 (JCS) canonical JSON from a parsed [`serde_json::Value`].
//!
//! Written here rather than taken from a crate for speed alone: every
//! appended body is canonicalized on the request path, and the maintained
//! crates (`serde_json_canonicalizer`, `canon-json`) take 7–10 µs for a
//! 700-byte receipt body, ten times a plain serialization, because they
//! buffer every member and re-parse every key; at 256 writers that was a
//! fifth of the ledger's CPU. This takes about 1.1 µs
//! (`examples/canonical_speed.rs`). The parts that are easy to get wrong
//! still come from crates: strings are escaped by `serde_json` (whose escaping is exactly
//! RFC 8785's, §3.2.2.2) and non-integral numbers are formatted by `ryu-js`
//! (ECMAScript's Number-to-String, §3.2.2.3). What is left is the member
//! order (§3.2.3: by UTF-16 code units) and the walk. Tests check the
//! output against `serde_json_canonicalizer` for arbitrary values and
//! against the RFC's own examples.

use serde::Serialize;
use serde_json::{Number, Value};

/// Integers up to this magnitude are exact in an IEEE 754 double, so their
/// ECMAScript form is their decimal digits.
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// A number with no IEEE 754 double form. `serde_json` builds only finite
/// numbers, so this arises only if its `arbitrary_precision` feature is on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("number {0} is not a finite IEEE 754 double")]
pub struct NotADouble(pub String);

/// The canonical form of `value`.
pub fn to_string(value: &Value) -> Result<String, NotADouble> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value)?;
    // Every byte written is either ASCII or copied from a `str`.
    Ok(String::from_utf8(out).expect("canonical JSON is UTF-8"))
}

/// The canonical form of `value`, as bytes.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, NotADouble> {
    to_string(value).map(String::into_bytes)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), NotADouble> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    s.serialize(&mut serde_json::Serializer::new(out))
        .expect("writing to a Vec cannot fail");
}

fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), NotADouble> {
    let mut digits = itoa::Buffer::new();
    let exact = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) if u <= MAX_SAFE_INTEGER => Some(digits.format(u)),
        (None, Some(i)) if i.unsigned_abs() <= MAX_SAFE_INTEGER => Some(digits.format(i)),
        _ => None,
    };
    match exact {
        Some(digits) => out.extend_from_slice(digits.as_bytes()),
        // An integer beyond 2^53 is first rounded to a double, as
        // ECMAScript would read it.
        None => match n.as_f64().filter(|f| f.is_finite()) {
            Some(f) => out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes()),
            None => return Err(NotADouble(n.to_string())),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn canonical(text: &str) -> String {
        to_string(&serde_json::from_str(text).unwrap()).unwrap()
    }

    /// RFC 8785 §3.2.2's example.
    #[test]
    fn the_rfc_example() {
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        assert_eq!(
            canonical(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 §3.2.3's example: UTF-16 order puts the emoji (a surrogate
    /// pair, 0xD83D…) before U+FB33, though its code point is larger.
    #[test]
    fn members_sort_by_utf16_code_units() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        assert_eq!(
            canonical(input),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    /// RFC 8785 Appendix B's numbers, by IEEE 754 bit pattern.
    #[test]
    fn numbers_as_ecmascript_prints_them() {
        let cases: [(u64, &str); 14] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x41b3de4355555555, "333333333.3333333"),
        ];
        for (bits, want) in cases {
            let v = json!(f64::from_bits(bits));
            assert_eq!(to_string(&v).unwrap(), want, "bits {bits:#018x}");
        }
        // Integers beyond 2^53 are read as doubles first.
        assert_eq!(
            to_string(&json!(9007199254740993u64)).unwrap(),
            "9007199254740992"
        );
        assert_eq!(to_string(&json!(u64::MAX)).unwrap(), "18446744073709552000");
        assert_eq!(to_string(&json!(i64::MIN)).unwrap(), "-9223372036854776000");
        assert_eq!(to_string(&json!(-42)).unwrap(), "-42");
    }

    /// A number's text comes back unchanged when it is already in
    /// ECMAScript form: the parser must land on the nearest double
    /// (`serde_json`'s `float_roundtrip`, on in the workspace), or the
    /// canonical bytes of a stored body would change on re-reading.
    #[test]
    fn shortest_float_text_survives_a_parse() {
        for text in [
            "51.248178375505404",
            "0.1",
            "1e-7",
            "5e-324",
            "2.2250738585072014e-308",
        ] {
            assert_eq!(canonical(text), text);
        }
    }

    fn any_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{0,8}",
            // Control characters, the BMP's top (U+E000..) and beyond it
            // (surrogate pairs in UTF-16): where byte order and UTF-16
            // order part ways.
            proptest::collection::vec(
                prop_oneof![
                    Just('\u{1}'),
                    Just('"'),
                    Just('\\'),
                    Just('\u{7f}'),
                    Just('\u{e9}'),
                    Just('\u{e000}'),
                    Just('\u{ffff}'),
                    Just('\u{10000}'),
                    Just('\u{1f600}'),
                    any::<char>(),
                ],
                0..4
            )
            .prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn any_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|u| json!(u)),
            (-(1i64 << 54)..(1i64 << 54)).prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any_number(),
            any_key().prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((any_key(), inner), 0..8)
                    .prop_map(|ms| Value::Object(ms.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_double_in_ecmascript_form_parses_back_to_itself(
            f in any::<f64>().prop_filter("finite", |f| f.is_finite())
        ) {
            let text = ryu_js::Buffer::new().format_finite(f).to_owned();
            prop_assert_eq!(canonical(&text), text);
        }

        #[test]
        fn agrees_with_serde_json_canonicalizer(v in any_value()) {
            let want = serde_json_canonicalizer::to_string(&v).unwrap();
            prop_assert_eq!(to_string(&v).unwrap(), want);
        }
    }
}
