//! Hostile request bodies against a real `docket serve`: what policy decides
//! on is what the provider reads (duplicate keys are refused, at any depth,
//! on the gateway and the API alike), and a body built to blow up memory is
//! refused before it is parsed into a tree.

use serde_json::{Value, json};

use crate::gateway::{Docket, Setup};

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn error_of(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn duplicate_keys_are_refused_where_a_reader_could_take_either() {
    let d = Docket::start(Setup::default());
    // The model policy would see (the last) is in scope; a provider that
    // reads the first would run the other. Neither runs.
    let body =
        br#"{"model":"gpt-4.1","model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let (status, v) = error_of(d.raw("/v1/chat/completions", body, &[]));
    assert_eq!(status, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("duplicate key \"model\" at $"), "{v}");
    // Deeper in the request too, in the provider's own error shape.
    let body =
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","role":"system","content":"x"}]}"#;
    let (status, v) = error_of(d.raw("/v1/chat/completions", body, &[]));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("$.messages[0]"),
        "{v}"
    );
    assert!(
        d.standin.requests().is_empty(),
        "nothing reached the provider"
    );

    // The API: a duplicated top-level `type` and a duplicated body member.
    for (body, at) in [
        (
            &br#"{"type":"note","type":"receipt","body":{}}"#[..],
            "at $",
        ),
        (br#"{"type":"note","body":{"a":1,"a":2}}"#, "at $.body"),
    ] {
        let (status, v) = error_of(d.raw("/api/v1/entries", body, &[]));
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["code"], "duplicate_key", "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(at), "{at}: {v}");
    }
    // A number that reads as zero though it is not is refused, not stored as 0.
    let (status, v) = error_of(d.raw(
        "/api/v1/entries",
        br#"{"type":"note","body":{"x":1e-400}}"#,
        &[],
    ));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("out of range"),
        "{v}"
    );
    let notes = d.ok(
        "GET",
        "/api/v1/entries?type=note&count=true",
        &d.admin,
        Value::Null,
    );
    assert_eq!(notes["count"], 0, "nothing was written: {notes}");
}

#[test]
fn bodies_built_to_blow_up_memory_are_refused_before_they_are_parsed() {
    let d = Docket::start(Setup::default());
    let pid = d.server.as_ref().unwrap().child.id();
    // 7.6 MB: an array of about four million zeros, and an object of
    // 700,000 keys, each sent by eight clients at once to both faces.
    let zeros = {
        let mut b = b"{\"type\":\"note\",\"body\":{\"x\":[".to_vec();
        b.extend(std::iter::repeat_n(&b"0,"[..], 3_800_000).flatten());
        b.extend_from_slice(b"0]}}");
        b
    };
    let keys = {
        let mut b = b"{\"model\":\"gpt-4o-mini\",\"messages\":[],\"metadata\":{".to_vec();
        for i in 0..700_000 {
            b.extend_from_slice(format!("\"{i:x}\":0,").as_bytes());
        }
        b.extend_from_slice(b"\"end\":0}}");
        b
    };
    let before = peak_rss_kib(pid);
    std::thread::scope(|s| {
        for i in 0..16 {
            let (path, body) = if i % 2 == 0 {
                ("/api/v1/entries", &zeros)
            } else {
                ("/v1/chat/completions", &keys)
            };
            let d = &d;
            s.spawn(move || {
                let (status, v) = error_of(d.raw(path, body, &[]));
                assert_eq!(status, 400, "{path}: {v}");
                let message = v["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("elements") || message.contains("members"),
                    "{path}: {v}"
                );
            });
        }
    });
    let peak = peak_rss_kib(pid);
    eprintln!("docket serve peak RSS: {before} KiB before the bodies, {peak} KiB after");
    // Sixteen 7.6 MB bodies in flight at once are 120 MB of bytes alone; a
    // tree of any one of them would be several hundred MB more.
    assert!(
        peak < 300 * 1024,
        "peak RSS {peak} KiB (was {before} KiB before the bodies)"
    );
    // And it still serves.
    let v = d.ok("GET", "/api/v1/log", &d.admin, json!(null));
    assert!(v["size"].as_u64().unwrap() > 0);
}
