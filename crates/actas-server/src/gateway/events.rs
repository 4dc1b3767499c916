//! Server-sent events (`text/event-stream`) from the product, masked event by event as
//! they stream, like the product's WebSocket messages: an event's data must be JSON, and
//! is masked by the policy's JSON rules; an event whose data isn't JSON, or is larger than
//! [`MAX_EVENT`], is dropped. `event`, `id` and `retry` lines pass as they are, comments
//! pass emptied, and fields the standard doesn't name (which browsers ignore) are dropped.
//!
//! Written by hand: the format is a few lines of the HTML standard ("Parsing an event
//! stream"), and the crates that parse it are clients that don't give the lines back.

/// The largest event held back to be masked whole; a larger one is dropped.
pub(super) const MAX_EVENT: usize = 1024 * 1024;

/// One event stream being masked: the unfinished line, and the event being gathered.
#[derive(Default)]
pub(super) struct EventMasker {
    line: Vec<u8>,
    /// The event's `data` values, joined by newlines as the browser will join them.
    data: Option<String>,
    /// Its `event`, `id` and `retry` lines and emptied comments, passed on with it.
    others: Vec<u8>,
    /// The event outgrew [`MAX_EVENT`]: it is skipped up to its blank line.
    overflow: bool,
}

impl EventMasker {
    /// Takes the next piece of the stream and returns what is ready to send: every event
    /// it completes, masked by `mask` (which gives `None` for data that can't be masked).
    pub(super) fn feed(&mut self, chunk: &[u8], mask: &dyn Fn(&str) -> Option<String>) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.end_line(&line, mask, &mut out);
            } else if self.line.len() < MAX_EVENT {
                self.line.push(b);
            } else {
                self.overflow = true;
            }
        }
        out
    }

    fn end_line(&mut self, line: &[u8], mask: &dyn Fn(&str) -> Option<String>, out: &mut Vec<u8>) {
        if line.is_empty() {
            self.dispatch(mask, out);
            return;
        }
        if self.overflow {
            return;
        }
        // A line is `field: value` (one space after the colon dropped), `field` alone, or
        // a comment starting with a colon.
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            // Decoded as the browser decodes the stream: UTF-8, bad bytes replaced.
            let value = String::from_utf8_lossy(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            }
        } else if field.is_empty() {
            // A comment: scripts never see it, but the agent's developer tools would, so
            // only the colon is kept (it still keeps the connection alive).
            self.others.extend_from_slice(b":\n");
        } else if matches!(field, b"event" | b"id" | b"retry") {
            self.others.extend_from_slice(line);
            self.others.push(b'\n');
        }
        // Any other field means nothing to the browser, which ignores it: it is dropped.
        if self.data.as_ref().map_or(0, String::len) + self.others.len() > MAX_EVENT {
            self.overflow = true;
        }
    }

    /// The blank line that ends an event: send it on, masked, or drop it.
    fn dispatch(&mut self, mask: &dyn Fn(&str) -> Option<String>, out: &mut Vec<u8>) {
        let data = self.data.take();
        let others = std::mem::take(&mut self.others);
        if std::mem::take(&mut self.overflow) {
            return;
        }
        match data {
            None => {
                // Comments, `retry` or a bare `id`: nothing to mask.
                out.extend_from_slice(&others);
                out.push(b'\n');
            }
            Some(data) => {
                if let Some(masked) = mask(&data) {
                    out.extend_from_slice(&others);
                    for line in masked.split('\n') {
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(line.as_bytes());
                        out.push(b'\n');
                    }
                    out.push(b'\n');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the policy: JSON is "masked" by replacing every digit.
    fn mask(data: &str) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(data).ok()?;
        Some(data.replace(|c: char| c.is_ascii_digit(), "#"))
    }

    const STREAM: &str = ": keep-alive 4111111111114242\n\nevent: update\r\nid: 7\r\nnote: 4111111111114242\r\n4111111111114242\r\ndata: {\"card\":\r\ndata: \"4111111111114242\"}\r\n\r\ndata: card 4111111111114242\n\nretry: 500\n\ndata: {\"unfinished\": 4111";

    #[test]
    fn events_are_masked_whole_and_what_isnt_json_is_dropped() {
        for size in [STREAM.len(), 1] {
            let mut m = EventMasker::default();
            let out: Vec<u8> = STREAM
                .as_bytes()
                .chunks(size)
                .flat_map(|c| m.feed(c, &mask))
                .collect();
            let out = String::from_utf8(out).expect("utf-8");
            assert_eq!(
                out,
                ":\n\nevent: update\nid: 7\ndata: {\"card\":\ndata: \"################\"}\n\nretry: 500\n\n",
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn an_event_larger_than_the_limit_is_dropped_and_the_next_passes() {
        let mut m = EventMasker::default();
        let big = format!(
            "data: \"{}\"\n\ndata: {{\"n\": 1}}\n\n",
            "x".repeat(MAX_EVENT + 10)
        );
        let out = m.feed(big.as_bytes(), &mask);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "data: {\"n\": #}\n\n"
        );
    }
}
