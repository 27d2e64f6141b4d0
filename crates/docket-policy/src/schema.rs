//! Docket's Cedar schema and the Cedar names derived from it, parsed once per process.

use std::sync::{Arc, LazyLock};

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema, Validator};

use crate::request::{Action, ActionExt, ResourceKind};

/// The schema text, in Cedar's human schema syntax: the contract policy
/// authors write against, served to them as is.
pub fn schema_text() -> &'static str {
    include_str!("docket.cedarschema")
}

/// The Cedar type and action names a request is translated into.
///
/// Parsed once so a decision only clones them (cheap, reference-counted)
/// instead of parsing names on the hot path.
#[derive(Debug)]
pub(crate) struct Names {
    pub agent: EntityTypeName,
    pub project: EntityTypeName,
    pub human: EntityTypeName,
    /// Indexed by [`ResourceKind::index`].
    pub resources: [EntityTypeName; 3],
    /// Indexed by [`Action::index`].
    pub actions: [EntityUid; 5],
}

impl Names {
    fn new() -> Result<Names, String> {
        let ty = |name: &str| {
            name.parse::<EntityTypeName>()
                .map_err(|e| format!("entity type {name}: {e}"))
        };
        let action_type = ty("Docket::Action")?;
        let action = |a: Action| {
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
        };
        Ok(Names {
            agent: ty("Docket::Agent")?,
            project: ty("Docket::Project")?,
            human: ty("Docket::Human")?,
            resources: [
                ty("Docket::Model")?,
                ty("Docket::Tool")?,
                ty("Docket::Dataset")?,
            ],
            actions: [
                action(Action::CallModel),
                action(Action::CallTool),
                action(Action::ReadData),
                action(Action::WriteData),
                action(Action::Embed),
            ],
        })
    }

    pub fn resource(&self, kind: ResourceKind) -> &EntityTypeName {
        &self.resources[kind.index()]
    }

    pub fn action(&self, action: Action) -> &EntityUid {
        &self.actions[action.index()]
    }

    /// The action a Cedar action uid names, if it is one of Docket's.
    pub fn action_of(&self, uid: &EntityUid) -> Option<Action> {
        Action::ALL.into_iter().find(|a| self.action(*a) == uid)
    }

    /// The resource kind a Cedar entity type names, if it is one of Docket's.
    pub fn resource_kind_of(&self, ty: &EntityTypeName) -> Option<ResourceKind> {
        [
            ResourceKind::Model,
            ResourceKind::Tool,
            ResourceKind::Dataset,
        ]
        .into_iter()
        .find(|k| self.resource(*k) == ty)
    }
}

/// What compiling a policy set needs from the schema.
pub(crate) struct Docket {
    pub validator: Validator,
    pub names: Arc<Names>,
}

/// Parsed on first use. It cannot fail for the schema shipped in this crate
/// (a test says so), but a failure is carried as a value rather than a panic
/// so a broken build refuses policies instead of crashing the server.
static DOCKET: LazyLock<Result<Docket, String>> = LazyLock::new(|| {
    let (schema, _warnings) = Schema::from_cedarschema_str(schema_text())
        .map_err(|e| format!("the built-in Docket schema does not parse: {e}"))?;
    Ok(Docket {
        validator: Validator::new(schema),
        names: Arc::new(Names::new()?),
    })
});

pub(crate) fn docket() -> Result<&'static Docket, &'static str> {
    DOCKET.as_ref().map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parses_without_warnings() {
        let (_, warnings) = match Schema::from_cedarschema_str(schema_text()) {
            Ok(parsed) => parsed,
            Err(e) => panic!("schema does not parse: {e}"),
        };
        let warnings: Vec<String> = warnings.map(|w| w.to_string()).collect();
        assert_eq!(warnings, Vec::<String>::new());
        assert!(docket().is_ok());
    }

    #[test]
    fn every_action_round_trips_through_its_cedar_uid() {
        let Ok(docket) = docket() else {
            panic!("schema");
        };
        for action in Action::ALL {
            let uid = docket.names.action(action);
            assert_eq!(
                uid.to_string(),
                format!("Docket::Action::\"{}\"", action.as_str())
            );
            assert_eq!(docket.names.action_of(uid), Some(action));
        }
    }
}
