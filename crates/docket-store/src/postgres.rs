//! PostgreSQL backend (to come).

use crate::error::StoreError;

#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub url: String,
    pub schema: Option<String>,
}

impl PostgresConfig {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            schema: None,
        }
    }
    pub fn with_schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

pub struct PostgresBackend;

impl PostgresBackend {
    pub fn open(_config: &PostgresConfig) -> Result<Self, StoreError> {
        Err(StoreError::Unavailable("not yet".into()))
    }
}
