//! A fast reader of event lines in exactly the layout the exporter writes (docs/FORMAT.md
//! §4.3: the fields in their order, no whitespace, no `\u` escapes).
//!
//! It reads a line into the same fields as serde_json would, or declines it (`None`): it
//! accepts a line only where serde_json reads it to those very fields, and anything it is
//! not sure of (whitespace, another field order, a `\u` escape, a number serde_json might
//! read otherwise) goes to serde_json, which then accepts or names the error. So it changes
//! how fast a line is read, never what is read or which error is reported; a unit test
//! and the `export_reader` fuzz target hold both readers equal.

use std::borrow::Cow;

use crate::export::{ActorIn, EventLineIn, SubjectIn};

/// Reads `line` if it has the exporter's own layout; `None` otherwise.
pub(crate) fn read(line: &str) -> Option<EventLineIn<'_>> {
    // The exporter escapes every control character; checked once here, not per string.
    if has_control(line.as_bytes()) {
        return None;
    }
    let mut c = Cursor {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    c.lit(r#"{"type":""#)?;
    let line_type = c.plain()?;
    c.lit(r#","app":""#)?;
    let app = Cow::Borrowed(c.plain()?);
    c.lit(r#","seq":"#)?;
    let seq = c.uint()?;
    c.lit(r#","id":""#)?;
    let id = c.plain()?;
    c.lit(r#","recorded_at_us":"#)?;
    let recorded_at_us = c.int()?;
    c.lit(r#","recorded_at":""#)?;
    let recorded_at = Cow::Borrowed(c.plain()?);
    c.lit(r#","actor":{"user_id":""#)?;
    let user_id = c.string()?;
    c.lit(r#","username":""#)?;
    let username = c.string()?;
    c.lit(r#","role":""#)?;
    let role = c.string()?;
    c.lit(r#"},"idempotency_key":"#)?;
    let idempotency_key = c.opt_string()?;
    c.lit(r#","reason":"#)?;
    let reason = c.opt_string()?;
    c.lit(r#","kind":""#)?;
    let kind = c.plain()?;
    c.lit(r#","subject":"#)?;
    let subject = if c.lit("null").is_some() {
        None
    } else {
        c.lit(r#"{"class":""#)?;
        let class = c.string()?;
        c.lit(r#","object_id":""#)?;
        let object_id = c.string()?;
        c.lit("}")?;
        Some(SubjectIn { class, object_id })
    };
    c.lit(r#","payload":"#)?;
    let payload = c.opt_string()?;
    c.lit(r#","payload_digest":""#)?;
    let payload_digest = c.plain()?;
    c.lit(r#","prev_hash":""#)?;
    let prev_hash = c.plain()?;
    c.lit(r#","key_id":""#)?;
    let key_id = c.plain()?;
    c.lit(r#","hash":""#)?;
    let hash = c.plain()?;
    c.lit(r#","signature":""#)?;
    let signature = c.plain()?;
    c.lit("}")?;
    (c.i == c.b.len()).then_some(EventLineIn {
        line_type,
        app,
        seq,
        id,
        recorded_at_us,
        recorded_at,
        actor: ActorIn {
            user_id,
            username,
            role,
        },
        idempotency_key,
        reason,
        kind,
        subject,
        payload,
        payload_digest,
        prev_hash,
        key_id,
        hash,
        signature,
    })
}

/// A place in a line that has no raw control character. Every stop is at an ASCII byte,
/// so slicing `s` there is safe.
struct Cursor<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    /// Steps over `text` if the line goes on with it (inlined: `text` is a constant, so
    /// the comparison is a few fixed-size loads rather than a call).
    #[inline(always)]
    fn lit(&mut self, text: &str) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        rest.starts_with(text.as_bytes())
            .then(|| self.i += text.len())
    }

    /// A string's body (its opening quote already read) with no escape: borrowed. (Most
    /// of these fields are hashes, keys and signatures in hex, 16 to 128 digits: long
    /// enough for a vector search.)
    fn plain(&mut self) -> Option<&'a str> {
        let rest = self.b.get(self.i..)?;
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' {
            return None;
        }
        let text = self.s.get(self.i..self.i + end)?;
        self.i += end + 1;
        Some(text)
    }

    /// A string's body (its opening quote already read), its two-character escapes
    /// undone; a `\u` escape is left to serde_json.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i;
        let rest = self.b.get(start..)?;
        let first = quote_or_backslash(rest)?;
        if rest[first] == b'"' {
            let text = self.s.get(start..start + first)?;
            self.i = start + first + 1;
            return Some(Cow::Borrowed(text));
        }
        // Unescaping only shortens: the rest of the line bounds the text. Bytes are
        // copied between the escapes, which are all ASCII, so the text stays UTF-8.
        let mut out = Vec::with_capacity(rest.len());
        let mut from = 0;
        let mut stop = first;
        loop {
            out.extend_from_slice(rest.get(from..stop)?);
            if rest[stop] == b'"' {
                self.i = start + stop + 1;
                return String::from_utf8(out).ok().map(Cow::Owned);
            }
            out.push(match rest.get(stop + 1)? {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 8,
                b'f' => 12,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                _ => return None,
            });
            from = stop + 2;
            stop = from + quote_or_backslash(rest.get(from..)?)?;
        }
    }

    /// `null`, or a string (its opening quote included).
    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.lit("null").is_some() {
            return Some(None);
        }
        self.lit("\"")?;
        self.string().map(Some)
    }

    /// Decimal digits with no leading zero (a lone `0` aside), within u64.
    fn uint(&mut self) -> Option<u64> {
        let rest = self.b.get(self.i..)?;
        let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 19 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        let n = rest[..len]
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        self.i += len;
        Some(n)
    }

    /// A `uint`, perhaps after a `-`, within i64; `-0` is left to serde_json.
    fn int(&mut self) -> Option<i64> {
        let negative = self.lit("-").is_some();
        let n = i64::try_from(self.uint()?).ok()?;
        match (negative, n) {
            (true, 0) => None,
            (true, n) => Some(-n),
            (false, n) => Some(n),
        }
    }
}

/// Where the first `"` or `\\` in `b` is. The strings it searches are short (names, roles,
/// object ids) or cut short by escaped quotes (a payload), so eight bytes at a time in a
/// machine word beat a vector search's set-up; a byte matches where its XOR with the
/// wanted byte is zero (the classic "has zero byte" test: only bytes above the first
/// zero byte can be flagged falsely, so the lowest flag is exact).
#[inline]
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes);
        let found =
            zero_bytes(x ^ (ONES * u64::from(b'"'))) | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|k| at + k)
}

/// Whether `text` holds a raw control character, which JSON allows in no string. (A fold
/// with no early exit, so that it compiles to vector instructions.)
fn has_control(text: &[u8]) -> bool {
    text.iter().fold(false, |seen, &c| seen | (c < 0x20))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event line of the committed golden export (410 events of every kind) and of
    /// the format's test vectors.
    fn lines() -> Vec<&'static str> {
        let golden = include_str!("../../fixtures/golden/replay/log.ndjson");
        let vectors = include_str!("../../fixtures/vectors/export.ndjson");
        golden
            .lines()
            .chain(vectors.lines())
            .filter(|l| l.starts_with(r#"{"type":"event""#))
            .collect()
    }

    fn slow(line: &str) -> Option<EventLineIn<'_>> {
        serde_json::from_str(line).ok()
    }

    #[test]
    fn every_line_the_exporter_writes_is_read_fast_and_alike() {
        let lines = lines();
        assert!(lines.len() >= 420, "{} lines", lines.len());
        for line in lines {
            let fast = read(line).unwrap_or_else(|| panic!("declined: {line}"));
            assert_eq!(Some(fast), slow(line), "{line}");
        }
    }

    #[test]
    fn escapes_numbers_and_layouts_it_is_not_sure_of_are_left_to_serde_json() {
        let line = lines()[40];
        let cases = [
            // Unescaped alike by both.
            (
                line.replacen(r#""username":""#, r#""username":"a\n\"b\\c\/d\t"#, 1),
                true,
            ),
            // \u escapes, whitespace, other field orders, leading zeros, -0, 20 digits.
            (
                line.replacen(r#""username":""#, r#""username":"\u00e9"#, 1),
                false,
            ),
            (line.replacen(r#","seq":"#, r#", "seq":"#, 1), false),
            (line.replacen(r#""seq":"#, r#""seq":0"#, 1), false),
            (
                line.replacen(r#""recorded_at_us":"#, r#""recorded_at_us":-0"#, 1),
                false,
            ),
            (
                line.replacen(r#""seq":"#, r#""seq":99999999999999999999"#, 1),
                false,
            ),
            (format!("{line} "), false),
            (line.replacen('}', "} ", 1), false),
        ];
        for (text, fast) in &cases {
            assert_eq!(read(text).is_some(), *fast, "{text}");
            assert!(crate::export::fast_reader_agrees(text), "{text}");
        }
        // A raw control character is an error for serde_json, and declined here.
        let control = line.replacen(r#""username":""#, "\"username\":\"\u{1}", 1);
        assert!(read(&control).is_none() && slow(&control).is_none());
    }

    proptest::proptest! {
        /// The word-at-a-time search finds the first `"` or `\\` a byte search finds, among
        /// their neighbours, their high-bit twins and bytes that borrow (0x00, 0x01, 0x80).
        #[test]
        fn the_word_search_finds_what_a_byte_search_finds(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                b'"', b'\\', b'"' - 1, b'"' + 1, b'\\' - 1, b'\\' + 1, b'"' | 0x80,
                b'\\' | 0x80, 0x00, 0x01, 0x80, 0xff, b'a',
            ]), 0..40),
            skip in 0usize..40,
        ) {
            let b = bytes.get(skip.min(bytes.len())..).unwrap_or_default();
            let expected = b.iter().position(|&c| c == b'"' || c == b'\\');
            proptest::prop_assert_eq!(quote_or_backslash(b), expected);
        }
    }

    /// Each line damaged at many places, in many ways: whenever the fast reader accepts the
    /// damaged line, serde_json reads it to the very same fields.
    #[test]
    fn a_damaged_line_is_read_alike_or_declined() {
        let replacements: [&str; 12] = [
            "\"", "\\", " ", "0", "-", "u", "}", "n", "\\\"", "\\u0041", "", "é",
        ];
        let (mut accepted, mut declined) = (0, 0);
        for line in lines().into_iter().step_by(7) {
            for at in (0..line.len()).step_by(5) {
                if !line.is_char_boundary(at) {
                    continue;
                }
                let end = line[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                for r in replacements {
                    let damaged = format!("{}{r}{}", &line[..at], &line[end..]);
                    match read(&damaged) {
                        Some(fast) => {
                            assert_eq!(Some(fast), slow(&damaged), "{damaged}");
                            accepted += 1;
                        }
                        None => declined += 1,
                    }
                }
            }
        }
        // Both outcomes were met many times, so both were compared.
        assert!(
            accepted > 1000 && declined > 1000,
            "{accepted} / {declined}"
        );
    }
}
