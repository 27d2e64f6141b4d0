//! Running a policy version's test cases.

use docket_policy::{Outcome, PolicySet, TestCase, TestFailure, run_tests};

use crate::{EXAMPLES, compile, model_call};

fn cases() -> Vec<TestCase> {
    let mut big = model_call("gpt-4o");
    big.context.estimated_cost_micro_usd = 3_000_000;
    vec![
        TestCase {
            name: "in scope".into(),
            request: model_call("gpt-4o"),
            expect: Outcome::Allow,
        },
        TestCase {
            name: "out of scope".into(),
            request: model_call("o3"),
            expect: Outcome::Deny,
        },
        TestCase {
            name: "big spend".into(),
            request: big,
            expect: Outcome::RequireApproval,
        },
    ]
}

#[test]
fn a_set_that_does_what_its_cases_say_passes() {
    let report = run_tests(&compile(EXAMPLES), &cases());
    assert_eq!(report.total, 3);
    assert_eq!(report.passed, 3);
    assert!(report.failures.is_empty());
    assert!(report.ok());
}

#[test]
fn failures_say_which_case_what_was_expected_what_came_and_why() {
    // The big-spend policy has lost its approval annotation.
    let set = compile(
        r#"
        @id("models-in-scope")
        permit(principal, action == Docket::Action::"call_model", resource)
        when { principal.models.contains(resource.name) };
        @id("big-spend")
        permit(principal, action == Docket::Action::"call_model", resource)
        when { context.estimated_cost_micro_usd > 1000000 };
        "#,
    );
    let report = run_tests(&set, &cases());
    assert_eq!(report.total, 3);
    assert_eq!(report.passed, 2);
    assert!(!report.ok());
    assert_eq!(
        report.failures,
        vec![TestFailure {
            name: "big spend".into(),
            expected: Outcome::RequireApproval,
            got: Outcome::Allow,
            reason: "permitted by big-spend, models-in-scope".into(),
        }]
    );
}

#[test]
fn every_failure_is_reported_in_order() {
    let report = run_tests(&PolicySet::deny_all(), &cases());
    assert_eq!(report.passed, 1);
    let names: Vec<&str> = report.failures.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["in scope", "big spend"]);
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.got == Outcome::Deny && f.reason == "no policy version is active")
    );
}

#[test]
fn no_cases_is_a_pass() {
    let report = run_tests(&compile(EXAMPLES), &[]);
    assert_eq!((report.total, report.passed), (0, 0));
    assert!(report.ok());
}
