//! Where each field of a YAML document sits, so checks made after parsing can still point at line and column.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in a source file: 1-based line and column, and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Byte offset from the start of the file.
    pub offset: usize,
}

impl Position {
    /// The position of a 1-based line and column in `source`.
    pub fn at(source: &str, line: usize, column: usize) -> Self {
        let line_start: usize = source
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let line_text = source[line_start.min(source.len())..].lines().next().unwrap_or("");
        let in_line: usize = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf8)
            .sum();
        Self {
            line,
            column,
            offset: (line_start + in_line).min(source.len()),
        }
    }
}

/// Field paths (`probes[2].steps[0].request.path`, as serde_path_to_error writes them) to positions.
#[derive(Debug, Default)]
pub struct Locations {
    map: HashMap<String, Position>,
}

impl Locations {
    /// Indexes a YAML document; a document that does not parse yields an empty index.
    pub fn index(source: &str) -> Self {
        let mut builder = Builder {
            source,
            stack: Vec::new(),
            map: HashMap::new(),
        };
        let mut parser = Parser::new_from_str(source);
        // A syntax error is reported by serde with its own position; whatever was indexed before it stays.
        let _ = parser.load(&mut builder, false);
        Self { map: builder.map }
    }

    /// The position of a field, or of its nearest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(position) = self.map.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

struct Builder<'a> {
    source: &'a str,
    stack: Vec<Frame>,
    map: HashMap<String, Position>,
}

impl Builder<'_> {
    fn position(&self, mark: Marker) -> Position {
        // yaml-rust2 counts columns from 0 and lines from 1.
        Position::at(self.source, mark.line(), mark.col() + 1)
    }

    /// The path of the node starting now, or `None` when the node is a mapping key.
    fn node_path(&mut self, event: &Event, mark: Marker) -> Option<String> {
        let position = self.position(mark);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, index }) => {
                let node = format!("{path}[{index}]");
                *index += 1;
                self.map.insert(node.clone(), position);
                Some(node)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    let name = match event {
                        Event::Scalar(value, ..) => value.clone(),
                        _ => "?".to_string(),
                    };
                    let node = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    // The key's position stands for the field until a scalar value gives a better one.
                    self.map.insert(node, position);
                    *key = Some(name);
                    None
                }
                Some(name) => {
                    let node = if path.is_empty() {
                        name
                    } else {
                        format!("{path}.{name}")
                    };
                    if matches!(event, Event::Scalar(..)) {
                        self.map.insert(node.clone(), position);
                    }
                    Some(node)
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match &event {
            Event::Scalar(..) | Event::Alias(..) => {
                self.node_path(&event, mark);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key has no path of its own; index it under "?".
                let path = self.node_path(&event, mark).unwrap_or_else(|| "?".to_string());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(&event, mark).unwrap_or_else(|| "?".to_string());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_and_falls_back_to_ancestors() {
        let source = "title: x\nprobes:\n  - id: a\n    steps:\n      - request: { path: /p }\n";
        let index = Locations::index(source);
        assert_eq!(index.find("title").map(|p| (p.line, p.column)), Some((1, 8)));
        assert_eq!(index.find("probes[0].id").map(|p| (p.line, p.column)), Some((3, 9)));
        assert_eq!(
            index
                .find("probes[0].steps[0].request.path")
                .map(|p| (p.line, p.column)),
            Some((5, 26))
        );
        assert_eq!(
            index
                .find("probes[0].steps[0].request.nope")
                .map(|p| (p.line, p.column)),
            Some((5, 9))
        );
        let position = index.find("probes[0].id").expect("indexed");
        assert_eq!(&source[position.offset..position.offset + 1], "a");
    }
}
