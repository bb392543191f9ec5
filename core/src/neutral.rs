//! Untrusted text — from a service (bodies, headers, logs) or a spec (titles, briefs) — neutralised for each
//! output before it is written: control characters for terminals, markup for Markdown, invalid characters for
//! XML.

use std::borrow::Cow;

/// Whether a character could steer a terminal or hide text: C0 controls other than newline and tab, DEL, C1
/// controls (a lone CSI or OSC), and the bidirectional overrides and isolates that reorder what is shown.
fn is_steering(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text for a terminal: every steering character becomes a visible escape such as `\x1b` or `\u{202e}`, so an
/// escape sequence in a response body is shown, never executed (no title, clipboard or screen writes).
pub fn terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_steering) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                c if !is_steering(c) => c.to_string(),
                c if (c as u32) < 0x100 => format!("\\x{:02x}", c as u32),
                c => format!("\\u{{{:x}}}", c as u32),
            })
            .collect(),
    )
}

/// Text for XML 1.0 (JUnit): characters XML cannot carry at all (C0 controls other than tab, newline and
/// carriage return, and U+FFFE/U+FFFF) become visible escapes; quick-junit escapes the markup characters.
pub fn xml(text: &str) -> Cow<'_, str> {
    let invalid = |c: char| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}');
    if !text.chars().any(invalid) {
        return terminal(text);
    }
    let cleaned: String = text
        .chars()
        .map(|c| {
            if invalid(c) {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect();
    Cow::Owned(terminal(&cleaned).into_owned())
}

/// Text for running Markdown (a table cell, a list item, a heading): one line, with HTML and the Markdown
/// characters that open inline markup escaped (and a leading one that would open a block), so that a body cannot
/// open a heading, a link, an image, a table column or raw HTML in a GitHub step summary.
pub fn markdown(text: &str) -> String {
    let text = terminal(text);
    let text = text.trim_start();
    let mut out = String::with_capacity(text.len() + 8);
    // A block opener at the start of a line: a heading, a list, a quote, a numbered list.
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    if text.starts_with(['#', '-', '+', '=', '>']) || (digits > 0 && text[digits..].starts_with(['.', ')'])) {
        out.push('\\');
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A Markdown code block holding `text` verbatim: the fence is longer than any run of backticks inside, so
/// the text cannot close it.
pub fn code_block(text: &str, language: &str) -> String {
    let text = terminal(text);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{language}\n{}\n{fence}", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_shows_escape_sequences_instead_of_running_them() {
        let hostile = "title\x1b]0;pwned\x07 clear\x1b[2J bidi\u{202e}txt.exe \u{9b}31m";
        let safe = terminal(hostile);
        assert!(!safe.chars().any(is_steering), "{safe}");
        assert_eq!(safe, r"title\x1b]0;pwned\x07 clear\x1b[2J bidi\u{202e}txt.exe \x9b31m");
        assert_eq!(terminal("plain\nlines\tand tabs"), "plain\nlines\tand tabs");
    }

    #[test]
    fn markdown_text_cannot_open_markup() {
        let hostile = "x\n# Heading [link](https://evil.example) <img src=x onerror=alert(1)> | cell ``";
        let safe = markdown(hostile);
        assert!(!safe.contains('\n') && !safe.contains('<'), "{safe}");
        assert!(safe.contains(r"# Heading \[link\](https://evil.example)"), "{safe}");
        assert_eq!(markdown("# heading"), r"\# heading");
        assert_eq!(markdown("1. item"), r"\1. item");
        assert!(safe.contains(r"\| cell \`\`"), "{safe}");
    }

    #[test]
    fn code_blocks_outlast_any_backtick_run_and_xml_drops_what_it_cannot_carry() {
        let body = "```\n# escaped?\n````";
        let block = code_block(body, "");
        assert!(block.starts_with("`````\n") && block.ends_with("\n`````"), "{block}");
        assert_eq!(xml("a\u{0}b\u{1b}c\u{FFFF}"), r"a\x00b\x1bc\xffff");
    }
}
