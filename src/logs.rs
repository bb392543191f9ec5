//! A bounded log of a service's output: keeps the last bytes, strips terminal control sequences.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The last `capacity` bytes a service wrote to stdout and stderr, shared with the reader tasks.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Kept>>,
    capacity: usize,
}

/// The bytes kept, and how many were ever written (so a mark stays meaningful after old bytes are dropped).
#[derive(Debug, Default)]
struct Kept {
    bytes: VecDeque<u8>,
    written: u64,
}

impl LogBuffer {
    /// A buffer that keeps the last `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Kept::default())),
            capacity,
        }
    }

    /// Appends output, dropping the oldest bytes past the capacity.
    pub fn push(&self, bytes: &[u8]) {
        let Ok(mut kept) = self.inner.lock() else { return };
        kept.written += bytes.len() as u64;
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (kept.bytes.len() + bytes.len()).saturating_sub(self.capacity);
        let drop_front = overflow.min(kept.bytes.len());
        kept.bytes.drain(..drop_front);
        kept.bytes.extend(bytes);
    }

    /// A mark: how many bytes were ever written. [`Self::since`] reads what came after it.
    pub fn mark(&self) -> u64 {
        self.inner.lock().map(|k| k.written).unwrap_or_default()
    }

    /// What was written after `mark` (as much of it as is still kept), as text without control sequences.
    pub fn since(&self, mark: u64) -> String {
        let bytes: Vec<u8> = self
            .inner
            .lock()
            .map(|k| {
                let new = k.written.saturating_sub(mark).min(k.bytes.len() as u64) as usize;
                k.bytes.iter().skip(k.bytes.len() - new).copied().collect()
            })
            .unwrap_or_default();
        strip_control(&String::from_utf8_lossy(&bytes))
    }

    /// Everything kept, as text without terminal control sequences.
    pub fn text(&self) -> String {
        self.since(0)
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
    fn reads_what_came_after_a_mark_even_once_old_bytes_are_dropped() {
        let log = LogBuffer::new(8);
        log.push(b"old\n");
        let mark = log.mark();
        log.push(b"new\n");
        assert_eq!(log.since(mark), "new\n");
        log.push(b"0123456789");
        assert_eq!(log.since(mark), "23456789", "only what is still kept");
        assert_eq!(log.since(log.mark()), "");
    }

    #[test]
    fn strips_colours_cursor_moves_and_titles() {
        let raw = "\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}ok\r\n\u{1b}[2Kdone\u{8}";
        assert_eq!(strip_control(raw), "red ok\ndone");
    }
}
