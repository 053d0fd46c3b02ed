//! A zero-copy reader for the `multipart/form-data` bodies of `add` (RFC 7578 / RFC 2046).
//!
//! Why not axum's `Multipart` (multer): it appends every frame of the body to one growing
//! buffer before cutting fields out of it, which copies every uploaded byte once more and keeps
//! allocating fresh buffers. Here file content is handed on as slices of the frames the socket
//! delivered. Only part headers, and the few bytes around a delimiter that straddles two
//! frames, are copied.
//!
//! The body is read as if it began with CRLF, so the first delimiter (`--boundary` at the very
//! start) is found like every other (`CRLF--boundary`); anything before it (the preamble) and
//! after the close delimiter (the epilogue) is ignored. The request limit counts every body
//! byte.

use axum::http::HeaderMap;
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use memchr::memmem::Finder;

use crate::error::{Error, Result};

/// Largest header block of one part.
const MAX_HEADERS: usize = 16 * 1024;

/// What the headers of a part say.
#[derive(Debug, Default)]
pub(crate) struct PartHeaders {
    /// `filename` of `Content-Disposition`, as sent (Kubo clients percent-encode it).
    pub(crate) file_name: Option<String>,
    /// `Content-Type`, if any.
    pub(crate) content_type: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: part headers or the close delimiter follow.
    Delimiter,
    /// Inside a part's content.
    Content,
    /// After the close delimiter.
    Done,
}

/// Reads the parts of one multipart body.
pub(crate) struct Reader<S> {
    body: S,
    finder: Finder<'static>,
    delimiter_len: usize,
    /// Unread bytes; never holds a whole delimiter while in `Content`.
    buf: Bytes,
    state: State,
    received: u64,
    limit: u64,
}

impl<S> std::fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("state", &self.state)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// The boundary of a `multipart/form-data` content type.
pub(crate) fn boundary(headers: &HeaderMap) -> Result<String> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Multipart("expected a multipart/form-data body".into()))?;
    let mut params = ct.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Error::Multipart(format!(
            "expected a multipart/form-data body, got {kind:?}"
        )));
    }
    for p in params {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("boundary")
        {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() || v.len() > 70 {
                return Err(Error::Multipart("invalid multipart boundary".into()));
            }
            return Ok(v.to_string());
        }
    }
    Err(Error::Multipart("multipart body without a boundary".into()))
}

impl<S, E> Reader<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    /// A reader of `body`, whose parts are separated by `boundary`; more than `limit` body
    /// bytes is an error.
    pub(crate) fn new(body: S, boundary: &str, limit: u64) -> Self {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        Self {
            body,
            delimiter_len: delimiter.len(),
            finder: Finder::new(&delimiter).into_owned(),
            buf: Bytes::from_static(b"\r\n"),
            state: State::Preamble,
            received: 0,
            limit,
        }
    }

    /// The next frame of the body, `None` at its end.
    async fn frame(&mut self) -> Result<Option<Bytes>> {
        match self.body.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(Error::Multipart(format!("reading the body: {e}"))),
            Some(Ok(frame)) => {
                self.received += frame.len() as u64;
                if self.received > self.limit {
                    return Err(Error::TooLarge(self.limit));
                }
                Ok(Some(frame))
            }
        }
    }

    fn truncated() -> Error {
        Error::Multipart("multipart body ends inside a part".into())
    }

    /// The next piece of content before the next delimiter, or `None` once the delimiter has
    /// been consumed (the state is then `Delimiter`).
    async fn until_delimiter(&mut self) -> Result<Option<Bytes>> {
        let dlen = self.delimiter_len;
        loop {
            if let Some(i) = self.finder.find(&self.buf) {
                let data = self.buf.split_to(i);
                self.buf.advance(dlen);
                self.state = State::Delimiter;
                return Ok((!data.is_empty()).then_some(data));
            }
            // No whole delimiter in `buf`: all but its last `dlen - 1` bytes are content.
            if self.buf.len() >= dlen {
                return Ok(Some(self.buf.split_to(self.buf.len() - (dlen - 1))));
            }
            let Some(frame) = self.frame().await? else {
                return Err(Self::truncated());
            };
            if self.buf.is_empty() {
                self.buf = frame;
            } else if frame.len() < dlen {
                // Tiny frame: joining costs next to nothing.
                let mut joined = BytesMut::with_capacity(self.buf.len() + frame.len());
                joined.extend_from_slice(&self.buf);
                joined.extend_from_slice(&frame);
                self.buf = joined.freeze();
            } else {
                // A delimiter may start in `buf` (shorter than one) and end in `frame`: look
                // across the seam without joining the frame.
                let mut seam = Vec::with_capacity(self.buf.len() + dlen - 1);
                seam.extend_from_slice(&self.buf);
                seam.extend_from_slice(&frame[..dlen - 1]);
                if let Some(p) = self.finder.find(&seam) {
                    // `p` is inside `buf`: a match starting in the frame's first `dlen - 1`
                    // bytes could not fit in `seam`.
                    let data = self.buf.slice(..p);
                    self.buf = frame.slice(p + dlen - self.buf.len()..);
                    self.state = State::Delimiter;
                    return Ok((!data.is_empty()).then_some(data));
                }
                let data = std::mem::replace(&mut self.buf, frame);
                return Ok(Some(data));
            }
        }
    }

    /// Makes `buf` hold at least `n` bytes (copying: only used for headers); false at the end
    /// of the body.
    async fn fill(&mut self, n: usize) -> Result<bool> {
        while self.buf.len() < n {
            let Some(frame) = self.frame().await? else {
                return Ok(false);
            };
            let mut joined = BytesMut::with_capacity(self.buf.len() + frame.len());
            joined.extend_from_slice(&self.buf);
            joined.extend_from_slice(&frame);
            self.buf = joined.freeze();
        }
        Ok(true)
    }

    /// Moves to the next part and returns its headers; `None` after the last part.
    pub(crate) async fn next_part(&mut self) -> Result<Option<PartHeaders>> {
        while matches!(self.state, State::Preamble | State::Content) {
            self.until_delimiter().await?;
        }
        if self.state == State::Done {
            return Ok(None);
        }
        if !self.fill(2).await? {
            return Err(Self::truncated());
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            return Ok(None);
        }
        // Transport padding, then CRLF, then header lines and an empty line. Searching for
        // CRLF CRLF from the padding's CRLF finds the end of an empty header block too.
        let end = loop {
            let start = self
                .buf
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .unwrap_or(self.buf.len());
            if let Some(p) = memchr::memmem::find(&self.buf[start..], b"\r\n\r\n") {
                if !self.buf[start..].starts_with(b"\r\n") {
                    return Err(Error::Multipart(
                        "malformed multipart delimiter line".into(),
                    ));
                }
                break start + p;
            }
            if self.buf.len() > MAX_HEADERS {
                return Err(Error::Multipart("multipart part headers too large".into()));
            }
            // Header blocks are small: join the next frame and look again.
            let need = self.buf.len() + 1;
            if !self.fill(need).await? {
                return Err(Self::truncated());
            }
        };
        let block = self.buf.split_to(end + 4);
        let text = std::str::from_utf8(&block)
            .map_err(|_| Error::Multipart("part headers are not UTF-8".into()))?;
        let mut headers = PartHeaders::default();
        for line in text.split("\r\n").map(str::trim).filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(Error::Multipart(format!("malformed part header {line:?}")));
            };
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                headers.file_name = disposition_param(value, "filename");
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                headers.content_type = Some(value.to_string());
            }
        }
        self.state = State::Content;
        Ok(Some(headers))
    }

    /// The next piece of the current part's content; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>> {
        if self.state != State::Content {
            return Ok(None);
        }
        self.until_delimiter().await
    }
}

/// A parameter of a `Content-Disposition` value (`name="value"` with `\` escapes, or a token).
fn disposition_param(value: &str, want: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return None;
        }
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &quoted[end?..])
        } else {
            let stop = after.find(';').unwrap_or(after.len());
            (after[..stop].trim().to_string(), &after[stop..])
        };
        if name.trim().eq_ignore_ascii_case(want) {
            return Some(val);
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"preamble to ignore\r\n".to_vec();
        for (name, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\nepilogue").as_bytes());
        out
    }

    async fn read_all(raw: &[u8], boundary: &str, frame: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let frames: Vec<std::result::Result<Bytes, std::io::Error>> = raw
            .chunks(frame)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut r = Reader::new(futures::stream::iter(frames), boundary, u64::MAX);
        let mut out = Vec::new();
        while let Some(h) = r.next_part().await? {
            let mut data = Vec::new();
            while let Some(c) = r.chunk().await? {
                data.extend_from_slice(&c);
            }
            out.push((h.file_name.unwrap_or_default(), data));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn parts_come_out_whole_at_every_frame_size() {
        let boundary = "XyZ-123";
        // Content full of near-delimiters: CR LF, "--", the boundary without its dashes.
        let mut tricky = Vec::new();
        for i in 0..300u32 {
            tricky.extend_from_slice(b"\r\n-\r\n--XyZ-12\r\r\n--XyZ");
            tricky.extend_from_slice(&i.to_le_bytes());
        }
        let parts: [(&str, &[u8]); 4] = [
            ("a", b"hello"),
            ("empty", b""),
            ("tricky", &tricky),
            ("big", &[7u8; 100_000]),
        ];
        let raw = body(boundary, &parts);
        for frame in [1, 2, 3, 7, 10, 11, 12, 13, 64, 1000, 65_536, raw.len()] {
            let got = read_all(&raw, boundary, frame).await.unwrap();
            assert_eq!(got.len(), parts.len(), "frame {frame}");
            for ((name, data), (want_name, want)) in got.iter().zip(parts.iter()) {
                assert_eq!(name, want_name, "frame {frame}");
                assert_eq!(&data[..], *want, "frame {frame} part {want_name}");
            }
        }
    }

    #[tokio::test]
    async fn malformed_bodies_are_errors() {
        let boundary = "b0und";
        let good = body(boundary, &[("a", b"data")]);
        // Cut anywhere before the close delimiter: an error, never a short part.
        let close = good.len() - b"--b0und--\r\nepilogue".len();
        for cut in [0, 10, 40, close - 3] {
            assert!(
                read_all(&good[..cut], boundary, 5).await.is_err(),
                "cut {cut}"
            );
        }
        // Garbage after the delimiter instead of CRLF.
        let bad = b"--b0und junk\r\n\r\ndata\r\n--b0und--".to_vec();
        assert!(read_all(&bad, boundary, 4).await.is_err());
        // Over the limit.
        let frames = vec![Ok::<_, std::io::Error>(Bytes::from(good.clone()))];
        let mut r = Reader::new(futures::stream::iter(frames), boundary, 10);
        assert!(matches!(r.next_part().await, Err(Error::TooLarge(10))));
    }

    #[test]
    fn boundary_and_filename_parameters() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "multipart/form-data; boundary=\"a b\"".parse().unwrap(),
        );
        assert_eq!(boundary(&h).unwrap(), "a b");
        h.insert("content-type", "text/plain".parse().unwrap());
        assert!(boundary(&h).is_err());
        assert!(boundary(&HeaderMap::new()).is_err());
        assert_eq!(
            disposition_param(
                r#"form-data; name="file"; filename="x\"y;z.txt""#,
                "filename"
            ),
            Some("x\"y;z.txt".into())
        );
        assert_eq!(
            disposition_param("form-data; filename=plain.bin", "filename"),
            Some("plain.bin".into())
        );
        assert_eq!(
            disposition_param("form-data; name=\"file\"", "filename"),
            None
        );
    }
}
