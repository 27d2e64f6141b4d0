//! Docket's policy engine: the Cedar schema, compiled policy sets, decisions and policy test cases.
//!
//! Pure: no IO, no async, no clock. How policies are written against
//! Docket is in the schema ([`schema_text`]). In short, for a request:
//!
//! - a satisfied `forbid` denies;
//! - otherwise, with no satisfied `permit`, the request is denied;
//! - otherwise, if any satisfied permit carries `@approval("required")`, it
//!   is held for approval, even when a broader permit also allows it, since
//!   that is what the author of the narrower, annotated policy meant;
//! - otherwise it is allowed.
//!
//! The server calls [`PolicySet::decide`] on every model and tool call, so
//! a compiled set is sliced by action and by the agent, project or resource
//! a policy is written for, and a decision evaluates only the policies that
//! can apply to it (`index`), on entities built once per agent and resource
//! (`translate`).

pub mod bench;
mod error;
mod index;
mod limits;
mod request;
mod schema;
mod set;
mod testing;
mod translate;

pub use error::PolicyError;
pub use limits::{MAX_NESTING, MAX_POLICIES, MAX_TEXT_BYTES};
pub use request::{
    Action, ActionExt, Context, Decision, Outcome, Principal, Request, Resource, ResourceKind,
    hour_and_weekday,
};
pub use schema::schema_text;
pub use set::PolicySet;
pub use testing::{TestCase, TestFailure, TestReport, run_tests};
