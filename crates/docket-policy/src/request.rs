//! The typed inputs and outputs of a policy decision, in the JSON shape the server and policy test cases use.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use docket_core::bodies::{Action, Outcome};

/// What policy needs to know of an [`Action`] beyond its name.
pub trait ActionExt {
    /// The only kind of resource the schema lets this action apply to.
    fn resource_kind(self) -> ResourceKind;
    /// Its position in [`Action::ALL`], for per-action tables.
    fn index(self) -> usize;
}

impl ActionExt for Action {
    fn resource_kind(self) -> ResourceKind {
        match self {
            Action::CallModel | Action::Embed => ResourceKind::Model,
            Action::CallTool => ResourceKind::Tool,
            Action::ReadData | Action::WriteData => ResourceKind::Dataset,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What kind of thing the action is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Model,
    Tool,
    Dataset,
}

impl ResourceKind {
    /// The kind's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Model => "model",
            ResourceKind::Tool => "tool",
            ResourceKind::Dataset => "dataset",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The agent making the call, with its effective scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Agent id, e.g. "support-bot".
    pub agent: String,
    /// Project id.
    pub project: String,
    /// User id of the owning human.
    pub owner: String,
    #[serde(default)]
    pub tools: BTreeSet<String>,
    #[serde(default)]
    pub models: BTreeSet<String>,
    #[serde(default)]
    pub data_classes: BTreeSet<String>,
    #[serde(default)]
    pub environments: BTreeSet<String>,
}

/// The model, tool or dataset the action is applied to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub kind: ResourceKind,
    /// Model name, tool name or dataset name.
    pub id: String,
    /// For models: "openai", "anthropic", ...
    #[serde(default)]
    pub provider: Option<String>,
    /// Classes of data this call touches.
    #[serde(default)]
    pub data_classes: BTreeSet<String>,
    /// "prod", "staging", ...
    #[serde(default)]
    pub environment: Option<String>,
}

/// The circumstances of the call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Unix seconds, UTC. Policies also see the hour and weekday derived from it.
    pub time: i64,
    /// User id of the human on whose behalf the agent acts.
    #[serde(default)]
    pub human: Option<String>,
    /// How the human was established: "session" | "asserted" | "none".
    #[serde(default = "default_assurance")]
    pub human_assurance: String,
    #[serde(default)]
    pub estimated_cost_micro_usd: i64,
    #[serde(default)]
    pub estimated_tokens: i64,
    #[serde(default)]
    pub task: Option<String>,
}

fn default_assurance() -> String {
    "none".to_owned()
}

/// One question put to policy: may this agent do this to that, now?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub principal: Principal,
    pub action: Action,
    pub resource: Resource,
    pub context: Context,
}

/// The answer to a [`Request`], with what it rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The ids of the policies that determined it (Cedar's determining policies), sorted.
    pub determining: Vec<String>,
    /// One human sentence, e.g. "denied by policy no-pii-after-hours".
    pub reason: String,
    /// Evaluation errors Cedar reported (policy id: message); an erroring policy is skipped as Cedar does.
    pub errors: Vec<String>,
}

/// Hour of the day (0..=23) and weekday (0 = Monday .. 6 = Sunday) of a unix time, in UTC.
///
/// Plain arithmetic rather than a calendar type, so that no `i64` is out of
/// range: a request with an absurd time still gets a decision.
pub fn hour_and_weekday(time: i64) -> (i64, i64) {
    const DAY: i64 = 86_400;
    let hour = time.rem_euclid(DAY) / 3_600;
    // 1970-01-01 was a Thursday, weekday 3 when Monday is 0.
    let weekday = (time.div_euclid(DAY) + 3).rem_euclid(7);
    (hour, weekday)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_matches_the_calendar() {
        for t in [
            0,
            -1,
            86_399,
            1_700_000_000,
            1_735_689_599,
            -62_135_596_800,
            253_402_300_799,
        ] {
            let Ok(at) = time::OffsetDateTime::from_unix_timestamp(t) else {
                panic!("{t} is in the calendar's range");
            };
            let (hour, weekday) = hour_and_weekday(t);
            assert_eq!(hour, i64::from(at.hour()), "hour of {t}");
            assert_eq!(
                weekday,
                i64::from(at.weekday().number_days_from_monday()),
                "weekday of {t}"
            );
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        let (h, w) = hour_and_weekday(i64::MIN);
        assert!((0..24).contains(&h) && (0..7).contains(&w));
        let (h, w) = hour_and_weekday(i64::MAX);
        assert!((0..24).contains(&h) && (0..7).contains(&w));
    }
}
