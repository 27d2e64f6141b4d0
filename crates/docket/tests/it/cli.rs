//! The CLI against a running server: `verify --server`, `query`.

use serde_json::json;

use crate::support::{ServerProcess, run, stdout};

#[test]
fn verify_and_query_a_running_server() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let s = ServerProcess::start(&dir, None);
    let c = s.client();
    // Receipt `i` lands at seq `i`, after the bootstrap's entries.
    for i in s.base_size..30 {
        let classes = if i % 3 == 0 {
            json!(["customer_data"])
        } else {
            json!([])
        };
        s.append(
            &c,
            json!({"agent": format!("agent-{}", i % 2), "data_classes": classes, "i": i}),
        )
        .unwrap();
    }
    s.wait_for_checkpoint(30);
    let key = dir.join("log.pub");
    let key = key.to_str().unwrap();

    let out = run(&[
        "verify", "--server", &s.base, "--token", &s.token, "--key", key, "--json",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["entries"].as_u64()),
        (Some(true), Some(30))
    );

    // A server whose key is not the pinned one fails.
    let other = root.path().join("other");
    ServerProcess::start(&other, None).stop();
    let other_key = other.join("log.pub");
    let out = run(&[
        "verify",
        "--server",
        &s.base,
        "--token",
        &s.token,
        "--key",
        other_key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    let out = run(&[
        "query",
        "--server",
        &s.base,
        "--token",
        &s.token,
        "--agent",
        "agent-1",
        "--data-class",
        "customer_data",
        "--count",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let seqs: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![27, 21, 15, 9, 3]);
    assert_eq!(page["count"], 5);

    let out = run(&[
        "query", "--server", &s.base, "--token", &s.token, "--type", "note", "--limit", "2",
        "--order", "asc",
    ]);
    let table = stdout(&out);
    assert!(
        table.contains("agent-0") && table.contains("more: --cursor a3"),
        "{table}"
    );

    let out = run(&[
        "query",
        "--server",
        &s.base,
        "--token",
        &s.token,
        "--hours",
        "25:00-26:00",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hours"),
        "the server's message reaches the user"
    );
    let out = run(&["query", "--server", &s.base, "--token", "dkt_wrong"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    s.stop();
}

#[test]
fn a_log_that_grows_while_it_is_verified_verifies() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let s = ServerProcess::start(&dir, None);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (base, token, stop) = (s.base.clone(), s.token.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = c
                        .post(format!("{base}/api/v1/entries"))
                        .bearer_auth(&token)
                        .json(&json!({"type": "note", "body": {"agent": format!("w{w}"), "n": n}}))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
                    n += 1;
                }
            })
        })
        .collect();
    s.wait_for_checkpoint(500);
    let key = dir.join("log.pub");
    // Several walks while appends and checkpoints keep landing.
    for _ in 0..3 {
        let out = run(&["verify", "--data-dir", dir.to_str().unwrap(), "--json"]);
        assert!(out.status.success(), "data dir: {}", stdout(&out));
        let out = run(&[
            "verify",
            "--server",
            &s.base,
            "--token",
            &s.token,
            "--key",
            key.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "server: {}", stdout(&out));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    s.stop();
}
