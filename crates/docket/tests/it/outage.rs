//! Outages and overload against a real `docket serve`: a full disk in the
//! middle of gateway traffic loses no receipt of a forwarded call, and
//! `/readyz` says what is wrong; past its admission bounds the gateway
//! refuses at once instead of queueing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::gateway::{Docket, Setup, chat_body};

/// A small tmpfs the test mounts and unmounts itself (the test runs as
/// root, as CI does).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill, and needs root for it (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_owned())
    }

    /// Writes a file until the filesystem has no room left.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0xA5u8; chunk];
            while f.write_all(&bytes).is_ok() {}
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn readyz(d: &Docket) -> (u16, Value) {
    let r = d
        .http
        .get(format!("{}/readyz", d.base()))
        .send()
        .expect("GET /readyz");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// What one gateway call came back with.
#[derive(Debug)]
struct Answer {
    status: u16,
    code: Option<String>,
    decision: Option<u64>,
    receipt: Option<u64>,
}

fn header_u64(r: &reqwest::blocking::Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.parse().ok()
}

#[test]
fn a_full_disk_under_gateway_load_loses_no_receipt_of_a_forwarded_call() {
    let scratch = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&scratch.path().join("disk"), "48m");
    let d = Docket::start(Setup {
        data: Some(disk.0.join("data")),
        ..Setup::default()
    });
    let (status, v) = readyz(&d);
    assert_eq!(status, 200, "ready before the disk fills: {v}");
    assert_eq!(v["store"]["writable"], true, "{v}");

    // Agents call on while the disk fills; calls to a provider that takes
    // 300 ms are in its hands (decided, not yet recorded) when it does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (http, base, key, stop) = (
                d.http.clone(),
                d.base().to_owned(),
                d.key.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{base}/v1/chat/completions"))
                        .bearer_auth(&key)
                        .json(&chat_body("slow-300", "summarise the ticket"))
                        .send()
                        .expect("the gateway answers");
                    let (decision, receipt) = (
                        header_u64(&r, "docket-decision"),
                        header_u64(&r, "docket-receipt"),
                    );
                    let status = r.status().as_u16();
                    let v: Value = r.json().unwrap_or(Value::Null);
                    answers.push(Answer {
                        status,
                        code: v["error"]["code"].as_str().map(str::to_owned),
                        decision,
                        receipt,
                    });
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let filler = disk.fill();
    // Full for a while: Docket says it is not ready, and why.
    let mut saw_unready = None;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        let (status, v) = readyz(&d);
        if status == 503 {
            saw_unready = Some(v);
        }
    }
    let unready = saw_unready.expect("/readyz reports the full disk");
    assert_eq!(unready["ready"], false, "{unready}");
    assert_eq!(unready["store"]["writable"], false, "{unready}");
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers: Vec<Answer> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    // Every answer is one of three, and says what it is.
    let mut refused = 0;
    let mut pending = Vec::new();
    for a in &answers {
        match (a.status, a.code.as_deref()) {
            (200, _) => assert!(a.receipt.is_some() && a.decision.is_some(), "{a:?}"),
            // The decision could not be written: nothing went out.
            (503, Some("ledger_unavailable")) => refused += 1,
            // It went out; its receipt is kept until the disk takes it.
            (503, Some("receipt_pending")) => {
                pending.push(a.decision.expect("a pending receipt names its decision"))
            }
            _ => panic!("unexpected answer during the outage: {a:?}"),
        }
    }
    assert!(
        refused + pending.len() > 0,
        "the full disk refused something: {answers:?}"
    );
    eprintln!(
        "full disk: {} calls, {} refused before forwarding, {} forwarded with the receipt kept",
        answers.len(),
        refused,
        pending.len()
    );

    // Space is back: Docket is ready again once the kept receipts are in.
    let mut ready = None;
    for _ in 0..100 {
        let (status, v) = readyz(&d);
        if status == 200 {
            ready = Some(v);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = ready.expect("ready again once the disk has room");
    assert_eq!(ready["store"]["receipts_waiting"], 0, "{ready}");

    // Every call that reached the provider has its receipt: as many
    // gateway receipts as allowed decisions as requests the provider saw,
    // and each pending one among them.
    let allowed: Vec<u64> = d
        .entries("decision")
        .iter()
        .filter(|e| e["body"]["outcome"] == "allow")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let receipts: Vec<Value> = d
        .entries("receipt")
        .into_iter()
        .filter(|e| e["body"]["source"] == "gateway")
        .collect();
    let recorded: std::collections::BTreeSet<u64> = receipts
        .iter()
        .map(|e| e["body"]["decision"].as_u64().unwrap())
        .collect();
    assert_eq!(
        d.standin.requests().len(),
        allowed.len(),
        "the provider saw exactly the allowed calls"
    );
    for seq in &allowed {
        assert!(
            recorded.contains(seq),
            "decision {seq} was forwarded and has no receipt"
        );
    }
    for seq in &pending {
        assert!(
            recorded.contains(seq),
            "pending receipt of decision {seq} never landed"
        );
    }
    assert_eq!(receipts.len(), allowed.len());
    // And the log says the same offline: no forwarded call without outcome.
    d.stop_and_verify();
}

#[test]
fn past_its_bounds_the_gateway_refuses_at_once_in_the_providers_shape() {
    let d = Docket::start(Setup {
        gateway: "max_in_flight = 2\nmax_deciding = 2\nadmission_wait_ms = 0".into(),
        ..Setup::default()
    });
    // Two calls hold both places while the provider takes its time.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (http, base, key) = (d.http.clone(), d.base().to_owned(), d.key.clone());
            std::thread::spawn(move || {
                http.post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&chat_body("slow-2000", "take your time"))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Both in flight: admitted and decided, waiting on the provider.
    let (mut in_flight, mut decisions_before) = (0, 0);
    for _ in 0..100 {
        let (_, v) = readyz(&d);
        in_flight = v["gateway"]["in_flight"].as_u64().unwrap_or(0);
        decisions_before = d.entries("decision").len();
        if in_flight == 2 && decisions_before == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        (in_flight, decisions_before),
        (2, 2),
        "both slow calls are in flight"
    );

    for (path, body) in [
        ("/v1/chat/completions", chat_body("gpt-4o-mini", "hello")),
        (
            "/v1/messages",
            json!({"model": "claude-haiku-4-5", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hello"}]}),
        ),
    ] {
        let r = d.raw(path, body.to_string().as_bytes(), &[]);
        assert_eq!(r.status().as_u16(), 503, "{path}");
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1"),
            "{path}: says when to try again"
        );
        let v: Value = r.json().unwrap();
        if path == "/v1/messages" {
            assert_eq!(v["type"], "error", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("overloaded"),
                "{v}"
            );
        } else {
            assert_eq!(v["error"]["code"], "overloaded", "{v}");
            assert_eq!(v["error"]["type"], "server_error", "{v}");
        }
    }
    assert_eq!(
        d.entries("decision").len(),
        decisions_before,
        "a refused call is not decided"
    );
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    // Places are free again.
    let r = d.raw(
        "/v1/chat/completions",
        chat_body("gpt-4o-mini", "hello again")
            .to_string()
            .as_bytes(),
        &[],
    );
    assert_eq!(r.status().as_u16(), 200);
}
