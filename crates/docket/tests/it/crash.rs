//! A server killed mid-append loses no acknowledged entry, and its log
//! still verifies and carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::support::{ServerProcess, run, stdout};

#[test]
fn a_killed_server_loses_no_acknowledged_entry() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let s = ServerProcess::start(&dir, None);
    let acked: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (base, token, acked) = (s.base.clone(), s.token.clone(), acked.clone());
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                for i in 0.. {
                    let r = c
                        .post(format!("{base}/api/v1/entries"))
                        .bearer_auth(&token)
                        .json(&json!({"type": "note", "body": {"agent": format!("w{w}"), "i": i}}))
                        .send();
                    match r {
                        Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                            let v: serde_json::Value = r.json().unwrap();
                            let e = &v["entries"][0];
                            acked.lock().unwrap().insert(
                                e["seq"].as_u64().unwrap(),
                                e["leaf_hash"].as_str().unwrap().to_owned(),
                            );
                        }
                        // The server died under us: whatever was not acknowledged may be lost.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Let appends run, then kill the server mid-stream.
    while acked.lock().unwrap().len() < 2000 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let token = s.token.clone();
    s.kill();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let out = run(&["verify", "--data-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "log after a crash: {}", stdout(&out));

    // Every acknowledged entry is there, byte for byte.
    let s = ServerProcess::start(&dir, Some(&token));
    let c = s.client();
    for (seq, leaf) in &acked {
        let v: serde_json::Value = c
            .get(format!("{}/api/v1/entries/{seq}", s.base))
            .bearer_auth(&s.token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            v["leaf_hash"].as_str(),
            Some(leaf.as_str()),
            "acknowledged entry {seq} lost or changed"
        );
    }
    // The log carries on from where it stopped, and still verifies.
    let next = s.append(&c, json!({"after": "crash"})).unwrap();
    assert!(next["seq"].as_u64().unwrap() > *acked.keys().max().unwrap());
    s.wait_for_checkpoint(next["seq"].as_u64().unwrap() + 1);
    s.stop();
    let out = run(&["verify", "--data-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
}
