//! A bounded log of a service's output: keeps the last bytes, strips terminal control sequences.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The last `capacity` bytes a service wrote to stdout and stderr, shared with the reader tasks.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl LogBuffer {
    /// A buffer that keeps the last `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(VecDeque::new())),
            capacity,
        }
    }

    /// Appends output, dropping the oldest bytes past the capacity.
    pub fn push(&self, bytes: &[u8]) {
        let Ok(mut buffer) = self.inner.lock() else { return };
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (buffer.len() + bytes.len()).saturating_sub(self.capacity);
        let drop_front = overflow.min(buffer.len());
        buffer.drain(..drop_front);
        buffer.extend(bytes);
    }

    /// Everything kept, as text without terminal control sequences.
    pub fn text(&self) -> String {
        let bytes: Vec<u8> = self
            .inner
            .lock()
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        strip_control(&String::from_utf8_lossy(&bytes))
    }

    /// The last `lines` lines.
    pub fn tail(&self, lines: usize) -> String {
        let text = self.text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Removes ANSI escape sequences and control characters other than newline and tab.
pub fn strip_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte; OSC: ESC ] ... BEL or ESC \; others: ESC + one char.
                match chars.next() {
                    Some('[') => {
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    Some(']') => {
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                                chars.next_if_eq(&'\\');
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            }
            '\n' | '\t' => out.push(c),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let log = LogBuffer::new(8);
        log.push(b"0123456789");
        log.push(b"ab");
        assert_eq!(log.text(), "456789ab");
    }

    #[test]
    fn strips_colours_cursor_moves_and_titles() {
        let raw = "\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}ok\r\n\u{1b}[2Kdone\u{8}";
        assert_eq!(strip_control(raw), "red ok\ndone");
    }
}
