//! The size limits of a policy set, checked on the text before Cedar parses it.
//!
//! Cedar parses, validates and evaluates expressions recursively, with no
//! depth limit of its own in 4.x: a few hundred nested parentheses or
//! chained operators overflow a 2 MiB thread stack (a server worker's) and
//! abort the process. So the nesting of the text is bounded first, by a
//! scan that over-estimates the depth of the tree Cedar will build.

use crate::error::PolicyError;

/// The most policy text a version may have.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// The most policies a version may have.
pub const MAX_POLICIES: usize = 10_000;
/// The most nesting a policy may have, as a scan of the text counts it: 50
/// levels of brackets, or a chain of 200 operators, or a mix.
///
/// Measured on 2 MiB stacks, Cedar overflows past about 100 levels of
/// parentheses or 350 chained operators (debug builds; release builds do a
/// little better), so this leaves a margin of about two.
pub const MAX_NESTING: usize = 200;

/// What one level of brackets counts for: Cedar's grammar descends through
/// several rules for each, against one for an operator.
const BRACKET: usize = 4;

pub(crate) fn check_size(text: &str) -> Result<(), PolicyError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(PolicyError::TooLarge(format!(
            "{} bytes of text, the limit is {MAX_TEXT_BYTES}",
            text.len()
        )));
    }
    check_nesting(text)
}

/// Refuses text whose expressions may nest deeper than [`MAX_NESTING`].
///
/// At any point of the text, the estimate is the sum over the enclosing
/// brackets of [`BRACKET`] plus the operators met so far at that level
/// since the last `,` or `;` (which start a sibling, not a deeper node).
/// A chain of n operators makes a tree at most n deep, so this is an upper
/// bound, generous to flat policies and strict with nested ones.
fn check_nesting(text: &str) -> Result<(), PolicyError> {
    // Operators met at each open bracket level; the first entry is the top level.
    let mut levels: Vec<usize> = vec![0];
    let mut line = 1;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let mut ops = 0;
        match c {
            '\n' => line += 1,
            '"' => {
                // A string: skip to its closing quote, minding escapes.
                while let Some((_, s)) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                for (_, s) in chars.by_ref() {
                    if s == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '(' | '[' | '{' => levels.push(0),
            // An unbalanced closer is Cedar's to report; the top level stays.
            ')' | ']' | '}' if levels.len() > 1 => {
                levels.pop();
            }
            ',' => {
                if let Some(level) = levels.last_mut() {
                    *level = 0;
                }
            }
            ';' => levels = vec![0],
            '&' | '|' | '=' | '!' | '<' | '>' | '+' | '-' | '*' | '.' => {
                // Two-character operators count once.
                if matches!(c, '&' | '|' | '=')
                    || (matches!(c, '!' | '<' | '>')
                        && chars.peek().is_some_and(|(_, n)| *n == '='))
                {
                    chars.next_if(|(_, n)| *n == c || *n == '=');
                }
                ops = 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = at + c.len_utf8();
                while let Some((i, n)) =
                    chars.next_if(|(_, n)| n.is_ascii_alphanumeric() || *n == '_')
                {
                    end = i + n.len_utf8();
                }
                ops = match text.get(at..end) {
                    Some("in" | "has" | "like" | "is" | "then" | "else") => 1,
                    // The branches of an `if` nest under it.
                    Some("if") => BRACKET,
                    _ => 0,
                };
            }
            _ => {}
        }
        if ops > 0
            && let Some(level) = levels.last_mut()
        {
            *level += ops;
        }
        let depth = levels
            .iter()
            .map(|ops| ops + BRACKET)
            .sum::<usize>()
            .saturating_sub(BRACKET);
        if depth > MAX_NESTING {
            return Err(PolicyError::TooLarge(format!(
                "the policy at line {line} nests too deeply (more than {MAX_NESTING} \
                 chained operators or {} levels of brackets); split it, or test \
                 membership in a set (`[\"a\", \"b\"].contains(principal.name)`) \
                 instead of chaining `||`",
                MAX_NESTING / BRACKET
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deepest_allowed(make: impl Fn(usize) -> String) -> usize {
        (0..2_000)
            .find(|n| check_nesting(&make(*n + 1)).is_err())
            .unwrap_or(2_000)
    }

    #[test]
    fn brackets_and_chains_are_bounded() {
        let parens = deepest_allowed(|n| format!("{}1{}", "(".repeat(n), ")".repeat(n)));
        assert_eq!(parens, MAX_NESTING / BRACKET);
        let chain = deepest_allowed(|n| format!("{}1", "1 + ".repeat(n)));
        assert_eq!(chain, MAX_NESTING);
        let ands = deepest_allowed(|n| format!("{}true", "true && ".repeat(n)));
        assert_eq!(ands, MAX_NESTING);
    }

    #[test]
    fn siblings_and_statements_do_not_add_up() {
        let set = format!("[{}]", vec!["principal.name == \"a\""; 1_000].join(", "));
        assert!(check_nesting(&set).is_ok());
        let many = "permit(principal, action, resource) when { 1 + 1 + 1 > 0 };\n".repeat(1_000);
        assert!(check_nesting(&many).is_ok());
    }

    #[test]
    fn strings_and_comments_are_not_code() {
        let string = format!("\"{}\\\"{}\"", "(".repeat(1_000), "+".repeat(1_000));
        assert!(check_nesting(&string).is_ok());
        let comment = format!("// {}\n1", "(".repeat(1_000));
        assert!(check_nesting(&comment).is_ok());
        let err = check_nesting(&format!("\n\n{}", "(".repeat(1_000)));
        assert!(matches!(err, Err(PolicyError::TooLarge(m)) if m.contains("line 3")));
    }
}
