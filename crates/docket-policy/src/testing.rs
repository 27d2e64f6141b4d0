//! Policy test cases: requests carried by a policy version with the outcome its author expects.

use serde::{Deserialize, Serialize};

use crate::request::{Outcome, Request};
use crate::set::PolicySet;

/// A request and the outcome the policy set must give it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub request: Request,
    pub expect: Outcome,
}

/// How a policy set fared against its test cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub total: usize,
    pub passed: usize,
    pub failures: Vec<TestFailure>,
}

/// A test case the set decided otherwise than expected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestFailure {
    pub name: String,
    pub expected: Outcome,
    pub got: Outcome,
    /// The reason of the decision the set gave, so the author sees which policy is to blame.
    pub reason: String,
}

impl TestReport {
    /// Whether every case passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Decides every case with `set` and reports those that came out otherwise, in the order given.
pub fn run_tests(set: &PolicySet, cases: &[TestCase]) -> TestReport {
    let failures: Vec<TestFailure> = cases
        .iter()
        .filter_map(|case| {
            let decision = set.decide(&case.request);
            (decision.outcome != case.expect).then(|| TestFailure {
                name: case.name.clone(),
                expected: case.expect,
                got: decision.outcome,
                reason: decision.reason,
            })
        })
        .collect();
    TestReport {
        total: cases.len(),
        passed: cases.len() - failures.len(),
        failures,
    }
}
