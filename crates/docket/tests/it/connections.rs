//! Connection hygiene against a real `docket serve`: connections that wait
//! too long are closed, a client's share is capped, and connections that
//! never authenticate cannot keep out a client with a token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Serve, ServerProcess};

fn serve(dir: &Path, connections: &str) -> ServerProcess {
    let config = dir.join("docket.toml");
    std::fs::write(&config, format!("[connections]\n{connections}\n")).unwrap();
    ServerProcess::start_with(
        &dir.join("data"),
        None,
        &Serve {
            config: Some(&config),
            env: &[],
        },
    )
}

fn connect(s: &ServerProcess) -> TcpStream {
    let addr = s.base.trim_start_matches("http://");
    let c = TcpStream::connect(addr).unwrap();
    // Generous: the server's own deadlines are far shorter.
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until the server closes the connection; returns what it sent.
/// Panics if it is still open after the read timeout.
fn read_to_close(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&got).into_owned();
            }
            Err(e) => panic!(
                "the server kept the connection open ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// The counter `name` (summed over labels) in `/metrics`.
fn metric(s: &ServerProcess, name: &str) -> f64 {
    let text = s
        .client()
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn connections_that_wait_too_long_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        "idle_timeout_ms = 1500\nheader_timeout_ms = 1000\nbody_timeout_ms = 1500",
    );

    // Opened, then nothing: closed once idle.
    let mut idle = connect(&s);
    assert_eq!(read_to_close(&mut idle), "");

    // Headers one byte at a time, forever: closed once the headers are
    // overdue, though bytes keep coming.
    let mut slow = connect(&s);
    let began = Instant::now();
    let mut closed = false;
    for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: "
        .iter()
        .cycle()
    {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        if began.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed, "a request whose headers never end is cut off");

    // A body that stops halfway: 408 in the API's shape, then closed.
    let mut stalled = connect(&s);
    write!(
        stalled,
        "POST /api/v1/entries HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"type\":",
        s.token
    )
    .unwrap();
    let answer = read_to_close(&mut stalled);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // A kept-alive connection serves requests back to back, then is
    // closed when idle.
    let mut kept = connect(&s);
    for _ in 0..3 {
        kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = kept.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "keep-alive works"
        );
    }
    assert_eq!(read_to_close(&mut kept), "");
    assert!(metric(&s, "docket_connections_timed_out_total") >= 3.0);
    s.stop();
}

#[test]
fn a_client_with_a_token_gets_in_past_connections_that_never_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        "max_connections = 16\nmax_per_address = 0\nidle_timeout_ms = 60000\nheader_timeout_ms = 60000",
    );
    // A connection that has carried an authenticated request.
    let mut trusted = connect(&s);
    let authed = format!(
        "GET /api/v1/log HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
        s.token
    );
    trusted.write_all(authed.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = trusted.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Every other place taken by connections that send nothing.
    let mut squatters: Vec<TcpStream> = (0..40).map(|_| connect(&s)).collect();
    // A client with a token still gets in, again and again, each time in
    // place of the oldest connection that never authenticated.
    let client = s.client();
    for _ in 0..5 {
        let r = client
            .get(format!("{}/api/v1/log", s.base))
            .bearer_auth(&s.token)
            .header("connection", "close")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The oldest squatters were closed to make the room.
    assert_eq!(read_to_close(&mut squatters[0]), "");
    assert!(metric(&s, "docket_connections_evicted_total") >= 5.0);
    // The trusted connection kept its place.
    trusted.write_all(authed.as_bytes()).unwrap();
    let n = trusted.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "an authenticated connection is never evicted for an unauthenticated one"
    );
    drop(squatters);
    s.stop();
}

#[test]
fn one_address_gets_only_its_share_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        "max_connections = 64\nmax_per_address = 6\nidle_timeout_ms = 60000",
    );
    let held: Vec<TcpStream> = (0..6).map(|_| connect(&s)).collect();
    let mut over = connect(&s);
    let answer = read_to_close(&mut over);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this address")
    );
    // Its share frees up as its connections close.
    drop(held);
    let mut ok = None;
    for _ in 0..50 {
        let r = reqwest::blocking::get(format!("{}/healthz", s.base));
        if let Ok(r) = r
            && r.status() == 200
        {
            ok = Some(());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok.is_some(), "the address may connect again");
    s.stop();
}
