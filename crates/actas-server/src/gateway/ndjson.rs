//! Newline-delimited JSON (`application/x-ndjson`) from the product, masked line by line
//! as it streams: each line must be a JSON document, masked by the policy's JSON rules;
//! a line that isn't JSON, or is longer than [`MAX_LINE`], is dropped.
//!
//! Written by hand: the format is "one JSON text per line", and a streaming reader that
//! gives lines back is a few lines.

/// The longest line held back to be masked whole; a longer one is dropped.
pub(super) const MAX_LINE: usize = 1024 * 1024;

/// One stream being masked: the unfinished line.
#[derive(Default)]
pub(super) struct NdjsonMasker {
    line: Vec<u8>,
    overflow: bool,
}

impl NdjsonMasker {
    /// Takes the next piece of the stream and returns every line it completes, masked by
    /// `mask` (which gives `None` for a line that can't be masked).
    pub(super) fn feed(&mut self, chunk: &[u8], mask: &dyn Fn(&str) -> Option<String>) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in chunk {
            if b == b'\n' {
                self.end_line(mask, &mut out);
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.overflow = true;
            }
        }
        out
    }

    /// The last line, if the stream did not end with a newline.
    pub(super) fn finish(&mut self, mask: &dyn Fn(&str) -> Option<String>) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(mask, &mut out);
        }
        out
    }

    fn end_line(&mut self, mask: &dyn Fn(&str) -> Option<String>, out: &mut Vec<u8>) {
        let line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.overflow) {
            return;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return;
        };
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            return;
        }
        if let Some(masked) = mask(text) {
            out.extend_from_slice(masked.as_bytes());
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_masked_whole_however_they_arrive_and_others_dropped() {
        let mask = |t: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_str(t).ok()?;
            Some(if v.get("card").is_some() {
                r#"{"card":"•••• 4242"}"#.into()
            } else {
                v.to_string()
            })
        };
        let stream = b"{\"card\":\"4111111111114242\"}\nnot json 4111111111114242\n{\"ok\":1}\r\n{\"card\":\"4111";
        for size in [stream.len(), 1, 5] {
            let mut m = NdjsonMasker::default();
            let mut out = Vec::new();
            for c in stream.chunks(size) {
                out.extend(m.feed(c, &mask));
            }
            out.extend(m.finish(&mask));
            let text = String::from_utf8(out).expect("utf-8");
            assert_eq!(
                text, "{\"card\":\"•••• 4242\"}\n{\"ok\":1}\n",
                "in pieces of {size}"
            );
        }
    }
}
