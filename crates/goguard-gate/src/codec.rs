//! HTTP/1 message rules, each written once and used by both sides of the gateway: the
//! server loop for clients ([`crate::plain_h1`]), the client for upstreams ([`crate::h1`]),
//! and the request path ([`crate::gateway`]) for what hyper parsed. A fix to how a length,
//! a chunk size, a `Connection` token or a bodiless status is read is made, and tested, here.
//!
//! The rules are RFC 9112's, read strictly where a lenient reading has been used to smuggle
//! requests: lengths and chunk sizes are digits only (no sign, no spaces inside, no
//! overflow), differing lengths are an error, and a line ends with CRLF.

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

/// The most header lines a message may have, on either side (hyper's server refuses more
/// than 100 as well, so both server paths agree).
pub const MAX_HEADERS: usize = 100;
/// The longest chunk-size or trailer line read.
pub const MAX_LINE: usize = 8 * 1024;

/// Statuses whose responses never have a body, whatever their headers say (RFC 9110 6.4.1).
/// A response to HEAD has none either; that depends on the request, not the status.
pub fn status_has_no_body(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Why a message's framing cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A `Content-Length` that is not digits only (`+5`, `5 5`, `0x5`, empty, too long).
    InvalidLength,
    /// Two `Content-Length` values that differ.
    DifferingLengths,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FramingError::InvalidLength => "a Content-Length is not a number",
            FramingError::DifferingLengths => "Content-Length values differ",
        })
    }
}

/// A decimal length: ASCII digits only, at most 18 of them (no overflow), nothing else.
pub fn parse_length(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A chunk-size line's size: 1 to 16 hex digits (no sign, no spaces before them), then
/// optionally extensions after `;`, which are ignored but may not hold control bytes.
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let (digits, ext) = line.split_at(end);
    // Whitespace before an extension is tolerated (RFC 9112 7.1.1's BWS), not elsewhere.
    let digits = digits.trim_ascii_end();
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if ext.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// Writes a chunk's size line (the data and its CRLF follow); for the last chunk, 0, then
/// the trailers and an empty line.
pub fn put_chunk_size(wbuf: &mut Vec<u8>, len: usize) {
    use std::io::Write;
    let _ = write!(wbuf, "{len:x}\r\n");
}

/// Why a line of a chunked body cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Over [`MAX_LINE`] bytes without its end.
    TooLong,
    /// An LF without the CR before it: readers that accept it and readers that do not see
    /// different messages, a known smuggling shape.
    BareLf,
}

/// A line (without its CRLF) taken off the front of `buf`, `None` until all of it is there.
pub fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && buf[i - 1] == b'\r' => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        Some(_) => Err(LineError::BareLf),
        None if buf.len() > MAX_LINE => Err(LineError::TooLong),
        None => Ok(None),
    }
}

/// The members of a header value's comma-separated list, trimmed (empty ones kept: where a
/// rule forbids them, it sees them).
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// The tokens of every `Connection` line, empty ones skipped.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| list_items(v.as_bytes()))
        .filter(|t| !t.is_empty())
}

/// Whether a header value's comma-separated list holds `token` (case-insensitive).
pub fn value_has_token(value: &[u8], token: &str) -> bool {
    list_items(value).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// What `Transfer-Encoding` says of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No `Transfer-Encoding`.
    None,
    /// `chunked` alone: the only coding the gateway relays (it re-frames the body itself).
    Chunked,
    /// Anything else (`gzip, chunked`, `chunked, chunked`, an unknown coding, a final coding
    /// that is not chunked): the body cannot be relayed faithfully without its label.
    Other,
}

/// What a message's headers say of its framing, read in one pass over them (no lookup by
/// name: each hashes the name, and a response is read on every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingHeaders {
    /// Every `Content-Length` value read together: `None` without one. Several lines, or a
    /// list in one line, are accepted only when every value is the same (RFC 9110 8.6);
    /// whitespace around a list member is allowed, inside a number it is not.
    pub length: Result<Option<u64>, FramingError>,
    /// How many `Content-Length` lines there are, and values in them (`5, 5` is two).
    pub length_lines: usize,
    pub length_values: usize,
    /// What `Transfer-Encoding` says, as the gateway can relay it.
    pub coding: Coding,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
}

impl FramingHeaders {
    pub fn scan(headers: &HeaderMap) -> FramingHeaders {
        let mut length: Result<Option<u64>, FramingError> = Ok(None);
        let (mut length_lines, mut length_values, mut te_lines, mut te_tokens) = (0, 0, 0, 0);
        let mut chunked_first = false;
        let (mut close, mut keep_alive) = (false, false);
        for (name, value) in headers {
            if name == header::CONTENT_LENGTH {
                length_lines += 1;
                for part in list_items(value.as_bytes()) {
                    length_values += 1;
                    length = match (length, parse_length(part)) {
                        (Err(e), _) => Err(e),
                        (_, None) => Err(FramingError::InvalidLength),
                        (Ok(Some(l)), Some(n)) if l != n => Err(FramingError::DifferingLengths),
                        (Ok(_), Some(n)) => Ok(Some(n)),
                    };
                }
            } else if name == header::TRANSFER_ENCODING {
                te_lines += 1;
                for t in list_items(value.as_bytes()).filter(|t| !t.is_empty()) {
                    if te_tokens == 0 {
                        chunked_first = t.eq_ignore_ascii_case(b"chunked");
                    }
                    te_tokens += 1;
                }
            } else if name == header::CONNECTION {
                close |= value_has_token(value.as_bytes(), "close");
                keep_alive |= value_has_token(value.as_bytes(), "keep-alive");
            }
        }
        let coding = match (te_lines, te_tokens) {
            (0, _) => Coding::None,
            (_, 1) if chunked_first => Coding::Chunked,
            _ => Coding::Other,
        };
        FramingHeaders {
            length,
            length_lines,
            length_values,
            coding,
            close,
            keep_alive,
        }
    }
}

/// Sets a response's framing headers from what the gateway knows of its body, never from
/// what the upstream wrote: `Transfer-Encoding` goes (the writer frames the body itself),
/// and `Content-Length` is one valid value, or none.
///
/// - `body_length`: the body's exact length when known.
/// - `bodiless`: the answer has no body (a HEAD request, or a status without one). A 1xx or
///   204 answer then carries no length at all (RFC 9110 8.6: MUST NOT); a HEAD or 304 answer
///   keeps the length it describes when the upstream gave a valid one.
pub fn set_response_length(
    headers: &mut HeaderMap,
    status: StatusCode,
    bodiless: bool,
    body_length: Option<u64>,
) {
    let scan = FramingHeaders::scan(headers);
    set_response_length_scanned(headers, &scan, status, bodiless, body_length);
}

/// [`set_response_length`] with the headers already scanned.
pub fn set_response_length_scanned(
    headers: &mut HeaderMap,
    scan: &FramingHeaders,
    status: StatusCode,
    bodiless: bool,
    body_length: Option<u64>,
) {
    let keeps_described =
        bodiless && !status.is_informational() && status != StatusCode::NO_CONTENT;
    let length = match (bodiless, keeps_described) {
        (false, _) => body_length,
        (true, true) => scan.length.ok().flatten(),
        (true, false) => None,
    };
    // The usual answer already has exactly that one length and no coding: left as it is.
    let as_is = scan.coding == Coding::None
        && match length {
            Some(n) => scan.length_values == 1 && scan.length == Ok(Some(n)),
            None => scan.length_lines == 0,
        };
    if as_is {
        return;
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    if let Some(n) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::HeaderName;

    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"0005"), Some(5));
        for bad in [
            &b"+5"[..],
            b"-1",
            b" 5",
            b"5 5",
            b"0x5",
            b"",
            b"5a",
            b"1e3",
            b"9999999999999999999",
        ] {
            assert_eq!(
                parse_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn duplicate_lengths_must_agree() {
        let cl = |v: &[(&str, &str)]| FramingHeaders::scan(&headers(v)).length;
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&[("content-length", "5")]), Ok(Some(5)));
        assert_eq!(cl(&[("content-length", "5, 5")]), Ok(Some(5)));
        assert_eq!(
            cl(&[("content-length", "5"), ("content-length", "05")]),
            Ok(Some(5))
        );
        assert_eq!(
            cl(&[("content-length", "5"), ("content-length", "6")]),
            Err(FramingError::DifferingLengths)
        );
        assert_eq!(
            cl(&[("content-length", "5,")]),
            Err(FramingError::InvalidLength)
        );
        assert_eq!(
            cl(&[("content-length", "+5")]),
            Err(FramingError::InvalidLength)
        );
    }

    #[test]
    fn chunk_sizes_are_hex_digits_only() {
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"A;name=value"), Some(10));
        assert_eq!(chunk_size(b"5 ;ext"), Some(5));
        assert_eq!(chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
        for bad in [
            &b"+5"[..],
            b"-5",
            b"",
            b" 5",
            b"0x5",
            b"5g",
            b"11111111111111111",
            b"5;a\nb",
            b"5;\r",
        ] {
            assert_eq!(chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lines_end_with_crlf() {
        let mut b = BytesMut::from(&b"5\r\nhello\r\n"[..]);
        assert_eq!(take_line(&mut b).unwrap().as_deref(), Some(&b"5"[..]));
        assert_eq!(&b[..], b"hello\r\n");
        let mut b = BytesMut::from(&b"5"[..]);
        assert_eq!(take_line(&mut b), Ok(None));
        let mut b = BytesMut::from(&b"5\nhello"[..]);
        assert_eq!(take_line(&mut b), Err(LineError::BareLf));
        let mut b = BytesMut::from(&vec![b'a'; MAX_LINE + 1][..]);
        assert_eq!(take_line(&mut b), Err(LineError::TooLong));
    }

    #[test]
    fn connection_tokens_are_a_list() {
        let h = headers(&[("connection", "Keep-Alive, , X-A"), ("connection", "CLOSE")]);
        let t: Vec<&[u8]> = connection_tokens(&h).collect();
        assert_eq!(t, [&b"Keep-Alive"[..], b"X-A", b"CLOSE"]);
        let scan = FramingHeaders::scan(&h);
        assert!(scan.close && scan.keep_alive);
        assert!(!connection_tokens(&h).any(|t| t.eq_ignore_ascii_case(b"upgrade")));
    }

    #[test]
    fn only_chunked_alone_is_relayed() {
        let te = |v: &[(&str, &str)]| FramingHeaders::scan(&headers(v)).coding;
        assert_eq!(te(&[]), Coding::None);
        assert_eq!(te(&[("transfer-encoding", "chunked")]), Coding::Chunked);
        assert_eq!(te(&[("transfer-encoding", "Chunked ")]), Coding::Chunked);
        assert_eq!(te(&[("transfer-encoding", "gzip, chunked")]), Coding::Other);
        assert_eq!(
            te(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ]),
            Coding::Other
        );
        assert_eq!(
            te(&[("transfer-encoding", "chunked, chunked")]),
            Coding::Other
        );
        assert_eq!(te(&[("transfer-encoding", "")]), Coding::Other);
    }

    #[test]
    fn one_scan_reads_length_coding_and_connection() {
        let scan = |v: &[(&str, &str)]| {
            let f = FramingHeaders::scan(&headers(v));
            (f.length, f.coding, f.close, f.keep_alive)
        };
        let none = Coding::None;
        assert_eq!(scan(&[]), (Ok(None), none, false, false));
        assert_eq!(
            scan(&[("content-length", "5"), ("connection", "Keep-Alive")]),
            (Ok(Some(5)), none, false, true)
        );
        assert_eq!(
            scan(&[("content-length", "5, 5"), ("content-length", "05")]).0,
            Ok(Some(5))
        );
        assert_eq!(
            scan(&[("content-length", "5"), ("content-length", "6")]).0,
            Err(FramingError::DifferingLengths)
        );
        assert_eq!(
            scan(&[("content-length", "+5")]).0,
            Err(FramingError::InvalidLength)
        );
        assert_eq!(
            scan(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
                ("connection", "close"),
            ]),
            (Ok(None), Coding::Other, true, false)
        );
        assert_eq!(
            scan(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            (Ok(Some(3)), Coding::Chunked, false, false)
        );
    }

    #[test]
    fn response_lengths_are_the_gateways_own() {
        let set = |pairs: &[(&str, &str)], status: u16, bodiless, len| {
            let mut h = headers(pairs);
            set_response_length(&mut h, StatusCode::from_u16(status).unwrap(), bodiless, len);
            h.get_all("content-length")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let dup = [("content-length", "5"), ("content-length", "05")];
        assert_eq!(set(&dup, 200, false, Some(5)), ["5"]);
        assert_eq!(
            set(&[("content-length", "5, 5")], 200, false, Some(5)),
            ["5"]
        );
        assert_eq!(
            set(&[("content-length", "5")], 204, true, None),
            Vec::<String>::new()
        );
        assert_eq!(set(&[("content-length", "5")], 304, true, None), ["5"]);
        assert_eq!(
            set(&[("content-length", "+5")], 304, true, None),
            Vec::<String>::new()
        );
        assert_eq!(
            set(&[("content-length", "7")], 200, true, None),
            ["7"],
            "a HEAD answer"
        );
        let te = [("content-length", "5"), ("transfer-encoding", "chunked")];
        assert_eq!(set(&te, 200, false, None), Vec::<String>::new());
    }
}
