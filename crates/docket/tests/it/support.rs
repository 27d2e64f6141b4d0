//! Running the `docket` binary: a server process on a free port, and one-shot commands.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub fn docket() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_docket"));
    // The test harness's own variable: `docket` reads every `DOCKET_*`
    // variable as configuration and refuses ones it does not know.
    cmd.env_remove("DOCKET_TEST_PYTHON");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    docket()
        .args(args)
        .env_remove("DOCKET_TOKEN")
        .output()
        .expect("run docket")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    /// The first admin's personal token.
    pub token: String,
    /// Entries in the log before the test wrote any (the bootstrap's).
    pub base_size: u64,
}

impl ServerProcess {
    /// Starts `docket serve` and waits for it to answer. `token` is known
    /// from an earlier start, or read from this start's output.
    pub fn start(data_dir: &Path, token: Option<&str>) -> Self {
        Self::start_with(data_dir, token, &Serve::default())
    }

    /// [`ServerProcess::start`] with a configuration file and extra
    /// environment.
    pub fn start_with(data_dir: &Path, token: Option<&str>, serve: &Serve<'_>) -> Self {
        // Port 0: the server picks a free port and prints it, so parallel
        // tests cannot take each other's.
        let mut cmd = docket();
        cmd.arg("serve");
        if let Some(config) = serve.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args([
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("DOCKET_CHECKPOINT_INTERVAL_MS", "100")
        .env("DOCKET_LOG", "warn")
        .envs(serve.env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn docket serve");
        let (base, bootstrap) = read_startup(&mut child, token.is_none());
        for _ in 0..400 {
            if reqwest::blocking::get(format!("{base}/healthz"))
                .is_ok_and(|r| r.status().is_success())
            {
                let (token, base_size) = match (token, bootstrap) {
                    (Some(t), _) => (t.to_owned(), 0),
                    (None, Some(b)) => bootstrap_admin(&base, &b),
                    (None, None) => unreachable!(),
                };
                return Self {
                    child,
                    base,
                    token,
                    base_size,
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("docket serve did not come up");
    }

    pub fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub fn append(&self, client: &reqwest::blocking::Client, body: Value) -> Result<Value, String> {
        let r = client
            .post(format!("{}/api/v1/entries", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"type": "note", "body": body}))
            .send()
            .map_err(|e| e.to_string())?;
        if r.status() != reqwest::StatusCode::CREATED {
            return Err(format!("status {}", r.status()));
        }
        let v: Value = r.json().map_err(|e| e.to_string())?;
        Ok(v["entries"][0].clone())
    }

    pub fn wait_for_checkpoint(&self, size: u64) {
        let c = self.client();
        for _ in 0..400 {
            if let Ok(r) = c
                .get(format!("{}/api/v1/checkpoint", self.base))
                .bearer_auth(&self.token)
                .send()
                && let Ok(v) = r.json::<Value>()
                && v["size"].as_u64().unwrap_or(0) >= size
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no checkpoint covering {size}");
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

/// A server left running by a failing test is stopped with it.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A no-op once `stop` or `kill` has waited for the process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How [`ServerProcess::start_with`] starts the server.
#[derive(Default)]
pub struct Serve<'a> {
    /// `--config FILE`.
    pub config: Option<&'a Path>,
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
}

/// The stand-in OpenAI/Anthropic provider (`docket_bench::upstream`, what
/// `docket-bench upstream` serves) on a free port of its own, on a thread
/// and runtime of its own, keeping the requests it gets.
pub struct StandIn {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    stopped: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl StandIn {
    /// Starts the stand-in; it wants `api_key` from its clients.
    pub fn start(api_key: &str) -> Self {
        let config = docket_bench::upstream::UpstreamConfig {
            api_key: Some(api_key.to_owned()),
            keep_requests: 100,
        };
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stopped_tx, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the stand-in");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("the stand-in binds a port");
                addr_tx
                    .send(listener.local_addr().expect("its address"))
                    .expect("the test waits for the address");
                docket_bench::upstream::serve(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("the stand-in serves");
            });
            rt.shutdown_timeout(Duration::from_secs(1));
            let _ = stopped_tx.send(());
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the stand-in listens");
        Self {
            stop: Some(stop),
            stopped: std::sync::Mutex::new(stopped),
            base: format!("http://{addr}"),
        }
    }

    /// The requests received since the last [`StandIn::clear`], oldest
    /// first: `{method, path, query, headers, body}`.
    pub fn requests(&self) -> Vec<Value> {
        reqwest::blocking::get(format!("{}/_standin/requests", self.base))
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .expect("read the stand-in's request log")
    }

    pub fn clear(&self) {
        reqwest::blocking::Client::new()
            .delete(format!("{}/_standin/requests", self.base))
            .send()
            .and_then(|r| r.error_for_status())
            .expect("clear the stand-in's request log");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Graceful: calls in flight end first, but a test never waits long.
        if let Ok(stopped) = self.stopped.lock() {
            let _ = stopped.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// The python that has the SDKs of tests/sdk/requirements.txt; scripts/test
/// makes it and names it in `DOCKET_TEST_PYTHON`.
pub fn sdk_python() -> String {
    match std::env::var("DOCKET_TEST_PYTHON") {
        Ok(p) if !p.trim().is_empty() => p,
        _ => panic!(
            "DOCKET_TEST_PYTHON is not set: the gateway tests drive the official OpenAI and \
             Anthropic Python SDKs. Run them through scripts/test (which installs \
             tests/sdk/requirements.txt into target/sdk-venv), or set DOCKET_TEST_PYTHON to a \
             python that has those packages."
        ),
    }
}

/// tests/sdk/client.py, which runs one call through an official SDK.
pub fn sdk_client() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/client.py")
}

/// Creates the first admin with the bootstrap token; returns their token
/// and the number of entries that wrote.
fn bootstrap_admin(base: &str, bootstrap: &str) -> (String, u64) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/bootstrap"))
        .bearer_auth(bootstrap)
        .json(&json!({"id": "admin", "name": "Admin"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let v = r.json::<Value>().unwrap();
    (
        v["token"].as_str().unwrap().to_owned(),
        v["entries"].as_array().unwrap().len() as u64,
    )
}

/// Reads the server's startup lines: its address and, on a first start,
/// the bootstrap token; then keeps draining stderr so the server never
/// blocks on a full pipe.
fn read_startup(child: &mut Child, first_start: bool) -> (String, Option<String>) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let (mut base, mut token) = (None, None);
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(addr) = line.split(" on http://").nth(1) {
            base = Some(format!("http://{}", addr.trim()));
        }
        if let Some(t) = line.split("create the first admin): ").nth(1) {
            token = Some(t.trim().to_owned());
        }
        if let Some(b) = &base
            && (token.is_some() || !first_start)
        {
            let b = b.clone();
            std::thread::spawn(move || for _ in lines {});
            return (b, token);
        }
    }
    panic!("docket serve exited before printing its address:\n{seen}");
}
