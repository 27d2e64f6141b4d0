//! Docket's policy engine: the Cedar schema, compiled policy sets, decisions and policy test cases.
//!
//! Pure: no IO, no async, no clock. The server calls [`PolicySet::decide`]
//! on every model and tool call, so a compiled set is sliced by action and
//! scope up front and a decision evaluates only the policies that can apply
//! to it. How policies are written against Docket, and how an outcome is
//! reached, is in the schema ([`schema_text`]).

pub mod bench;
mod error;
mod index;
mod request;
mod schema;
mod set;
mod testing;
mod translate;

pub use error::PolicyError;
pub use request::{
    Action, Context, Decision, Outcome, Principal, Request, Resource, ResourceKind,
    hour_and_weekday,
};
pub use schema::schema_text;
pub use set::{MAX_POLICIES, MAX_TEXT_BYTES, PolicySet};
pub use testing::{TestCase, TestFailure, TestReport, run_tests};
