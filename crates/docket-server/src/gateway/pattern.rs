//! Model-name patterns, as model routes and prices write them: a name, or
//! a prefix ending in `*`.

/// Whether `model` matches `pattern`: equal, or `pattern` ends in `*` and
/// `model` starts with what precedes it. Case-sensitive, as the providers'
/// model names are.
pub(crate) fn pattern_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

/// The checks a pattern must pass.
pub(crate) fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("is empty".to_owned());
    }
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if body.contains('*') {
        return Err("may contain `*` only as its last character (a prefix match)".to_owned());
    }
    if pattern.chars().any(char::is_whitespace) {
        return Err("contains whitespace".to_owned());
    }
    Ok(())
}
