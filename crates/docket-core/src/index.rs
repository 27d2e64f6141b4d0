//! The attributes of an entry that audit queries filter on, read from
//! well-known top-level members of its body. Every store indexes the same
//! fields, and the evidence verifier can re-derive them from the entries.

use serde_json::Value;
use thiserror::Error;

/// Longest value accepted for an indexed attribute.
pub const MAX_ATTR_LEN: usize = 256;
/// Most data classes one entry may name.
pub const MAX_DATA_CLASSES: usize = 32;

/// Body members that, when present, must have these shapes:
/// `agent`, `human`, `project`, `tool`, `provider`, `model`, `outcome` strings,
/// `data_classes` an array of strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFields {
    pub agent: Option<String>,
    pub human: Option<String>,
    pub project: Option<String>,
    pub tool: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub outcome: Option<String>,
    pub data_classes: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("body.{0} must be a string")]
    NotString(&'static str),
    #[error("body.{0} must be 1 to {MAX_ATTR_LEN} bytes")]
    BadLength(&'static str),
    #[error("body.data_classes must be an array of at most {MAX_DATA_CLASSES} strings")]
    DataClasses,
}

/// Names of the single-valued attributes, in the order of [`IndexFields::attributes`].
pub const ATTRIBUTES: [&str; 7] = [
    "agent", "human", "project", "tool", "provider", "model", "outcome",
];

impl IndexFields {
    /// The single-valued attributes, in the order of [`ATTRIBUTES`].
    pub fn attributes(&self) -> [Option<&str>; 7] {
        [
            self.agent.as_deref(),
            self.human.as_deref(),
            self.project.as_deref(),
            self.tool.as_deref(),
            self.provider.as_deref(),
            self.model.as_deref(),
            self.outcome.as_deref(),
        ]
    }

    pub fn from_body(body: &Value) -> Result<Self, IndexError> {
        let text = |name: &'static str| -> Result<Option<String>, IndexError> {
            match body.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ATTR_LEN => {
                    Ok(Some(s.clone()))
                }
                Some(Value::String(_)) => Err(IndexError::BadLength(name)),
                Some(_) => Err(IndexError::NotString(name)),
            }
        };
        let data_classes = match body.get("data_classes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_DATA_CLASSES => {
                let mut classes = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) if !s.is_empty() && s.len() <= MAX_ATTR_LEN => {
                            if !classes.contains(s) {
                                classes.push(s.clone());
                            }
                        }
                        _ => return Err(IndexError::DataClasses),
                    }
                }
                classes
            }
            Some(_) => return Err(IndexError::DataClasses),
        };
        Ok(Self {
            agent: text("agent")?,
            human: text("human")?,
            project: text("project")?,
            tool: text("tool")?,
            provider: text("provider")?,
            model: text("model")?,
            outcome: text("outcome")?,
            data_classes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_well_known_members() {
        let f = IndexFields::from_body(&json!({
            "agent": "did:key:z6Mk", "human": "u_1", "project": "billing",
            "data_classes": ["customer_data", "pii", "pii"], "other": 3
        }))
        .unwrap();
        assert_eq!(f.agent.as_deref(), Some("did:key:z6Mk"));
        assert_eq!(f.data_classes, vec!["customer_data", "pii"]);
        assert_eq!(f.tool, None);
    }

    #[test]
    fn refuses_wrong_shapes_naming_the_member() {
        assert_eq!(
            IndexFields::from_body(&json!({"agent": 3})),
            Err(IndexError::NotString("agent"))
        );
        assert_eq!(
            IndexFields::from_body(&json!({"model": ""})),
            Err(IndexError::BadLength("model"))
        );
        assert_eq!(
            IndexFields::from_body(&json!({"data_classes": "pii"})),
            Err(IndexError::DataClasses)
        );
    }
}
