//! Opening a data directory: on first start it is created with the log's
//! Ed25519 signing key (mode 0600) and an admin token that is printed once
//! and stored only as a digest. Later starts check the key matches the log.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use docket_core::LogSigner;
use docket_store::Backend;
use docket_store::postgres::{PostgresBackend, PostgresConfig};
use docket_store::sqlite::{SqliteBackend, SqliteConfig};
use rand::RngCore;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::auth::{ADMIN_TOKEN_META, digest, new_token};
use crate::config::{BackendKind, Config};

pub const KEY_FILE: &str = "log.key";
pub const PUBLIC_KEY_FILE: &str = "log.pub";
const PUBLIC_KEY_META: &str = "log_public_key";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("data directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("storage: {0}")]
    Store(#[from] docket_store::StoreError),
    #[error("storage.postgres_url is required when storage.backend = \"postgres\"")]
    NoPostgresUrl,
    #[error(
        "the signing key in {key_path} (public key {found}) is not the key of this log ({expected}); refusing to sign with it"
    )]
    KeyMismatch {
        key_path: String,
        found: String,
        expected: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub struct Opened {
    pub signer: LogSigner,
    pub backend: Arc<dyn Backend>,
    pub admin_digest: [u8; 32],
    /// Set only when this start created the token: show it once.
    pub new_admin_token: Option<Zeroizing<String>>,
}

/// Writes `contents` to a new file with `mode`, durably.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), InitError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Loads the signing key, creating it (and the directory) on first start.
pub fn load_or_create_key(config: &Config) -> Result<LogSigner, InitError> {
    let dir = &config.data_dir;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        }
    }
    let key_path = dir.join(KEY_FILE);
    let key_err = |message: String| InitError::Key {
        path: key_path.display().to_string(),
        message,
    };
    if key_path.exists() {
        let secret = Zeroizing::new(fs::read_to_string(&key_path).map_err(io_err(&key_path))?);
        return LogSigner::from_secret(&secret).map_err(|e| key_err(e.to_string()));
    }
    let origin = match &config.origin {
        Some(o) => o.clone(),
        None => {
            let mut id = [0u8; 4];
            rand::rngs::OsRng.fill_bytes(&mut id);
            format!("docket.local/{}", hex::encode(id))
        }
    };
    let signer = LogSigner::generate(&origin).map_err(|e| key_err(e.to_string()))?;
    write_new(
        &key_path,
        format!("{}\n", signer.secret_key()).as_bytes(),
        0o600,
    )?;
    let pub_path = dir.join(PUBLIC_KEY_FILE);
    if pub_path.exists() {
        fs::remove_file(&pub_path).map_err(io_err(&pub_path))?;
    }
    write_new(
        &pub_path,
        format!("{}\n", signer.public_key()).as_bytes(),
        0o644,
    )?;
    Ok(signer)
}

pub fn open_backend(config: &Config) -> Result<Arc<dyn Backend>, InitError> {
    Ok(match config.storage.backend {
        BackendKind::Sqlite => Arc::new(SqliteBackend::open(&SqliteConfig::new(
            config.sqlite_path(),
        ))?),
        BackendKind::Postgres => {
            let url = config
                .storage
                .postgres_url
                .as_ref()
                .ok_or(InitError::NoPostgresUrl)?;
            let mut pg = PostgresConfig::new(url.expose_secret());
            if let Some(schema) = &config.storage.postgres_schema {
                pg = pg.with_schema(schema);
            }
            Arc::new(PostgresBackend::open(&pg)?)
        }
    })
}

pub fn open(config: &Config) -> Result<Opened, InitError> {
    let signer = load_or_create_key(config)?;
    let backend = open_backend(config)?;
    match backend.meta(PUBLIC_KEY_META)? {
        None => backend.set_meta(PUBLIC_KEY_META, signer.public_key())?,
        Some(expected) if expected != signer.public_key() => {
            return Err(InitError::KeyMismatch {
                key_path: config.data_dir.join(KEY_FILE).display().to_string(),
                found: signer.public_key().to_owned(),
                expected,
            });
        }
        Some(_) => {}
    }
    let (admin_digest, new_admin_token) = match backend.meta(ADMIN_TOKEN_META)? {
        Some(hex_digest) => {
            let mut d = [0u8; 32];
            hex::decode_to_slice(hex_digest.trim(), &mut d).map_err(|_| {
                docket_store::StoreError::Corrupt("stored admin token digest is malformed".into())
            })?;
            (d, None)
        }
        None => {
            let token = new_token();
            let d = digest(&token);
            backend.set_meta(ADMIN_TOKEN_META, &hex::encode(d))?;
            (d, Some(token))
        }
    };
    Ok(Opened {
        signer,
        backend,
        admin_digest,
        new_admin_token,
    })
}
