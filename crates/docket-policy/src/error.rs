//! Why a policy text was refused, with Cedar's diagnostics rendered for the person who wrote it.

use cedar_policy::ffi::{DetailedError, SourceLabel};

/// A policy text that cannot become a [`crate::PolicySet`].
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Cedar's parse diagnostics, each with its line, column and the offending snippet.
    #[error("policy does not parse: {0}")]
    Parse(String),
    /// Cedar validator diagnostics against the Docket schema, one string each, with the policy id.
    #[error("policy does not validate against the Docket schema: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// A duplicate or empty `@id`, a bad `@approval`, and the like.
    #[error("{0}")]
    Annotation(String),
    /// More than [`crate::MAX_TEXT_BYTES`] of text, more than [`crate::MAX_POLICIES`]
    /// policies, or an expression nested deeper than [`crate::MAX_NESTING`].
    #[error("policy set is too large: {0}")]
    TooLarge(String),
}

/// Renders one Cedar diagnostic as a single line: message, where it is in
/// `text`, the snippet there, and Cedar's help.
///
/// The offsets Cedar reports are into the text it parsed, which is the whole
/// submitted text, so they can be turned into line and column here; a person
/// fixing a policy set of hundreds of policies needs the line.
pub(crate) fn render(diag: &DetailedError, text: &str) -> String {
    let mut out = diag.message.clone();
    for label in &diag.source_locations {
        out.push_str(&render_label(label, text));
    }
    if let Some(help) = &diag.help {
        out.push_str(" (help: ");
        out.push_str(help);
        out.push(')');
    }
    for related in &diag.related {
        out.push_str("; ");
        out.push_str(&render(related, text));
    }
    out
}

fn render_label(label: &SourceLabel, text: &str) -> String {
    let start = label.loc.start.min(text.len());
    let end = label.loc.end.clamp(start, text.len());
    let (line, column) = line_column(text, start);
    let mut out = format!(" at line {line}, column {column}");
    if let Some(snippet) = text.get(start..end) {
        let snippet = one_line(snippet);
        if !snippet.is_empty() {
            out.push_str(&format!(": `{snippet}`"));
        }
    }
    if let Some(what) = &label.label {
        out.push_str(&format!(" ({what})"));
    }
    out
}

/// 1-based line and column (in characters) of a byte offset; an offset inside
/// a character counts as that character.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for (at, ch) in text.char_indices() {
        if at >= offset {
            break;
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Keeps a snippet to one short line, so a diagnostic stays one line however
/// much of the policy Cedar points at.
fn one_line(snippet: &str) -> String {
    const MAX_CHARS: usize = 80;
    let flat: String = snippet.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_CHARS {
        flat
    } else {
        let mut cut: String = flat.chars().take(MAX_CHARS).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let text = "ab\ncd\n€f";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (2, 2));
        assert_eq!(line_column(text, 9), (3, 2));
        assert_eq!(line_column(text, 1_000), (3, 3));
    }

    #[test]
    fn snippets_are_flattened_and_cut() {
        assert_eq!(one_line("a\n   b"), "a b");
        let long = "x".repeat(200);
        assert_eq!(one_line(&long).chars().count(), 81);
    }
}
