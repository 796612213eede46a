//! The bus's framing: what one node sends another in one NATS message.
//!
//! A frame is a run of entries. Each entry is a line of tab-separated
//! fields (the kind first, the payload's length last) and then the payload:
//! a stanza or other XML, or nothing. Tabs and newlines cannot occur in
//! the fields we put there (JIDs, resources, nicks and numbers: RFC 7622
//! and the PRECIS classes exclude control characters), so no escaping is
//! needed; the payload is length-delimited. Plain text rather than XML or
//! JSON for the envelope because the node reading a frame then parses
//! only the stanzas, and without a new dependency.

/// One entry of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: String,
    pub fields: Vec<String>,
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn new(kind: &str, fields: &[&str], payload: impl Into<Vec<u8>>) -> Entry {
        Entry {
            kind: kind.to_string(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            payload: payload.into(),
        }
    }

    /// The `i`th field, or `""`.
    pub fn field(&self, i: usize) -> &str {
        self.fields.get(i).map(String::as_str).unwrap_or("")
    }

    pub fn payload_str(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap_or("")
    }

    /// Append the entry to a frame being built.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.kind.as_bytes());
        for f in &self.fields {
            out.push(b'\t');
            // Defensive: a control character would break the framing.
            out.extend(
                f.bytes()
                    .map(|b| if b == b'\t' || b == b'\n' { b' ' } else { b }),
            );
        }
        out.push(b'\t');
        out.extend_from_slice(self.payload.len().to_string().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&self.payload);
    }
}

/// Split a frame into its entries; `None` if it is not one (a node of
/// another version, or damage: the frame is dropped whole).
pub fn read(mut frame: &[u8]) -> Option<Vec<Entry>> {
    let mut entries = Vec::new();
    while !frame.is_empty() {
        let eol = frame.iter().position(|b| *b == b'\n')?;
        let line = std::str::from_utf8(&frame[..eol]).ok()?;
        let mut parts: Vec<&str> = line.split('\t').collect();
        let len: usize = parts.pop()?.parse().ok()?;
        if parts.first().is_none_or(|k| k.is_empty()) {
            return None;
        }
        let rest = &frame[eol + 1..];
        if rest.len() < len {
            return None;
        }
        entries.push(Entry {
            kind: parts[0].to_string(),
            fields: parts[1..].iter().map(|s| s.to_string()).collect(),
            payload: rest[..len].to_vec(),
        });
        frame = &rest[len..];
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_a_frame() {
        let a = Entry::new("AD", &["alice@example.org", ""], "<message/>");
        let b = Entry::new("K", &["17"], Vec::new());
        let c = Entry::new("AF", &["bob@example.org", "phone with spaces"], "é\n\t");
        let mut out = Vec::new();
        for e in [&a, &b, &c] {
            e.write(&mut out);
        }
        assert_eq!(read(&out).unwrap(), vec![a, b, c]);
    }

    #[test]
    fn damaged_frames_are_refused() {
        assert!(read(b"AD\tx\t10\n<short/>").is_none());
        assert!(read(b"no length\n").is_none());
        assert!(read(b"\t5\nhello").is_none());
        assert_eq!(read(b"").unwrap(), vec![]);
    }

    #[test]
    fn control_characters_in_fields_do_not_break_the_frame() {
        let e = Entry::new("AF", &["a\tb\nc"], "x");
        let mut out = Vec::new();
        e.write(&mut out);
        let back = read(&out).unwrap();
        assert_eq!(back[0].field(0), "a b c");
        assert_eq!(back[0].payload, b"x");
    }
}
