//! Tests of the strict JSON check: each refusal with its path, the
//! budgets, numbers out of range, and properties against serde_json.
use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Generous enough that only the limit a test names is in play.
const WIDE: Limits = Limits {
    max_bytes: 64 * 1024 * 1024,
    max_depth: MAX_DEPTH_CEILING,
    max_members: 1 << 20,
    max_array_len: 1 << 24,
    max_total_values: 1 << 24,
    max_string_bytes: 64 * 1024 * 1024,
    exact_integers: false,
};

fn wide(text: &str) -> Result<(), StrictJsonError> {
    check(text.as_bytes(), &WIDE)
}

fn with(text: &str, limits: Limits) -> Result<(), StrictJsonError> {
    check(text.as_bytes(), &limits)
}

fn duplicate(path: &str, key: &str) -> Result<(), StrictJsonError> {
    Err(StrictJsonError::DuplicateKey {
        path: path.into(),
        key: key.into(),
    })
}

fn out_of_range(path: &str, text: &str) -> Result<(), StrictJsonError> {
    Err(StrictJsonError::NumberOutOfRange {
        path: path.into(),
        text: text.into(),
    })
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    let top = wide(r#"{"model":"gpt-4.1","model":"gpt-4o-mini"}"#);
    assert_eq!(top, duplicate("$", "model"));
    assert_eq!(
        top.unwrap_err().to_string(),
        r#"duplicate key "model" at $"#
    );
    assert_eq!(wide(r#"{"a":{"b":1,"b":2}}"#), duplicate("$.a", "b"));
    assert_eq!(
        wide(
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"user","content":"a","content":"b"}]}"#
        ),
        duplicate("$.messages[1]", "content")
    );
    assert_eq!(
        wide(r#"[[0, [{"x": {"y": [null, {"z": 1, "z": 1}]}}]]]"#),
        duplicate("$[0][1][0].x.y[1]", "z")
    );
    // Keys are compared as the parser reads them, escapes undone.
    assert_eq!(
        wide(r#"{"model":"a","mod\u0065l":"b"}"#),
        duplicate("$", "model")
    );
    // Names that are not identifiers are quoted in the path.
    assert_eq!(
        wide(r#"{"a b":{"\"":[{"k":1,"k":2}]}}"#),
        duplicate(r#"$["a b"]["\""][0]"#, "k")
    );
}

#[test]
fn the_same_key_in_sibling_objects_is_fine() {
    wide(r#"[{"a":1},{"a":2},{"a":{"a":{"a":3}}}]"#).unwrap();
    wide(r#"{"x":{"a":1,"b":2},"y":{"a":1,"b":2},"a":{"x":1,"y":2}}"#).unwrap();
    wide(r#"{"":1,"a":{"":2}}"#).unwrap();
}

#[test]
fn large_objects_find_duplicates_after_the_linear_search() {
    let members = |n: usize| (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>();
    let body = format!("{{{}}}", members(200).join(","));
    wide(&body).unwrap();
    // A duplicate of the first key, found in the hash set.
    let mut with_dup = members(200);
    with_dup.push(r#""k0":0"#.into());
    let body = format!(r#"{{"big":{{{}}}}}"#, with_dup.join(","));
    assert_eq!(wide(&body), duplicate("$.big", "k0"));
    // A large object's set is emptied for the next object at its level.
    let body = format!(
        "[{{{}}},{{{}}},{{{}}}]",
        members(100).join(","),
        members(3).join(","),
        members(100).join(",")
    );
    wide(&body).unwrap();
}

#[test]
fn depth_is_limited_and_the_path_names_the_container_too_deep() {
    let limits = Limits {
        max_depth: 3,
        ..WIDE
    };
    with(r#"{"a":[{"b":1}]}"#, limits).unwrap();
    let err = with(r#"{"a":[{"b":[1]}]}"#, limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::TooDeep {
            path: "$.a[0].b".into(),
            limit: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "$.a[0].b is nested more than 3 arrays/objects deep"
    );
    // Far beyond serde_json's own limit, still reported as depth.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = check(deep.as_bytes(), &Limits::GATEWAY).unwrap_err();
    assert!(
        matches!(err, StrictJsonError::TooDeep { limit: 64, .. }),
        "{err}"
    );
    let err = wide(&deep).unwrap_err();
    let StrictJsonError::TooDeep { path, limit } = err else {
        panic!("{err}");
    };
    assert_eq!(limit, MAX_DEPTH_CEILING);
    assert_eq!(path, format!("${}", "[0]".repeat(MAX_DEPTH_CEILING)));
    let at_ceiling = format!(
        "{}{}",
        "[".repeat(MAX_DEPTH_CEILING),
        "]".repeat(MAX_DEPTH_CEILING)
    );
    wide(&at_ceiling).unwrap();
}

#[test]
fn members_per_object_are_limited() {
    let limits = Limits {
        max_members: 2,
        ..WIDE
    };
    with(r#"{"x":{"a":1,"b":2},"y":{"a":1,"b":2}}"#, limits).unwrap();
    let err = with(r#"{"x":{"a":1,"b":2,"c":3}}"#, limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::TooManyMembers {
            path: "$.x".into(),
            limit: 2
        }
    );
    assert_eq!(err.to_string(), "object at $.x has more than 2 members");
    // In a full object a repeated key is still named as what it is.
    assert_eq!(
        with(r#"{"x":{"a":1,"b":2,"b":3}}"#, limits),
        duplicate("$.x", "b")
    );
}

#[test]
fn array_length_is_limited() {
    let limits = Limits {
        max_array_len: 3,
        ..WIDE
    };
    with(r#"{"a":[1,2,3],"b":[]}"#, limits).unwrap();
    let err = with(r#"{"a":[[1,2,3,4]]}"#, limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::ArrayTooLong {
            path: "$.a[0]".into(),
            limit: 3
        }
    );
    assert_eq!(err.to_string(), "array at $.a[0] has more than 3 elements");
}

#[test]
fn values_in_the_whole_document_are_limited() {
    let limits = Limits {
        max_total_values: 5,
        ..WIDE
    };
    // The object, "a", its two elements and "b": five.
    with(r#"{"a":[1,2],"b":{}}"#, limits).unwrap();
    let err = with(r#"{"a":[1,2],"b":{"c":3}}"#, limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::TooManyValues {
            path: "$.b.c".into(),
            limit: 5
        }
    );
    assert_eq!(
        err.to_string(),
        "document has more than 5 values (the first beyond the limit is at $.b.c)"
    );
}

#[test]
fn strings_and_keys_are_limited() {
    let limits = Limits {
        max_string_bytes: 7,
        ..WIDE
    };
    with(r#"{"m":[{"role":"user"}]}"#, limits).unwrap();
    let err = with(r#"{"m":[{"role":"user","content":"hello world"}]}"#, limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::StringTooLong {
            path: "$.m[0].content".into(),
            limit: 7
        }
    );
    assert_eq!(
        err.to_string(),
        "string at $.m[0].content is longer than 7 bytes"
    );
    // Measured unescaped: seven escapes are seven bytes.
    with(r#"["\u0041\u0042\u0043\u0044\u0045\u0046\u0047"]"#, limits).unwrap();
    assert!(matches!(
        with(
            r#"["\u0041\u0042\u0043\u0044\u0045\u0046\u0047\u0048"]"#,
            limits
        ),
        Err(StrictJsonError::StringTooLong { .. })
    ));
    let err = with(r#"{"m":{"ok":1,"too_long":2}}"#, limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::KeyTooLong {
            path: "$.m".into(),
            limit: 7
        }
    );
    assert_eq!(
        err.to_string(),
        "a key of the object at $.m is longer than 7 bytes"
    );
}

#[test]
fn bodies_over_the_byte_limit_are_refused_unread() {
    let limits = Limits {
        max_bytes: 10,
        ..WIDE
    };
    with("[1,2,3,4]", limits).unwrap();
    let err = with("[1,2,3,4,5]", limits).unwrap_err();
    assert_eq!(
        err,
        StrictJsonError::TooLarge {
            bytes: 11,
            limit: 10
        }
    );
    assert_eq!(err.to_string(), "body is 11 bytes; the limit is 10");
}

#[test]
fn numbers_that_read_as_zero_or_infinity_are_refused() {
    assert_eq!(wide("1e-400"), out_of_range("$", "1e-400"));
    assert_eq!(wide("-1e-400"), out_of_range("$", "-1e-400"));
    assert_eq!(wide("1e400"), out_of_range("$", "1e400"));
    assert_eq!(wide("-1.5E+400"), out_of_range("$", "-1.5E+400"));
    assert_eq!(
        wide(r#"{"a":[1,2,{"t":1e400}]}"#),
        out_of_range("$.a[2].t", "1e400")
    );
    // An exponent too long for serde_json's own counter.
    assert_eq!(
        wide("[1e999999999999999999]"),
        out_of_range("$[0]", "1e999999999999999999")
    );
    assert_eq!(
        wide("[1e-999999999999999999]"),
        out_of_range("$[0]", "1e-999999999999999999")
    );
    // A literal of 400 integer digits overflows as well.
    let big = format!("[{}]", "9".repeat(400));
    let err = wide(&big).unwrap_err();
    let StrictJsonError::NumberOutOfRange { path, text } = &err else {
        panic!("{err}");
    };
    assert_eq!(path, "$[0]");
    assert_eq!(text, &format!("{}…{}", "9".repeat(40), "9".repeat(24)));
    // Underflow written without an exponent; shown with its middle cut.
    let tiny = format!("0.{}1", "0".repeat(400));
    let err = wide(&format!(r#"{{"p":{tiny}}}"#)).unwrap_err();
    let shown = format!("0.{}…{}1", "0".repeat(38), "0".repeat(23));
    assert_eq!(err, out_of_range("$.p", &shown).unwrap_err());
    assert_eq!(
        err.to_string(),
        format!(
            "number {shown} at $.p is out of range: a 64-bit float would read it as zero or infinity"
        )
    );
}

#[test]
fn an_underflow_is_found_among_honest_zeros_and_numbers_in_strings() {
    // Zeros and numbers before it, and number-like text in strings and
    // keys, must not throw off which number the path is given for.
    let body = r#"{"s":"1e-400 \"2e-400\" 0.0","1e-999":0.0,"t":[0,-0.0,0e-400,3.5],
        "u":{"\\":"\\","v":[1,1e-500]}}"#;
    assert_eq!(wide(body), out_of_range("$.u.v[1]", "1e-500"));
}

#[test]
fn numbers_that_round_trip_are_accepted() {
    for n in [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "0e-400",
        "0.000e999",
        "1e-300",
        "5e-324",
        "1.7976931348623157e308",
        "-9223372036854775808",
        "18446744073709551615",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
    ] {
        wide(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        wide(&format!(r#"{{"n":[{n}]}}"#)).unwrap_or_else(|e| panic!("{n}: {e}"));
    }
}

#[test]
fn malformed_json_is_a_syntax_error_with_its_position() {
    let syntax = |text: &str| match wide(text) {
        Err(StrictJsonError::Syntax {
            line,
            column,
            message,
        }) => (line, column, message),
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(syntax(r#"{"a":1} x"#), (1, 9, "trailing characters".into()));
    assert_eq!(syntax(r#"{"a":1}{"a":1}"#).2, "trailing characters");
    assert_eq!(
        syntax("{\n  \"a\": 1,\n  \"b\" 2\n}"),
        (3, 7, "expected `:`".into())
    );
    assert_eq!(syntax(r#"{"a":1,}"#).0, 1);
    assert_eq!(syntax("[1,2").2, "EOF while parsing a list");
    assert_eq!(syntax("").2, "EOF while parsing a value");
    assert_eq!(syntax("{1:2}").2, "key must be a string");
    assert_eq!(syntax("[NaN]").2, "expected value");
    assert_eq!(syntax("[01]").2, "invalid number");
    syntax("\u{feff}{}");
    syntax(r#"["\ud800"]"#);
    let err = check(b"[\"\xff\"]", &WIDE).unwrap_err();
    assert!(matches!(err, StrictJsonError::Syntax { .. }), "{err}");
    assert_eq!(
        wide(r#"{"a":1} x"#).unwrap_err().to_string(),
        "malformed JSON at line 1, column 9: trailing characters"
    );
    wide(" \n\t{\"a\" : [ true , false , null ] }\r\n ").unwrap();
}

#[test]
fn four_million_zeros_are_refused_without_building_them() {
    let mut body = Vec::with_capacity(8_000_001);
    body.push(b'[');
    for i in 0..4_000_000 {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'0');
    }
    body.push(b']');
    let started = std::time::Instant::now();
    let gateway = check(&body, &Limits::GATEWAY);
    eprintln!("4M zeros, gateway limits: {:?}", started.elapsed());
    assert_eq!(
        gateway,
        Err(StrictJsonError::ArrayTooLong {
            path: "$".into(),
            limit: Limits::GATEWAY.max_array_len
        })
    );
    assert_eq!(
        check(&body, &Limits::API),
        Err(StrictJsonError::TooLarge {
            bytes: 8_000_001,
            limit: Limits::API.max_bytes
        })
    );
    // Within the API's size, the array's length is what stops it.
    let body = format!("[{}]", vec!["0"; 100_000].join(","));
    assert!(body.len() <= Limits::API.max_bytes);
    assert_eq!(
        check(body.as_bytes(), &Limits::API),
        Err(StrictJsonError::ArrayTooLong {
            path: "$".into(),
            limit: Limits::API.max_array_len
        })
    );
}

#[test]
fn zeros_split_over_short_arrays_are_counted() {
    let rows = |rows: usize, len: usize| {
        let row = format!("[{}]", vec!["0"; len].join(","));
        format!("[{}]", vec![row; rows].join(","))
    };
    // 400 rows of 10,000: 8 MB. The root, 39 rows of 10,001 values,
    // the 40th row and 9,959 of its zeros make 400,000.
    let body = rows(400, 10_000);
    assert!(body.len() <= Limits::GATEWAY.max_bytes);
    assert_eq!(
        check(body.as_bytes(), &Limits::GATEWAY),
        Err(StrictJsonError::TooManyValues {
            path: "$[39][9959]".into(),
            limit: Limits::GATEWAY.max_total_values
        })
    );
    // 50 rows of 1,000: the root, 32 rows of 1,001, the 33rd row and
    // 734 of its zeros make 32,768.
    let body = rows(50, 1000);
    assert!(body.len() <= Limits::API.max_bytes);
    assert_eq!(
        check(body.as_bytes(), &Limits::API),
        Err(StrictJsonError::TooManyValues {
            path: "$[32][734]".into(),
            limit: Limits::API.max_total_values
        })
    );
}

#[test]
fn a_700_000_member_object_is_refused() {
    let members: Vec<String> = (0..700_000).map(|i| format!(r#""{i:x}":0"#)).collect();
    let body = format!("{{{}}}", members.join(","));
    assert!(body.len() <= Limits::GATEWAY.max_bytes);
    let started = std::time::Instant::now();
    let result = check(body.as_bytes(), &Limits::GATEWAY);
    eprintln!("700,000 members, gateway limits: {:?}", started.elapsed());
    assert_eq!(
        result,
        Err(StrictJsonError::TooManyMembers {
            path: "$".into(),
            limit: Limits::GATEWAY.max_members
        })
    );
}

/// An OpenAI chat completion request as an agent sends it: system
/// prompt, tools with JSON-schema parameters, and 200 messages of
/// text, content parts, tool calls and tool results.
fn chat_request(messages: usize) -> Value {
    let tools: Vec<Value> = (0..20)
        .map(|t| {
            json!({
                "type": "function",
                "function": {
                    "name": format!("tool_{t}"),
                    "description": "Reads a file from the workspace and returns its text.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string", "description": "Path below the root"},
                            "range": {
                                "type": "object",
                                "properties": {
                                    "start": {"type": "integer", "minimum": 0},
                                    "end": {"type": "integer", "minimum": 0}
                                },
                                "required": ["start", "end"],
                                "additionalProperties": false
                            },
                            "encoding": {"type": "string", "enum": ["utf-8", "latin-1"]}
                        },
                        "required": ["path"],
                        "additionalProperties": false
                    },
                    "strict": true
                }
            })
        })
        .collect();
    let mut history = vec![json!({
        "role": "system",
        "content": "You are a careful coding agent. ".repeat(40)
    })];
    for i in 1..messages {
        history.push(match i % 4 {
            0 => json!({"role": "user", "content": [
                {"type": "text", "text": format!("Step {i}: please look at the next file.")},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ]}),
            1 => json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{i}"),
                "type": "function",
                "function": {"name": "tool_3", "arguments": "{\"path\":\"src/main.rs\",\"range\":{\"start\":0,\"end\":120}}"}
            }]}),
            2 => json!({"role": "tool", "tool_call_id": format!("call_{}", i - 1),
                "content": "fn main() {\n    println!(\"hello\");\n}\n".repeat(30)}),
            _ => json!({"role": "assistant", "content": "The file defines main; next I will read its tests. ".repeat(5)}),
        });
    }
    json!({
        "model": "gpt-4.1",
        "messages": history,
        "tools": tools,
        "tool_choice": "auto",
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": 4096,
        "stream": true,
        "stream_options": {"include_usage": true},
        "logit_bias": {"50256": -100, "198": 0.0},
        "metadata": {"task": "review", "run": "42"},
        "user": "agent-7"
    })
}

#[test]
fn a_realistic_chat_request_with_200_messages_passes_gateway_limits() {
    let body = serde_json::to_vec_pretty(&chat_request(200)).unwrap();
    let started = std::time::Instant::now();
    check(&body, &Limits::GATEWAY).unwrap();
    eprintln!(
        "chat request of {} bytes, gateway limits: {:?}",
        body.len(),
        started.elapsed()
    );
    // The same with one of its messages given a second role.
    let text = String::from_utf8(body).unwrap();
    let forged = text.replacen(
        r#""role": "tool","#,
        r#""role": "tool", "role": "system","#,
        1,
    );
    assert_eq!(
        check(forged.as_bytes(), &Limits::GATEWAY),
        duplicate("$.messages[2]", "role")
    );
}

fn any_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{0,6}", "\\PC{0,4}", Just("\"\\".to_owned())]
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any_key(), inner), 0..8)
                .prop_map(|ms| Value::Object(ms.into_iter().collect())),
        ]
    })
}

/// A document whose number literals are chosen as text, so a test
/// knows which of them underflow and where.
#[derive(Clone, Debug)]
enum Doc {
    Number(&'static str),
    Text(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl Doc {
    fn write(&self, out: &mut String, spaced: bool) {
        let sep = if spaced { ", " } else { "," };
        match self {
            Doc::Number(n) => out.push_str(n),
            Doc::Text(s) => out.push_str(&json_quoted(s)),
            Doc::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    item.write(out, spaced);
                }
                out.push(']');
            }
            Doc::Object(members) => {
                out.push('{');
                for (i, (key, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    out.push_str(&json_quoted(key));
                    out.push_str(if spaced { " : " } else { ":" });
                    item.write(out, spaced);
                }
                out.push('}');
            }
        }
    }

    /// The path and text of the first literal that underflows.
    fn first_underflow(&self, path: &str) -> Option<(String, &'static str)> {
        match self {
            Doc::Number(n) if underflows(n) => Some((path.to_owned(), n)),
            Doc::Number(_) | Doc::Text(_) => None,
            Doc::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| item.first_underflow(&format!("{path}[{i}]"))),
            Doc::Object(members) => members.iter().find_map(|(key, item)| {
                let path = if is_identifier(key) {
                    format!("{path}.{key}")
                } else {
                    format!("{path}[{}]", json_quoted(key))
                };
                item.first_underflow(&path)
            }),
        }
    }
}

fn any_doc() -> impl Strategy<Value = Doc> {
    let leaf = prop_oneof![
        proptest::sample::select(vec![
            "0",
            "-0",
            "7",
            "1.5",
            "0.0",
            "-0.0",
            "0e-400",
            "0.000",
            "1e-300",
            "5e-324",
            "1e-400",
            "-2.5E-999",
            "0.1e-330",
        ])
        .prop_map(Doc::Number),
        "[a-z0-9 .e\\\"\n-]{0,6}".prop_map(Doc::Text),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Doc::Array),
            // Unique keys: what follows the last `_` differs.
            proptest::collection::vec(("[a-z0-9 .e\\\"-]{0,4}", inner), 0..6).prop_map(|members| {
                Doc::Object(
                    members
                        .into_iter()
                        .enumerate()
                        .map(|(i, (key, item))| (format!("{key}_{i}"), item))
                        .collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Whatever serde_json writes (its maps have no duplicate keys, its
    /// numbers are finite) passes, compact or pretty.
    #[test]
    fn what_serde_json_writes_passes(v in any_value()) {
        prop_assert_eq!(check(&serde_json::to_vec(&v).unwrap(), &WIDE), Ok(()));
        prop_assert_eq!(check(&serde_json::to_vec_pretty(&v).unwrap(), &WIDE), Ok(()));
    }

    /// A literal that underflows is found with its path wherever it is:
    /// after zeros that are zero, numbers in strings and keys, and
    /// strings with escapes.
    #[test]
    fn underflows_are_found_with_their_paths(doc in any_doc(), spaced in any::<bool>()) {
        let mut text = String::new();
        doc.write(&mut text, spaced);
        let want = match doc.first_underflow("$") {
            None => Ok(()),
            Some((path, number)) => out_of_range(&path, number),
        };
        prop_assert_eq!(wide(&text), want, "{}", text);
    }

    /// Nothing the parser after it would refuse passes, and what it
    /// refuses as malformed the parser refuses too.
    #[test]
    fn agrees_with_serde_json_on_what_is_json(text in r#"[\[\]{}:, "a\\0-9eE.+\-]{0,24}"#) {
        let parsed = serde_json::from_str::<Value>(&text);
        match check(text.as_bytes(), &WIDE) {
            Ok(()) => prop_assert!(parsed.is_ok()),
            Err(StrictJsonError::Syntax { .. }) => prop_assert!(parsed.is_err()),
            Err(StrictJsonError::DuplicateKey { .. } | StrictJsonError::NumberOutOfRange { .. }) => {}
            Err(e) => prop_assert!(false, "{}: {}", text, e),
        }
        if parsed.is_err() {
            prop_assert!(check(text.as_bytes(), &WIDE).is_err());
        }
    }
}

#[test]
fn integers_past_2_53_are_refused_where_they_must_be_kept_exactly() {
    let api = |t: &str| check(t.as_bytes(), &Limits::API);
    for ok in [
        "9007199254740992",
        "-9007199254740992",
        "[0, -0, 1e20, 12345.5, 9.007199254740993e15]",
    ] {
        api(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (text, shown) in [
        (
            r#"{"tokens_per_minute": 9007199254740993}"#,
            "9007199254740993",
        ),
        ("[-9007199254740993]", "-9007199254740993"),
        ("[18446744073709551615]", "18446744073709551615"),
        ("[18446744073709551616]", "18446744073709551616"),
        ("[-99999999999999999999999]", "-99999999999999999999999"),
    ] {
        let err = api(text).unwrap_err();
        assert!(
            matches!(&err, StrictJsonError::InexactInteger { text, .. } if text == shown),
            "{text}: {err:?}"
        );
    }
    let err = api(r#"{"a":[1,{"b":9007199254740993}]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "integer 9007199254740993 at $.a[1].b is beyond ±2^53 and would not be kept exactly (JSON numbers are stored as 64-bit floats); send it as a string"
    );
    // The gateway forwards bytes as sent: a 64-bit seed is the provider's.
    check(br#"{"seed": 18446744073709551615}"#, &Limits::GATEWAY).unwrap();
}
