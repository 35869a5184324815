//! A file's bytes as a stream, inflated when gzip, read only as far as the header says.
//!
//! Why a stream and not a buffer: a file is judged by its header before its voxels are read,
//! so that a hostile or mislabelled file costs a few kilobytes of memory whatever its size
//! (the command line reads files from disk, the page hands over slices of a `File`). Gzip
//! members are inflated one after another by flate2, which checks each member's CRC-32 and
//! length trailer; bytes after the last member are counted and reported, never inflated.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;

use super::ReadError;

/// Deflate never compresses better than about 1032:1; a gzip file smaller than its promised
/// contents / this is truncated, whatever else it holds.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

/// Counts the bytes taken from the underlying reader (so that trailing bytes after the last
/// gzip member can be told from the file's length without reading them).
struct Counted<R> {
    inner: R,
    consumed: u64,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

enum Body<R: Read> {
    Raw(Counted<BufReader<R>>),
    /// The member being inflated; `None` once the last member has ended.
    Gzip(Option<GzDecoder<Counted<BufReader<R>>>>),
}

/// The decompressed contents of one file.
pub struct Contents<R: Read> {
    body: Body<R>,
    /// The file's length in bytes, where known (a file on disk, a `File` in the browser).
    len: Option<u64>,
    /// Bytes after the last gzip member (not inflated, not read where `len` is known).
    pub trailing: u64,
    /// Decompressed bytes handed out so far.
    pub position: u64,
}

impl<R: Read> Contents<R> {
    pub fn new(reader: R, len: Option<u64>) -> Result<Contents<R>, ReadError> {
        let mut inner = Counted { inner: BufReader::with_capacity(64 << 10, reader), consumed: 0 };
        let gzip = inner.fill_buf().map_err(read_error)?.starts_with(&[0x1f, 0x8b]);
        let body = if gzip { Body::Gzip(Some(GzDecoder::new(inner))) } else { Body::Raw(inner) };
        Ok(Contents { body, len, trailing: 0, position: 0 })
    }

    pub fn is_gzip(&self) -> bool {
        matches!(self.body, Body::Gzip(_))
    }

    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Up to `n` bytes (fewer only at the end of the contents).
    pub fn read_up_to(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        let (mut out, gz) = (Vec::new(), self.is_gzip());
        self.by_ref().take(n as u64).read_to_end(&mut out).map_err(|e| io_error(e, gz))?;
        Ok(out)
    }

    /// Reads `n` bytes into `out` (which must have room: callers reserve what the header
    /// promised once it is known to be plausible). Returns how many there were.
    pub fn read_into(&mut self, out: &mut Vec<u8>, n: usize) -> Result<usize, ReadError> {
        let (before, gz) = (out.len(), self.is_gzip());
        self.by_ref().take(n as u64).read_to_end(out).map_err(|e| io_error(e, gz))?;
        Ok(out.len() - before)
    }

    /// Skips `n` bytes (header extensions), keeping nothing.
    pub fn skip(&mut self, n: u64) -> Result<u64, ReadError> {
        let gz = self.is_gzip();
        io::copy(&mut self.by_ref().take(n), &mut io::sink()).map_err(|e| io_error(e, gz))
    }

    /// What remains of the decompressed contents, inflated into nothing, at most `limit`
    /// bytes: checks the gzip trailers without keeping anything. `Ok(None)`: more than `limit`.
    pub fn drain(&mut self, limit: u64) -> Result<Option<u64>, ReadError> {
        let gz = self.is_gzip();
        let n = io::copy(&mut self.by_ref().take(limit + 1), &mut io::sink()).map_err(|e| io_error(e, gz))?;
        Ok((n <= limit).then_some(n))
    }

    /// After the last member: the next bytes start another member, or are trailing bytes.
    fn next_member(&mut self, mut inner: Counted<BufReader<R>>) -> io::Result<()> {
        let next = inner.fill_buf()?;
        if next.is_empty() {
            self.body = Body::Gzip(None);
        } else if next.starts_with(&[0x1f, 0x8b]) {
            self.body = Body::Gzip(Some(GzDecoder::new(inner)));
        } else {
            self.trailing = match self.len {
                Some(len) => len.saturating_sub(inner.consumed),
                None => io::copy(&mut inner, &mut io::sink())?,
            };
            self.body = Body::Gzip(None);
        }
        Ok(())
    }
}

impl<R: Read> Read for Contents<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = match &mut self.body {
                Body::Raw(r) => r.read(buf)?,
                Body::Gzip(None) => 0,
                Body::Gzip(Some(member)) => {
                    let n = member.read(buf)?;
                    if n == 0 && !buf.is_empty() {
                        // This member ended and its CRC and length matched (flate2 checks).
                        let Body::Gzip(Some(member)) = std::mem::replace(&mut self.body, Body::Gzip(None)) else {
                            unreachable!("matched above")
                        };
                        self.next_member(member.into_inner())?;
                        continue;
                    }
                    n
                }
            };
            self.position += n as u64;
            return Ok(n);
        }
    }
}

fn read_error(e: io::Error) -> ReadError {
    ReadError::NotNifti(format!("the file could not be read ({e})"))
}

fn io_error(e: io::Error, gzip: bool) -> ReadError {
    if !gzip {
        return read_error(e);
    }
    let what = e.to_string();
    let why = if what.contains("checksum") || what.contains("matching size") {
        "its gzip checksum does not match its contents: the file was damaged or altered after it was compressed"
            .to_string()
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        "its gzip stream ends early: the file is truncated; was the download or copy complete?".to_string()
    } else {
        format!("its gzip compression is damaged ({what})")
    };
    ReadError::Corrupt(why)
}
