//! What compiling accepts and refuses: Cedar's diagnostics, ids, annotations and limits.

use docket_policy::{MAX_NESTING, MAX_POLICIES, MAX_TEXT_BYTES, PolicyError, PolicySet};

use crate::{EXAMPLES, compile, refuse};

fn invalid(text: &str) -> Vec<String> {
    match refuse(text) {
        PolicyError::Invalid(errors) => errors,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn annotation(text: &str) -> String {
    match refuse(text) {
        PolicyError::Annotation(message) => message,
        other => panic!("expected an annotation error, got {other:?}"),
    }
}

#[test]
fn ids_come_from_annotations_or_position() {
    let set = compile(
        r#"
        permit(principal, action, resource);
        @id("second") permit(principal, action, resource);
        forbid(principal, action, resource) when { context.hour == 3 };
        "#,
    );
    assert_eq!(set.policy_ids(), ["policy0", "second", "policy2"]);
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
}

#[test]
fn ids_keep_the_order_of_the_text_past_ten_policies() {
    let text: String = (0..25)
        .map(|i| format!("forbid(principal, action, resource) when {{ context.hour == {i} }};\n"))
        .collect();
    let ids: Vec<String> = (0..25).map(|i| format!("policy{i}")).collect();
    assert_eq!(compile(&text).policy_ids(), ids);
}

#[test]
fn the_digest_is_of_the_text_as_submitted() {
    let set = compile(EXAMPLES);
    assert_eq!(set.sha256().len(), 64);
    // One more space is another version.
    let spaced = compile(&format!("{EXAMPLES} "));
    assert_ne!(set.sha256(), spaced.sha256());
    assert_eq!(
        PolicySet::deny_all().sha256(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(compile("").sha256(), PolicySet::deny_all().sha256());
}

#[test]
fn a_syntax_error_names_the_place_and_the_token() {
    let text =
        "@id(\"ok\") permit(principal, action, resource);\n\npermit(principal, action resource);";
    let PolicyError::Parse(message) = refuse(text) else {
        panic!("expected a parse error");
    };
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("resource"), "{message}");
    assert!(
        PolicyError::Parse(message.clone())
            .to_string()
            .starts_with("policy does not parse: "),
        "{message}"
    );
}

#[test]
fn comparing_a_string_with_a_long_is_a_type_error() {
    let errors = invalid(
        r#"@id("typo") permit(principal, action, resource) when { context.hour == "night" };"#,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = &errors[0];
    assert!(error.starts_with("policy typo: "), "{error}");
    assert!(
        error.contains("Long") && error.contains("String"),
        "{error}"
    );
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn an_unknown_attribute_is_named() {
    let errors = invalid(
        r#"@id("cost") permit(principal, action, resource) when { context.cost_usd > 5 };"#,
    );
    // Once, though Cedar finds it under each of the five actions.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "policy cost: attribute `cost_usd` in context not found at line 1, column 56"
        ),
        "{errors:?}"
    );
    let errors = invalid(
        r#"@id("team") permit(principal, action, resource) when { principal.team == "ops" };"#,
    );
    assert!(errors.iter().any(|e| e.contains("team")), "{errors:?}");
}

#[test]
fn an_attribute_of_another_resource_kind_is_refused() {
    // Models have no data classes; the context has them for every kind.
    let errors = invalid(
        r#"@id("m") permit(principal, action == Docket::Action::"call_model", resource) when { resource.data_classes.contains("pii") };"#,
    );
    assert!(
        errors.iter().any(|e| e.contains("data_classes")),
        "{errors:?}"
    );
}

#[test]
fn an_unknown_entity_type_or_action_is_named() {
    let errors = invalid(r#"permit(principal == Docket::User::"alice", action, resource);"#);
    assert!(
        errors.iter().any(|e| e.contains("Docket::User")),
        "{errors:?}"
    );
    assert!(errors[0].starts_with("policy policy0: "), "{errors:?}");
    let errors =
        invalid(r#"permit(principal, action == Docket::Action::"delete_everything", resource);"#);
    assert!(
        errors.iter().any(|e| e.contains("delete_everything")),
        "{errors:?}"
    );
}

#[test]
fn an_optional_context_attribute_must_be_tested_first() {
    let errors = invalid(
        r#"@id("unsafe") forbid(principal, action, resource) when { context.task == "x" };"#,
    );
    assert!(errors.iter().any(|e| e.contains("task")), "{errors:?}");
    compile(
        r#"forbid(principal, action, resource) when { context has task && context.task == "x" };"#,
    );
}

#[test]
fn every_invalid_policy_is_reported_with_its_id() {
    let errors = invalid(
        r#"
        @id("one") permit(principal, action, resource) when { context.hour == "x" };
        @id("fine") permit(principal, action, resource);
        @id("two") permit(principal, action, resource) when { principal.nope };
        "#,
    );
    assert!(
        errors.iter().any(|e| e.starts_with("policy one: ")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("policy two: ")),
        "{errors:?}"
    );
    assert!(
        !errors.iter().any(|e| e.starts_with("policy fine: ")),
        "{errors:?}"
    );
    let message = PolicyError::Invalid(errors).to_string();
    assert!(
        message.starts_with("policy does not validate against the Docket schema: policy "),
        "{message}"
    );
}

#[test]
fn templates_are_refused() {
    let errors = invalid("permit(principal == ?principal, action, resource);");
    assert!(errors[0].contains("template"), "{errors:?}");
}

#[test]
fn ids_must_be_unique() {
    let message = annotation(
        r#"
        @id("same") permit(principal, action, resource);
        @id("same") forbid(principal, action, resource);
        "#,
    );
    assert!(message.contains("\"same\""), "{message}");
    assert!(message.contains("1 and 2"), "{message}");
    // A given id may not take the name Cedar gives another policy either.
    let message = annotation(
        r#"
        @id("policy1") permit(principal, action, resource);
        permit(principal, action, resource);
        "#,
    );
    assert!(message.contains("\"policy1\""), "{message}");
}

#[test]
fn ids_must_not_be_empty() {
    for id in ["@id(\"\")", "@id(\"  \")", "@id"] {
        let message = annotation(&format!("{id} permit(principal, action, resource);"));
        assert!(message.contains("empty @id"), "{id}: {message}");
    }
}

#[test]
fn approval_takes_required_on_permits_only() {
    let message = annotation(r#"@id("p") @approval("maybe") permit(principal, action, resource);"#);
    assert_eq!(
        message,
        r#"policy p: @approval must be "required", not "maybe""#
    );
    let message = annotation(r#"@id("p") @approval permit(principal, action, resource);"#);
    assert!(message.contains("must be \"required\""), "{message}");
    let message =
        annotation(r#"@id("f") @approval("required") forbid(principal, action, resource);"#);
    assert!(message.contains("permit policies only"), "{message}");
    compile(r#"@approval("required") permit(principal, action, resource);"#);
}

#[test]
fn the_limits_are_enforced() {
    let big = format!("// {}\n", "x".repeat(MAX_TEXT_BYTES));
    assert!(matches!(refuse(&big), PolicyError::TooLarge(_)));
    let many = "forbid(principal, action, resource) when { context.hour == 99 };\n"
        .repeat(MAX_POLICIES + 1);
    assert!(many.len() <= MAX_TEXT_BYTES);
    let PolicyError::TooLarge(message) = refuse(&many) else {
        panic!("expected too large");
    };
    assert!(message.contains("10001 policies"), "{message}");
}

#[test]
fn the_largest_set_allowed_compiles() {
    let text: String = (0..MAX_POLICIES)
        .map(|i| format!("permit(principal == Docket::Agent::\"a{i}\", action, resource);\n"))
        .collect();
    assert!(text.len() <= MAX_TEXT_BYTES);
    let set = compile(&text);
    assert_eq!(set.len(), MAX_POLICIES);
    let mut request = crate::model_call("gpt-4o");
    request.principal.agent = "a9999".into();
    assert_eq!(set.decide(&request).determining, ["policy9999"]);
}

/// Cedar 4 recurses without a limit; nesting like this used to abort the
/// process with a stack overflow, on the 2 MiB stack of a test thread as on
/// a server's worker threads.
#[test]
fn deep_nesting_is_refused_before_it_reaches_cedar() {
    for text in [
        format!(
            "permit(principal, action, resource) when {{ {}true{} }};",
            "(".repeat(150),
            ")".repeat(150)
        ),
        format!(
            "permit(principal, action, resource) when {{ principal.name == \"a\" {} }};",
            "&& context.hour > 1 ".repeat(400)
        ),
        format!(
            "permit(principal, action, resource) when {{ {}1 > 0 }};",
            "1 + ".repeat(100_000)
        ),
        format!(
            "permit(principal, action, resource) when {{ {}true }};",
            "if true then true else ".repeat(1_000)
        ),
    ] {
        let PolicyError::TooLarge(message) = refuse(&text) else {
            panic!("expected too large");
        };
        assert!(message.contains("nests too deeply"), "{message}");
    }
}

#[test]
fn nesting_up_to_the_limit_compiles_and_decides() {
    let alternatives: Vec<String> = (0..MAX_NESTING / 4)
        .map(|i| format!("principal.name == \"a{i}\""))
        .collect();
    let text = format!(
        "permit(principal, action, resource) when {{ {} }};\n\
         permit(principal, action, resource) when {{ {}context.hour >= 0{} }};",
        alternatives.join(" || "),
        "(".repeat(MAX_NESTING / 4 - 3),
        ")".repeat(MAX_NESTING / 4 - 3),
    );
    let set = crate::compile(&text);
    let mut request = crate::model_call("gpt-4o");
    request.principal.agent = "a7".into();
    assert_eq!(set.decide(&request).determining, ["policy0", "policy1"]);
}

#[test]
fn garbage_is_refused_not_panicked_on() {
    for text in [
        "\u{0}",
        "permit(",
        "permit(principal, action, resource) when { context.hour == 1 ",
        "@id(\"x\") @id(\"y\") permit(principal, action, resource);",
        "permit(principal, action, resource) when { 99999999999999999999 > 1 };",
        "ünïcödé ✓",
        "permit(principal, action in Docket::Action::\"call_model\", resource is Docket::Agent);",
    ] {
        let _ = PolicySet::compile(text);
    }
}

#[test]
fn the_schema_is_served_as_cedar_text() {
    let schema = docket_policy::schema_text();
    assert!(schema.contains("namespace Docket"));
    assert!(schema.contains("@approval(\"required\")"));
}
