//! Per-service output: bytes from a pipe become lines, kept in a ring bounded by bytes.
//!
//! The ring is bounded by the bytes it holds rather than by a line count, so a service that
//! prints long lines cannot make init grow; a line longer than [`MAX_LINE`] is cut into
//! pieces so that one endless line cannot either.

use std::collections::VecDeque;

pub const MAX_LINE: usize = 4096;

pub struct LineRing {
    lines: VecDeque<String>,
    bytes: usize,
    capacity: usize,
    partial: Vec<u8>,
}

impl LineRing {
    pub fn new(capacity_bytes: usize) -> LineRing {
        LineRing {
            lines: VecDeque::new(),
            bytes: 0,
            capacity: capacity_bytes.max(MAX_LINE),
            partial: Vec::new(),
        }
    }

    /// Adds raw output; returns the lines it completed, for the console.
    pub fn push_bytes(&mut self, data: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        for &b in data {
            if b == b'\n' {
                done.push(self.take_partial());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    done.push(self.take_partial());
                }
            }
        }
        for line in &done {
            self.keep(line.clone());
        }
        done
    }

    /// The writer is gone: an unterminated last line still counts.
    pub fn flush(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let line = self.take_partial();
        self.keep(line.clone());
        Some(line)
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn take_partial(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.partial).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        self.partial.clear();
        line
    }

    fn keep(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.bytes > self.capacity {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_reads() {
        let mut r = LineRing::new(1 << 16);
        assert!(r.push_bytes(b"hel").is_empty());
        assert_eq!(r.push_bytes(b"lo\nwor"), vec!["hello"]);
        assert_eq!(r.push_bytes(b"ld\r\n\n"), vec!["world", ""]);
        assert_eq!(r.last(2), vec!["world", ""]);
        assert_eq!(r.last(10).len(), 3);
    }

    #[test]
    fn the_ring_forgets_the_oldest_beyond_its_capacity() {
        let mut r = LineRing::new(MAX_LINE);
        for i in 0..10_000 {
            r.push_bytes(format!("line {i:05}\n").as_bytes());
        }
        let kept = r.last(usize::MAX);
        assert!(kept.iter().map(String::len).sum::<usize>() <= MAX_LINE);
        assert_eq!(kept.last().unwrap(), "line 09999");
        assert!(kept.len() > 300);
    }

    #[test]
    fn endless_lines_are_cut_and_bad_utf8_is_kept_readable() {
        let mut r = LineRing::new(1 << 20);
        let out = r.push_bytes(&vec![b'x'; MAX_LINE * 2 + 10]);
        assert_eq!(out.len(), 2);
        assert_eq!(r.flush().unwrap().len(), 10);
        assert_eq!(r.push_bytes(b"\xff ok\n"), vec!["\u{fffd} ok"]);
        assert_eq!(r.flush(), None);
    }
}
