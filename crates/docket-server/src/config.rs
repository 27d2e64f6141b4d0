//! Server configuration: defaults for everything, a TOML file over them,
//! and `DOCKET_*` environment variables over both (nested keys joined with
//! `__`, e.g. `DOCKET_STORAGE__POSTGRES_URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Holds the log's signing key, and the SQLite database by default.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The log's origin (C2SP checkpoint origin and key name), used when the
    /// data directory is first created; afterwards the key file decides.
    pub origin: Option<String>,
    /// Least time between two signed checkpoints while entries arrive.
    pub checkpoint_interval_ms: u64,
    pub max_body_bytes: usize,
    pub max_batch_entries: usize,
    /// Connection caps and read deadlines.
    pub connections: crate::listener::ConnectionConfig,
    pub storage: StorageConfig,
    pub identity: IdentityConfig,
    /// Model providers, routes, prices and approval timing of the gateway.
    pub gateway: crate::gateway::config::GatewayConfig,
    /// Scheduled evidence packs.
    pub evidence: crate::evidence::EvidenceConfig,
    pub log_format: LogFormat,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The data classes projects and agents may name.
    pub data_classes: Vec<String>,
    /// Lifetime of a session credential when the request names none.
    pub session_default_ttl_secs: u64,
    /// Longest lifetime a session credential may ask for.
    pub session_max_ttl_secs: u64,
    /// Lifetime of the token `POST /api/v1/login` hands out.
    pub login_ttl_secs: u64,
    /// How long a rotated credential keeps working when the request names no grace.
    pub rotation_grace_secs: u64,
    /// How often expired credentials get their revocation entry.
    pub expiry_sweep_ms: u64,
    /// Oldest `created` accepted on a signed request (RFC 9421).
    pub signature_max_age_secs: i64,
    /// Only humans whose identity is verified (KYC `verified`) approve
    /// change requests and held actions, and an agent is registered only
    /// when its owner is verified. Off by default: the first admin cannot
    /// verify themselves, so a fresh install turns it on once a second
    /// admin has recorded the first one's check.
    pub require_verified_approvers: bool,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            data_classes: [
                "customer_data",
                "pii",
                "financial",
                "health",
                "credentials",
                "internal",
                "public",
            ]
            .map(String::from)
            .to_vec(),
            session_default_ttl_secs: 3600,
            session_max_ttl_secs: 86_400,
            login_ttl_secs: 12 * 3600,
            rotation_grace_secs: 86_400,
            expiry_sweep_ms: 5_000,
            signature_max_age_secs: 300,
            require_verified_approvers: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: BackendKind,
    /// `postgres://user:password@host:port/db`; required for the postgres backend.
    #[serde(serialize_with = "never_serialize")]
    pub postgres_url: Option<SecretString>,
    /// Schema for Docket's tables (created if missing); the connection's
    /// default search path when unset.
    pub postgres_schema: Option<String>,
    /// Entries committed in one transaction at most.
    pub max_batch: usize,
}

fn never_serialize<S: serde::Serializer>(
    _: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Sqlite,
    Postgres,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("docket-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7373)),
            origin: None,
            checkpoint_interval_ms: 1000,
            max_body_bytes: 8 * 1024 * 1024,
            max_batch_entries: 1000,
            connections: Default::default(),
            storage: StorageConfig::default(),
            identity: IdentityConfig::default(),
            gateway: Default::default(),
            evidence: Default::default(),
            log_format: LogFormat::Text,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Sqlite,
            postgres_url: None,
            postgres_schema: None,
            max_batch: 4096,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed("DOCKET_").split("__").ignore(&[
            "TOKEN",
            "SERVER",
            "LOG",
            "BENCH_POSTGRES_URL",
            "BENCH_THROUGH_KEY",
            "TEST_POSTGRES_URL",
            "TEST_PYTHON",
            "PASSWORD",
            "UPSTREAM_KEY",
        ]));
        let config: Config = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        config
            .gateway
            .validate()
            .map_err(|e| ConfigError(format!("[gateway] {e}")))?;
        Ok(config)
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("docket.db")
    }
}

#[cfg(test)]
// figment's test jail returns its own (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "docket.toml",
                "listen = \"127.0.0.1:9000\"\ncheckpoint_interval_ms = 250\n[storage]\nbackend = \"postgres\"\npostgres_url = \"postgres://u:hunter2@db/x\"\n",
            )?;
            jail.set_env("DOCKET_LISTEN", "127.0.0.1:9001");
            let c = Config::load(Some(Path::new("docket.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9001);
            assert_eq!(c.checkpoint_interval_ms, 250);
            assert_eq!(c.storage.backend, BackendKind::Postgres);
            assert_eq!(c.max_body_bytes, 8 * 1024 * 1024);
            let shown = format!("{c:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "lisen = \"x\"\n")?;
            let e = Config::load(Some(Path::new("a.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("lisen"), "{e}");
            jail.create_file("b.toml", "checkpoint_interval_ms = \"soon\"\n")?;
            let e = Config::load(Some(Path::new("b.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("checkpoint_interval_ms"), "{e}");
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            Ok(())
        });
    }
}
