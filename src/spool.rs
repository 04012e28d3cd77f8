//! Attachment content received with a statement request, held until it is
//! stored. The parts of one request stay in memory while together they fit
//! in one buffer; beyond that they go to an anonymous temporary file through
//! that same buffer, so memory does not grow with the size of an attachment.
//! Signatures are the exception: they are read whole, like the statement
//! they sign, and are limited like it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Bytes of content held in memory per request, and the size of file writes.
    pub buffer_bytes: usize,
    /// Where the temporary files go (they have no name: the OS frees them
    /// when the request ends, even if the process dies).
    pub dir: PathBuf,
}

/// Received content of one attachment.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lower-case hex SHA-2, checked against the content.
    pub sha2: String,
    pub content_type: String,
    pub length: u64,
    content: Content,
}

#[derive(Debug, Clone)]
enum Content {
    Memory(Bytes),
    File { file: Arc<File>, offset: u64 },
}

impl Received {
    fn new(sha2: String, content_type: String, content: Bytes) -> Received {
        Received { sha2, content_type, length: content.len() as u64, content: Content::Memory(content) }
    }

    /// The content, when it is held in memory (signatures always are).
    pub fn in_memory(&self) -> Option<&Bytes> {
        match &self.content {
            Content::Memory(b) => Some(b),
            Content::File { .. } => None,
        }
    }

    /// `len` bytes of the content from `start`.
    pub async fn read(&self, start: u64, len: usize) -> io::Result<Bytes> {
        if start + len as u64 > self.length {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of an attachment"));
        }
        match &self.content {
            Content::Memory(b) => Ok(b.slice(start as usize..start as usize + len)),
            Content::File { file, offset } => {
                let (file, at) = (file.clone(), offset + start);
                blocking(move || {
                    let mut buf = vec![0; len];
                    file.read_exact_at(&mut buf, at)?;
                    Ok(Bytes::from(buf))
                })
                .await
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

/// The spool of one request. Parts are written one at a time:
/// `begin`, `write`…, `finish`.
pub struct Spool<'s> {
    settings: &'s SpoolSettings,
    /// Bytes of finished parts kept in memory (signatures not counted).
    memory_used: usize,
    file: Option<Arc<File>>,
    file_len: u64,
    part: Part,
}

#[derive(Default)]
struct Part {
    memory: BytesMut,
    pinned: bool,
    /// Where the part starts in the file, once it has gone there.
    file_start: Option<u64>,
    /// Bytes waiting to be written to the file.
    pending: Vec<u8>,
}

impl<'s> Spool<'s> {
    pub fn new(settings: &'s SpoolSettings) -> Spool<'s> {
        Spool { settings, memory_used: 0, file: None, file_len: 0, part: Part::default() }
    }

    /// Starts a part; a `pinned` one stays in memory whatever its size.
    pub fn begin(&mut self, pinned: bool) {
        self.part = Part { pinned, ..Part::default() };
    }

    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.part.file_start.is_none() {
            let fits = self.memory_used + self.part.memory.len() + data.len() <= self.settings.buffer_bytes;
            if self.part.pinned || fits {
                self.part.memory.extend_from_slice(data);
                return Ok(());
            }
            self.move_part_to_file().await?;
        }
        let buffer = self.settings.buffer_bytes.max(1);
        if self.part.pending.len() + data.len() > buffer {
            self.flush().await?;
        }
        self.part.pending.extend_from_slice(data);
        if self.part.pending.len() >= buffer {
            self.flush().await?;
        }
        Ok(())
    }

    /// Ends the part and returns its content.
    pub async fn finish(&mut self, sha2: String, content_type: String) -> io::Result<Received> {
        let Some(start) = self.part.file_start else {
            let memory = std::mem::take(&mut self.part.memory).freeze();
            if !self.part.pinned {
                self.memory_used += memory.len();
            }
            return Ok(Received::new(sha2, content_type, memory));
        };
        self.flush().await?;
        let file = self.file.clone().expect("a part in the file has a file");
        Ok(Received {
            sha2,
            content_type,
            length: self.file_len - start,
            content: Content::File { file, offset: start },
        })
    }

    /// Moves the current part from memory to the file.
    async fn move_part_to_file(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let dir = self.settings.dir.clone();
            self.file = Some(Arc::new(blocking(move || tempfile::tempfile_in(dir)).await?));
        }
        self.part.file_start = Some(self.file_len);
        self.part.pending = Vec::with_capacity(self.settings.buffer_bytes.max(1));
        let memory = std::mem::take(&mut self.part.memory);
        self.part.pending.extend_from_slice(&memory);
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.part.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.part.pending);
        let file = self.file.clone().expect("flushing needs the file");
        let at = self.file_len;
        pending = blocking(move || file.write_all_at(&pending, at).map(|()| pending)).await?;
        self.file_len += pending.len() as u64;
        pending.clear();
        self.part.pending = pending;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(buffer_bytes: usize) -> SpoolSettings {
        SpoolSettings { buffer_bytes, dir: std::env::temp_dir() }
    }

    async fn part(spool: &mut Spool<'_>, pinned: bool, content: &[u8], piece: usize) -> Received {
        spool.begin(pinned);
        for chunk in content.chunks(piece) {
            spool.write(chunk).await.unwrap();
        }
        spool.finish("h".into(), "text/plain".into()).await.unwrap()
    }

    async fn all(r: &Received) -> Vec<u8> {
        r.read(0, r.length as usize).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn parts_beyond_the_buffer_go_to_the_file() {
        let s = settings(16);
        let mut spool = Spool::new(&s);
        let small = part(&mut spool, false, b"0123456789", 3).await;
        let big: Vec<u8> = (0..100u8).collect();
        let large = part(&mut spool, false, &big, 7).await;
        let second_small = part(&mut spool, false, b"abcdefghij", 4).await;
        let signature = part(&mut spool, true, &big, 5).await;
        assert!(small.in_memory().is_some());
        assert!(large.in_memory().is_none());
        // The first part used 10 of 16 bytes: the next 10 no longer fit.
        assert!(second_small.in_memory().is_none());
        assert!(signature.in_memory().is_some());
        assert_eq!(all(&small).await, b"0123456789");
        assert_eq!(all(&large).await, big);
        assert_eq!(all(&second_small).await, b"abcdefghij");
        assert_eq!(all(&signature).await, big);
        assert_eq!(large.read(95, 5).await.unwrap().as_ref(), &big[95..]);
        assert!(large.read(96, 5).await.is_err());
    }
}
