//! Spec errors: what is wrong, in which file, at which line and column, in which field, with a snippet.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use super::locate::Position;

/// One problem in one spec file.
#[derive(Debug, Clone)]
pub struct SpecError {
    /// The file's name as the user gave it (or `catalog:<id>`).
    pub file: String,
    /// The file's text, for the snippet.
    pub text: Arc<String>,
    /// Where the problem is, when known.
    pub position: Option<Position>,
    /// The field path, such as `probes[2].steps[0].expect.status`.
    pub field: Option<String>,
    /// What is wrong, as a lowercase fragment.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        f.write_str(": ")?;
        if let Some(field) = self.field.as_deref().filter(|f| !f.is_empty()) {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// The snippet view: a miette diagnostic pointing at the position.
struct Snippet<'a>(&'a SpecError, NamedSource<String>);

impl fmt::Debug for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl std::error::Error for Snippet<'_> {}

/// The longest source line a snippet shows; a longer one (a minified or hostile spec) is not quoted.
const MAX_SNIPPET_LINE: usize = 300;

impl SpecError {
    /// Whether the lines around the position can be quoted: short, and free of characters that could steer a
    /// terminal.
    fn quotable(&self) -> bool {
        let Some(position) = self.position else {
            return false;
        };
        let first = position.line.saturating_sub(3);
        self.text
            .lines()
            .skip(first)
            .take(5)
            .all(|line| line.len() <= MAX_SNIPPET_LINE && crate::neutral::terminal(line) == line)
    }
}

impl Diagnostic for Snippet<'_> {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.quotable().then_some(&self.1 as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let position = self.0.position?;
        let label = self
            .0
            .field
            .clone()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "here".to_string());
        // Underline the token at the position: up to the end of the word or the line.
        let rest = &self.0.text[position.offset..];
        let len = rest
            .find(['\n', ',', '}', ']'])
            .unwrap_or(rest.len())
            .clamp(1, 60)
            .min(rest.len().max(1));
        Some(Box::new(std::iter::once(LabeledSpan::at(
            position.offset..position.offset + len,
            label,
        ))))
    }
}

impl SpecError {
    /// Renders the error with a source snippet; `color` picks the coloured theme.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(110)
            .with_context_lines(2);
        // The message may quote the spec (an unknown field's name): a hostile one is shown plainly, neutralised.
        let line = self.to_string();
        if crate::neutral::terminal(&line) != line {
            return format!("{}\n", crate::neutral::terminal(&line));
        }
        let snippet = Snippet(self, NamedSource::new(self.file.clone(), self.text.as_ref().clone()));
        let mut out = String::new();
        if handler.render_report(&mut out, &snippet).is_err() {
            return format!("{line}\n");
        }
        out
    }
}
