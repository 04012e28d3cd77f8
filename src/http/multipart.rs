//! `multipart/mixed` statement requests and responses (xAPI 1.0.3 Data
//! 2.4.11): the first part holds the statements as JSON, each further part
//! one attachment's content, identified by its `X-Experience-API-Hash`.
//!
//! Requests are read as they arrive: `MultipartReader` hands out a part's
//! headers, then its content in pieces no larger than what the network
//! delivered, keeping back only enough bytes to recognise a boundary split
//! across two pieces (RFC 2046 §5.1.1; preamble and epilogue are ignored).

use std::fmt::Display;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use memchr::memmem;

use crate::error::LrsError;

/// Longest preamble, and longest header block of a part.
const MAX_HEAD_BYTES: usize = 16 * 1024;

fn bad(message: impl Into<String>) -> LrsError {
    LrsError::invalid("body", "multipart", message)
}

/// The `boundary` parameter of a `multipart/mixed` Content-Type.
fn boundary(content_type: &str) -> Result<String, LrsError> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(|| bad("Content-Type multipart/mixed needs a boundary parameter"))
}

/// The header lines of one part.
#[derive(Debug)]
pub struct PartHead {
    headers: Vec<(String, String)>,
}

impl PartHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The media type, without parameters.
    pub fn media_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("").split(';').next().unwrap_or("").trim()
    }

    fn parse(head: &[u8]) -> Result<PartHead, LrsError> {
        let head = std::str::from_utf8(head).map_err(|_| bad("part headers must be UTF-8"))?;
        let mut headers = Vec::new();
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| bad(format!("malformed part header '{line}'")))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(PartHead { headers })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    Body,
    AfterDelimiter,
    Done,
}

/// Reads a `multipart/mixed` body from a stream of byte chunks.
pub struct MultipartReader<S> {
    stream: S,
    buf: BytesMut,
    eof: bool,
    /// `CRLF--boundary`: what ends every part.
    delimiter: Vec<u8>,
    state: State,
}

impl<S, E> MultipartReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    pub fn new(content_type: &str, stream: S) -> Result<MultipartReader<S>, LrsError> {
        let delimiter = format!("\r\n--{}", boundary(content_type)?).into_bytes();
        Ok(MultipartReader { stream, buf: BytesMut::new(), eof: false, delimiter, state: State::Preamble })
    }

    /// Appends the next chunk of the body; false at its end.
    async fn fill(&mut self) -> Result<bool, LrsError> {
        if self.eof {
            return Ok(false);
        }
        match self.stream.next().await {
            Some(Ok(chunk)) => {
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Some(Err(e)) => Err(bad(format!("reading the request body failed: {e}"))),
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// Buffers at least `n` bytes; false if the body ends first.
    async fn want(&mut self, n: usize) -> Result<bool, LrsError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Where `pattern` starts in the buffer, looking no further than `max` bytes.
    async fn find(&mut self, pattern: &[u8], max: usize, too_long: &str) -> Result<Option<usize>, LrsError> {
        loop {
            if let Some(p) = memmem::find(&self.buf, pattern) {
                return Ok(Some(p));
            }
            if self.buf.len() > max {
                return Err(bad(too_long));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    fn unterminated() -> LrsError {
        bad("the multipart body does not end with its closing boundary")
    }

    /// The next part's headers (its content is then read with
    /// `next_body_chunk`), or `None` after the closing boundary.
    pub async fn next_part(&mut self) -> Result<Option<PartHead>, LrsError> {
        match self.state {
            State::Preamble => self.skip_preamble().await?,
            State::Body => while self.next_body_chunk().await?.is_some() {},
            State::AfterDelimiter => {}
            State::Done => return Ok(None),
        }
        if !self.want(2).await? {
            return Err(Self::unterminated());
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            return Ok(None);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let line_end = self
            .find(b"\r\n", MAX_HEAD_BYTES, "a boundary line is too long")
            .await?
            .ok_or_else(|| bad("a boundary line is not terminated"))?;
        if !self.buf[..line_end].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err(bad("unexpected text after a boundary"));
        }
        self.buf.advance(line_end + 2);
        if !self.want(2).await? {
            return Err(Self::unterminated());
        }
        let head = if self.buf.starts_with(b"\r\n") {
            self.buf.advance(2);
            PartHead { headers: Vec::new() }
        } else {
            let end = self
                .find(b"\r\n\r\n", MAX_HEAD_BYTES, "the headers of a part are too long")
                .await?
                .ok_or_else(|| bad("a part has no blank line after its headers"))?;
            let head = PartHead::parse(&self.buf[..end])?;
            self.buf.advance(end + 4);
            head
        };
        self.state = State::Body;
        Ok(Some(head))
    }

    async fn skip_preamble(&mut self) -> Result<(), LrsError> {
        let first = self.delimiter.len() - 2;
        if self.want(first).await? && self.buf[..first] == self.delimiter[2..] {
            self.buf.advance(first);
        } else {
            let delimiter = self.delimiter.clone();
            let at = self
                .find(&delimiter, MAX_HEAD_BYTES, "no part starts with the boundary")
                .await?
                .ok_or_else(|| bad("no part starts with the boundary"))?;
            self.buf.advance(at + delimiter.len());
        }
        self.state = State::AfterDelimiter;
        Ok(())
    }

    /// The next piece of the current part's content, or `None` at its end.
    pub async fn next_body_chunk(&mut self) -> Result<Option<Bytes>, LrsError> {
        if self.state != State::Body {
            return Ok(None);
        }
        loop {
            if let Some(at) = memmem::find(&self.buf, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(self.buf.split_to(at).freeze()));
                }
                self.buf.advance(self.delimiter.len());
                self.state = State::AfterDelimiter;
                return Ok(None);
            }
            // The delimiter may begin in the last bytes; hold those back.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe).freeze()));
            }
            if !self.fill().await? {
                return Err(Self::unterminated());
            }
        }
    }

    /// The current part's content, whole: at most `limit` bytes (413 beyond).
    pub async fn read_body(&mut self, limit: usize, what: &str) -> Result<Bytes, LrsError> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next_body_chunk().await? {
            if out.len() + chunk.len() > limit {
                return Err(LrsError::PayloadTooLarge(format!("{what} is larger than {limit} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}

/// The head of a response's first part, the statements.
pub fn statements_head(boundary: &str) -> String {
    format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n")
}

/// The head of a response part holding attachment content.
pub fn attachment_head(boundary: &str, content_type: &str, sha2: &str) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {sha2}\r\n\r\n"
    )
}

pub fn closing(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    const CT: &str = "multipart/mixed; boundary=abc";

    /// The parts (headers, content) of `text`, delivered `piece` bytes at a time.
    async fn parse(ct: &str, text: &str, piece: usize) -> Result<Vec<(PartHead, Vec<u8>)>, LrsError> {
        let body = text.replace('\n', "\r\n").into_bytes();
        let chunks: Vec<Result<Bytes, Infallible>> =
            body.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let mut reader = MultipartReader::new(ct, futures_util::stream::iter(chunks))?;
        let mut parts = Vec::new();
        while let Some(head) = reader.next_part().await? {
            let mut content = Vec::new();
            while let Some(chunk) = reader.next_body_chunk().await? {
                content.extend_from_slice(&chunk);
            }
            parts.push((head, content));
        }
        Ok(parts)
    }

    #[tokio::test]
    async fn parts_are_found_however_the_body_is_split() {
        let text = "preamble\n--abc\nContent-Type: application/json\n\n{\"a\":1}\n--abc  \nX-Experience-API-Hash: h\n\nhello\n--ab\n--abc\n\nno headers\n--abc--\nepilogue";
        for piece in [1, 2, 3, 5, 8, 13, 1000] {
            let parts = parse(CT, text, piece).await.unwrap();
            assert_eq!(parts.len(), 3, "piece {piece}");
            assert_eq!(parts[0].0.media_type(), "application/json");
            assert_eq!(parts[0].1, b"{\"a\":1}");
            assert_eq!(parts[1].0.header("x-experience-api-hash"), Some("h"));
            assert_eq!(parts[1].1, b"hello\r\n--ab", "piece {piece}");
            assert_eq!(parts[2].1, b"no headers");
        }
    }

    #[tokio::test]
    async fn refuses_malformed_bodies() {
        for (ct, text) in [
            ("multipart/mixed;", "--abc\nContent-Type: application/json\n\n{}\n--abc--\n"),
            (CT, "--abc\nContent-Type: application/json\n\n{}\n"),
            (CT, "--abc\nContent-Type: application/json\n\n{}\n--abcd\n"),
            (CT, "--abc x\nContent-Type: application/json\n\n{}\n--abc--\n"),
            (CT, "--abc\nContent-Type application/json\n\n{}\n--abc--\n"),
            (CT, "no boundary at all"),
        ] {
            for piece in [1, 4, 1000] {
                assert!(parse(ct, text, piece).await.is_err(), "{ct} {text} {piece}");
            }
        }
    }

    #[tokio::test]
    async fn read_body_keeps_to_its_limit() {
        let body: Vec<Result<Bytes, Infallible>> =
            vec![Ok(Bytes::from_static(b"--abc\r\n\r\n0123456789\r\n--abc--\r\n"))];
        let mut reader = MultipartReader::new(CT, futures_util::stream::iter(body)).unwrap();
        reader.next_part().await.unwrap().unwrap();
        let err = reader.read_body(5, "the statements part").await.unwrap_err();
        assert!(matches!(err, LrsError::PayloadTooLarge(_)), "{err:?}");
    }
}
