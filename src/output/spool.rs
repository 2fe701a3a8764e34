//! A render's output held until the render is known to be good: documents are added in any
//! order as they are rendered, kept in memory up to a bound and in an unnamed temporary file
//! beyond it (in memory after all when no temporary file can be made), and written out in
//! output order only once every object has been rendered and checked. Memory stays bounded
//! whatever the size of the fleet; an error leaves stdout empty.

use std::fs::File;
use std::io::{self, Write};

use crate::render::OrderKey;

/// Bytes of documents kept in memory before they go to the temporary file.
pub const DEFAULT_LIMIT: usize = 1 << 20;

/// Memory reserved up front for documents (more only for a single larger document).
const MAX_RESERVE: usize = 1 << 20;

/// Rendered documents, each under the key that orders it.
pub struct Spool {
    /// Documents not yet moved to `file`.
    memory: Vec<u8>,
    /// Bytes already in `file` (the offset of `memory`'s first byte).
    spilled: u64,
    file: Option<File>,
    limit: usize,
    entries: Vec<Entry>,
}

/// Where one document is: `[offset, offset + len)` of the file followed by memory.
struct Entry {
    kind: Box<str>,
    namespace: Box<str>,
    name: Box<str>,
    offset: u64,
    len: u32,
}

impl Entry {
    fn key(&self) -> OrderKey<'_> {
        OrderKey::new(&self.kind, &self.namespace, &self.name)
    }
}

impl Default for Spool {
    fn default() -> Self {
        Self::new(DEFAULT_LIMIT)
    }
}

impl Spool {
    /// A spool keeping at most about `limit` bytes of documents in memory.
    pub fn new(limit: usize) -> Self {
        Self {
            memory: Vec::new(),
            spilled: 0,
            file: None,
            limit,
            entries: Vec::new(),
        }
    }

    /// Adds the document of the object `key` names.
    pub fn push(&mut self, key: OrderKey<'_>, doc: &[u8]) -> io::Result<()> {
        if self.memory.len() + doc.len() > self.limit && !self.memory.is_empty() {
            if self.file.is_none() {
                match tempfile::tempfile() {
                    Ok(f) => self.file = Some(f),
                    // No writable temporary directory (an image without /tmp): memory it is.
                    Err(_) => self.limit = usize::MAX,
                }
            }
            if let Some(file) = &mut self.file {
                file.write_all(&self.memory)?;
                self.spilled += self.memory.len() as u64;
                self.memory.clear();
            }
        }
        if self.memory.capacity() == 0 {
            self.memory.reserve_exact(self.limit.min(MAX_RESERVE));
        }
        let len = u32::try_from(doc.len())
            .map_err(|_| io::Error::other("a rendered object is larger than 4 GiB"))?;
        self.entries.push(Entry {
            kind: key.kind().into(),
            namespace: key.namespace().into(),
            name: key.name().into(),
            offset: self.spilled + self.memory.len() as u64,
            len,
        });
        self.memory.extend_from_slice(doc);
        Ok(())
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no documents.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes written to the temporary file so far.
    pub fn spilled(&self) -> u64 {
        self.spilled
    }

    /// Writes every document to `out` in output order.
    pub fn write_to(mut self, out: &mut impl Write) -> io::Result<()> {
        self.entries.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
        let mut buf = Vec::new();
        for e in &self.entries {
            let len = e.len as usize;
            if e.offset >= self.spilled {
                let at = (e.offset - self.spilled) as usize;
                out.write_all(&self.memory[at..at + len])?;
            } else {
                let file = self
                    .file
                    .as_ref()
                    .expect("spilled documents are in the file");
                buf.resize(len, 0);
                read_at(file, &mut buf, e.offset)?;
                out.write_all(&buf)?;
            }
        }
        out.flush()
    }

    /// Every document in output order, as one string.
    pub fn into_string(self) -> io::Result<String> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        String::from_utf8(out).map_err(io::Error::other)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(spool: &mut Spool, n: usize) {
        // Added in an order unrelated to the output order.
        for i in (0..n).rev() {
            let kind = ["Service", "ConfigMap", "StatefulSet"][i % 3];
            let name = format!("obj-{:04}", (i * 7919) % n);
            let doc = format!("---\n{kind} {name}\n");
            spool
                .push(OrderKey::new(kind, "ns", &name), doc.as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn writes_in_output_order_from_memory_and_file_alike() {
        let mut in_memory = Spool::new(usize::MAX);
        fill(&mut in_memory, 500);
        let mut spilling = Spool::new(64);
        fill(&mut spilling, 500);
        assert_eq!(in_memory.spilled(), 0);
        assert!(spilling.spilled() > 0);
        let a = in_memory.into_string().unwrap();
        let b = spilling.into_string().unwrap();
        assert_eq!(a, b);
        let lines: Vec<&str> = a.lines().filter(|l| *l != "---").collect();
        assert_eq!(lines.len(), 500);
        assert!(lines[0].starts_with("ConfigMap "));
        assert!(lines[499].starts_with("StatefulSet "));
        let mut sorted = lines.clone();
        sorted.sort_by_key(|l| {
            let (kind, name) = l.split_once(' ').unwrap();
            (
                OrderKey::new(kind, "ns", name).rank(),
                kind.to_string(),
                name.to_string(),
            )
        });
        assert_eq!(lines, sorted);
    }
}
