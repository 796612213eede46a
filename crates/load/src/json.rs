//! One result as one JSON object on one line (JSON Lines), built by hand:
//! flat keys, strings and numbers only, which is all a report needs.

use std::fmt::Write;

#[derive(Default)]
pub struct Line {
    out: String,
}

impl Line {
    pub fn new() -> Line {
        Line::default()
    }

    fn key(&mut self, k: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        push_str(&mut self.out, k);
        self.out.push(':');
    }

    pub fn str(mut self, k: &str, v: &str) -> Line {
        self.key(k);
        push_str(&mut self.out, v);
        self
    }

    pub fn int(mut self, k: &str, v: u64) -> Line {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    /// A float with up to 3 decimals; non-finite values become null.
    pub fn num(mut self, k: &str, v: f64) -> Line {
        self.key(k);
        if v.is_finite() {
            let s = format!("{v:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            self.out
                .push_str(if s.is_empty() || s == "-" { "0" } else { s });
        } else {
            self.out.push_str("null");
        }
        self
    }

    pub fn opt_num(self, k: &str, v: Option<f64>) -> Line {
        match v {
            Some(v) => self.num(k, v),
            None => self.null(k),
        }
    }

    pub fn null(mut self, k: &str) -> Line {
        self.key(k);
        self.out.push_str("null");
        self
    }

    pub fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_object_with_escaping() {
        let s = Line::new()
            .str("scenario", "login")
            .str("note", "a \"quoted\"\nline\\\u{1}")
            .int("n", 42)
            .num("rate", 1234.5678)
            .num("whole", 3.0)
            .num("small", 0.0004)
            .num("nan", f64::NAN)
            .opt_num("none", None)
            .finish();
        assert_eq!(
            s,
            r#"{"scenario":"login","note":"a \"quoted\"\nline\\\u0001","n":42,"rate":1234.568,"whole":3,"small":0,"nan":null,"none":null}"#
        );
        assert_eq!(Line::new().finish(), "{}");
    }
}
