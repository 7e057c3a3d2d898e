//! JSON written exactly as Python's `json.dumps` writes it by default: `", "` and `": "` separators and
//! every non-ASCII character escaped as `\uXXXX` (`ensure_ascii=True`).
//!
//! The original recorder wrote its readable log's `GFS2=` list and every JSONL record this way; records
//! written in the same bytes keep old and new lines interchangeable for existing `grep`/`jq` tooling.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Serialises `value` as Python's `json.dumps(value)` would.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PythonFormatter);
    value.serialize(&mut ser).expect("serialising plain data to memory cannot fail");
    String::from_utf8(buf).expect("the formatter writes ASCII only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_bytes() {
        assert_eq!(dumps(&["fs1", "fs2"]), r#"["fs1", "fs2"]"#);
        assert_eq!(dumps(&Vec::<String>::new()), "[]");
        assert_eq!(dumps(&serde_json::json!({"a": 1, "b": [true, null]})), r#"{"a": 1, "b": [true, null]}"#);
        assert_eq!(dumps("é€😀\"\n"), r#""\u00e9\u20ac\ud83d\ude00\"\n""#);
    }
}
