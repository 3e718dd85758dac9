//! Byte-level carriers, taken off before lines are read: gzip (with a limit on how far it
//! may expand) and UTF-16 (what PowerShell's `>` writes).

use std::io::{BufRead, Read};

/// A gzip may expand this far before its ratio is checked...
const BOMB_FLOOR: u64 = 1 << 30;
/// ...and past it, at most this many times its compressed size. Go dumps compress about 50
/// times (1,000,001 goroutines on 11 stacks: 146 MB to 3 MB).
const BOMB_RATIO: u64 = 100;

/// Wraps a dump source, taking off gzip and UTF-16 when the input has them.
pub fn decompressing<R: BufRead + 'static>(r: R) -> std::io::Result<Box<dyn BufRead>> {
    decompressing_with(r, BOMB_FLOOR)
}

fn decompressing_with<R: BufRead + 'static>(
    mut r: R,
    floor: u64,
) -> std::io::Result<Box<dyn BufRead>> {
    let mut reader: Box<dyn BufRead> = if r.fill_buf()?.starts_with(&[0x1f, 0x8b]) {
        let counted = Counted {
            inner: r,
            count: std::rc::Rc::new(std::cell::Cell::new(0)),
        };
        let compressed = counted.count.clone();
        Box::new(std::io::BufReader::new(Limited {
            inner: flate2::bufread::MultiGzDecoder::new(counted),
            expanded: 0,
            compressed,
            floor,
        }))
    } else {
        Box::new(r)
    };
    // A gzip that cannot be read fails at the first read, with the parser's error.
    let utf16 = match reader.fill_buf() {
        Ok([0xff, 0xfe, ..]) => Some(false),
        Ok([0xfe, 0xff, ..]) => Some(true),
        // No byte order mark: ASCII text in UTF-16LE has a zero after every byte.
        Ok([a, 0, b, 0, ..]) if a.is_ascii_graphic() && b.is_ascii() && *b != 0 => Some(false),
        _ => None,
    };
    Ok(match utf16 {
        Some(big_endian) => Box::new(std::io::BufReader::new(Utf16 {
            inner: reader,
            big_endian,
            out: Vec::new(),
            at: 0,
            carry: Vec::new(),
        })),
        None => reader,
    })
}

/// Counts the bytes consumed from a buffered reader.
struct Counted<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count.set(self.count.get() + amt as u64);
        self.inner.consume(amt);
    }
}

/// Stops a gzip that expands like a decompression bomb.
struct Limited<R> {
    inner: R,
    expanded: u64,
    compressed: std::rc::Rc<std::cell::Cell<u64>>,
    floor: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.expanded += n as u64;
        if self.expanded > self.floor && self.expanded > BOMB_RATIO * self.compressed.get().max(1) {
            return Err(std::io::Error::other(format!(
                "the gzip expands more than {BOMB_RATIO} times ({} MiB from {} kB read so far): refused as a likely decompression bomb; decompress it yourself if you trust it",
                self.expanded >> 20,
                self.compressed.get() / 1000
            )));
        }
        Ok(n)
    }
}

/// UTF-16 to UTF-8, streaming.
struct Utf16<R> {
    inner: R,
    big_endian: bool,
    out: Vec<u8>,
    at: usize,
    /// Bytes of an incomplete code unit or a high surrogate, for the next chunk.
    carry: Vec<u8>,
}

impl<R: BufRead> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                if self.carry.is_empty() {
                    return Ok(0);
                }
                // A dangling half unit or surrogate at the end.
                self.carry.clear();
                self.out.extend_from_slice("\u{fffd}".as_bytes());
                break;
            }
            let mut bytes = std::mem::take(&mut self.carry);
            bytes.extend_from_slice(chunk);
            let n = chunk.len();
            self.inner.consume(n);
            let whole = bytes.len() / 2 * 2;
            let mut units: Vec<u16> = bytes[..whole]
                .chunks_exact(2)
                .map(|p| {
                    if self.big_endian {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        u16::from_le_bytes([p[0], p[1]])
                    }
                })
                .collect();
            self.carry.extend_from_slice(&bytes[whole..]);
            // Keep a trailing high surrogate for its pair in the next chunk.
            if units.last().is_some_and(|u| (0xd800..0xdc00).contains(u)) {
                let u = units.pop().unwrap_or_default();
                let pair = if self.big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                };
                self.carry.splice(0..0, pair);
            }
            let mut s = String::with_capacity(units.len());
            for c in char::decode_utf16(units) {
                match c {
                    Ok('\u{feff}') => {}
                    Ok(c) => s.push(c),
                    Err(_) => s.push('\u{fffd}'),
                }
            }
            self.out.extend_from_slice(s.as_bytes());
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: Vec<u8>) -> std::io::Result<String> {
        let mut s = String::new();
        decompressing(std::io::Cursor::new(bytes))?.read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn utf16_with_and_without_a_bom() {
        let text = "goroutine 1 [running]:\nmain.main() \u{1F600}\n";
        let le: Vec<u8> = std::iter::once(0xfeffu16)
            .chain(text.encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(read_all(le).unwrap(), text);
        let bare: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(read_all(bare).unwrap(), text);
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..8 {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        let mut r = decompressing_with(std::io::Cursor::new(bomb.clone()), 4 << 20).unwrap();
        let err = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        // Under the floor, or at a dump's ratio, it is read.
        let mut r = decompressing_with(std::io::Cursor::new(bomb), 16 << 20).unwrap();
        assert_eq!(
            std::io::copy(&mut r, &mut std::io::sink()).unwrap(),
            8 << 20
        );
    }
}
