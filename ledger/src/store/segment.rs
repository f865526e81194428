//! Event bodies outside sled: one append-only file per app, `<dir>/events/<app>.events`.
//! Each event is one record, `length(4, big-endian) ‖ the event's encoded bytes`
//! ([`crate::codec`]); the app's index file ([`super::index`]) holds each event's
//! [`Locator`].
//!
//! Order of a write: the records are written, then their index records, both fdatasync'd
//! (the write is acknowledged from here on), then sled's batch that moves the head past
//! them (reads see events up to the head), then the file's end moves past them. So
//! nothing counted by the head rests on bytes a crash or a power loss could take. After a
//! crash the open rolls sled's head forward over the whole writes the files hold past it
//! ([`super::sled_store`]); bytes past the rolled-forward head event's record belong to a
//! write never acknowledged (unfinished, or torn: [`unwritten_sector`]):
//! they are cut off, kept aside, if the head event's record reads back as that event
//! ([`Segment::cut_tail`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{io_error, StoreError, StoreResult};

/// Bytes a sequential reader fetches at once, at most; its first read fetches
/// [`FIRST_WINDOW`], and each further one twice the last, so that a scan of a few events
/// reads a few kilobytes and a long one reads a megabyte at a time.
const WINDOW: usize = 1 << 20;
/// A reader's first read.
const FIRST_WINDOW: usize = 16 << 10;

/// Where an event's record is: its offset in the app's file and the event's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locator {
    /// Offset of the record (its length prefix).
    pub offset: u64,
    /// Length of the event's bytes, after the 4-byte prefix.
    pub len: u32,
}

impl Locator {
    /// The offset just past the record (saturating: a corrupt locator must not panic).
    pub fn end(self) -> u64 {
        self.offset.saturating_add(4 + u64::from(self.len))
    }
}

/// The directory of the segment files in a store directory.
pub fn dir(store_dir: &Path) -> PathBuf {
    store_dir.join("events")
}

/// The segment file of an app.
pub fn path(store_dir: &Path, app: &str) -> PathBuf {
    dir(store_dir).join(format!("{app}.events"))
}

/// Whether an app name can name a file: the ledger's app names always can (lowercase
/// letters, digits, `_` and `-`); a name read from a damaged store might not.
pub fn is_file_stem(app: &str) -> bool {
    !app.is_empty()
        && app.len() <= 64
        && app
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// One app's segment file.
#[derive(Debug)]
pub struct Segment {
    file: File,
    path: PathBuf,
    /// The end of the records sled refers to: where the next write goes.
    end: AtomicU64,
    /// Held by a writer from its records' write until its sled batch is applied.
    writing: Mutex<()>,
}

impl Segment {
    /// Opens (creating if needed) the file, whose records sled refers to up to `end`. A
    /// shorter file is left as it is (reads of what is missing report it); a longer one
    /// keeps its tail until [`Segment::cut_tail`]. `read_only`: never creates or syncs.
    pub fn open(path: PathBuf, end: u64, read_only: bool) -> StoreResult<Self> {
        let file = open_file(&path, read_only)?;
        Ok(Segment {
            file,
            path,
            end: AtomicU64::new(end),
            writing: Mutex::new(()),
        })
    }

    /// Cuts the file to its end: what follows the last record the index refers to was
    /// never acknowledged. Call only when the index is consistent with its head.
    pub fn cut_tail(&self, tail: Tail) -> StoreResult<()> {
        cut_file(
            &self.file,
            &self.path,
            self.end.load(Ordering::Acquire),
            tail,
        )
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the write lock: one batch at a time per app.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `bodies` as records after the current end, not yet durable
    /// ([`Segment::sync`]); the end moves past them at [`Segment::publish`]. Call with the
    /// write lock held.
    pub fn append<'a>(
        &self,
        bodies: impl Iterator<Item = &'a [u8]>,
    ) -> StoreResult<(Vec<Locator>, u64)> {
        let start = self.end.load(Ordering::Acquire);
        let mut buf = Vec::new();
        let mut locators = Vec::new();
        for body in bodies {
            let len = u32::try_from(body.len()).map_err(|_| {
                StoreError::Backend(format!("an event of {} bytes is too large", body.len()))
            })?;
            locators.push(Locator {
                offset: start + buf.len() as u64,
                len,
            });
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(body);
        }
        self.file.write_all_at(&buf, start).map_err(io_error)?;
        Ok((locators, start + buf.len() as u64))
    }

    /// Makes what was written durable (fdatasync).
    pub fn sync(&self) -> StoreResult<()> {
        self.file.sync_data().map_err(io_error)
    }

    /// Moves the end (where the next write goes) past records sled's batch now points at.
    pub fn publish(&self, end: u64) {
        self.end.store(end, Ordering::Release);
    }

    /// The bytes of the event at `at` (event `seq`, for messages).
    pub fn read(&self, seq: u64, at: Locator) -> StoreResult<Vec<u8>> {
        if !self.holds(at.offset, 4 + at.len as usize)? {
            return Err(missing(&self.path, seq, at));
        }
        let mut buf = vec![0u8; 4 + at.len as usize];
        self.read_exact(seq, at, &mut buf)?;
        check_prefix(&self.path, seq, at, &buf)?;
        buf.drain(..4);
        Ok(buf)
    }

    /// The whole record `at` points to, its length prefix included, as the file holds
    /// it, unchecked; `None` if the file ends first. For the roll forward, which judges
    /// a record past sled's head itself.
    pub fn record_bytes(&self, at: Locator) -> StoreResult<Option<Vec<u8>>> {
        let len = 4 + at.len as usize;
        if !self.holds(at.offset, len)? {
            return Ok(None);
        }
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, at.offset) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// Where a blank sector's share is among bytes `from..to` of the file
    /// ([`unwritten_sector`], with its `head` and `tail`).
    pub fn unwritten_sector(
        &self,
        from: u64,
        to: u64,
        head: usize,
        tail: usize,
    ) -> StoreResult<Option<u64>> {
        Ok(unwritten_sector_in(&self.file, from, to, head, tail)?)
    }

    /// The 4-byte length prefix of a record at `offset`, as the file holds it; `None` if
    /// the file ends first.
    pub fn prefix_at(&self, offset: u64) -> StoreResult<Option<u32>> {
        let mut b = [0u8; 4];
        match self.file.read_exact_at(&mut b, offset) {
            Ok(()) => Ok(Some(u32::from_be_bytes(b))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(StoreError::Io(e)),
        }
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> StoreResult<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether the file may hold `len` bytes at `offset`, checked before a buffer that
    /// large is made: a corrupt length must not ask for gigabytes. Up to [`WINDOW`] bytes
    /// are taken on trust (a read reports a file that ends first) and cost no system call.
    fn holds(&self, offset: u64, len: usize) -> std::io::Result<bool> {
        let Some(end) = offset.checked_add(len as u64) else {
            return Ok(false);
        };
        Ok(len <= WINDOW || end <= self.file.metadata()?.len())
    }

    fn read_exact(&self, seq: u64, at: Locator, buf: &mut [u8]) -> StoreResult<()> {
        self.file.read_exact_at(buf, at.offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                missing(&self.path, seq, at)
            } else {
                StoreError::Io(e)
            }
        })
    }

    /// A sequential reader: records read in windows of [`WINDOW`] bytes.
    pub fn reader(self: &Arc<Self>) -> Reader {
        Reader {
            segment: self.clone(),
            start: 0,
            filled: 0,
            next_read: FIRST_WINDOW,
            window: SPARE_WINDOW.with(|w| w.take()),
        }
    }

    /// Overwrites the event at `at` with `bytes` of its length: for tamper tests only.
    pub fn overwrite(&self, at: Locator, bytes: &[u8]) -> StoreResult<()> {
        let _w = self.lock();
        if bytes.len() != at.len as usize {
            return Err(StoreError::Backend(format!(
                "{} bytes cannot overwrite an event of {}",
                bytes.len(),
                at.len
            )));
        }
        self.file.write_all_at(bytes, at.offset + 4)?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// Opens one of the store's own files for reading and writing, creating it and its folder
/// if needed (read-only: opens it as it is). The file and its name must survive a power
/// loss before anything points at it: they are synced at every open, so a crash between
/// creating and syncing it (or a failed sync) is made good by the next open, before any
/// write.
pub(super) fn open_file(path: &Path, read_only: bool) -> StoreResult<File> {
    if read_only {
        return Ok(File::open(path)?);
    }
    let parent = path
        .parent()
        .ok_or_else(|| StoreError::Backend(format!("{} has no folder", path.display())))?;
    std::fs::create_dir_all(parent)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    file.sync_all().map_err(io_error)?;
    File::open(parent)?.sync_all().map_err(io_error)?;
    if let Some(store_dir) = parent.parent() {
        File::open(store_dir)?.sync_all().map_err(io_error)?;
    }
    Ok(file)
}

/// What becomes of the bytes a cut takes off a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Copied first into `<file>.cut-at-<offset>` beside it (`-2`, `-3`… if that name is
    /// taken), fsynced: what an open
    /// cuts after a crash (a write never acknowledged, or damaged) stays for inspection.
    KeepAside,
    /// Dropped: the records of a write that just failed, its requests answered "not
    /// recorded" (a full disk could not hold a copy anyway).
    Drop,
}

/// Cuts one of the store's own files to `end` bytes if it is longer (what follows was
/// written by a write never acknowledged), and syncs it.
pub(super) fn cut_file(file: &File, path: &Path, end: u64, tail: Tail) -> StoreResult<()> {
    let len = file.metadata()?.len();
    if len > end {
        let aside = match tail {
            Tail::KeepAside => Some(keep_aside(file, path, end)?),
            Tail::Drop => None,
        };
        tracing::warn!(
            file = %path.display(),
            from = len,
            to = end,
            kept_in = %aside.as_ref().map_or("(not kept)".into(), |p| p.display().to_string()),
            "cutting records past the head (a write never acknowledged)"
        );
        file.set_len(end).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
    }
    Ok(())
}

/// Copies the bytes of `file` from `from` on into a new file beside it, made durable.
fn keep_aside(file: &File, path: &Path, from: u64) -> StoreResult<PathBuf> {
    use std::io::{Seek, SeekFrom};
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut n, mut aside) = (1, path.with_file_name(format!("{name}.cut-at-{from}")));
    while aside.exists() {
        n += 1;
        aside = path.with_file_name(format!("{name}.cut-at-{from}-{n}"));
    }
    let mut src = file.try_clone()?;
    src.seek(SeekFrom::Start(from))?;
    let mut dest = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&aside)?;
    let copied = std::io::copy(&mut src, &mut dest)
        .and_then(|_| dest.sync_all())
        .map_err(io_error);
    if let Err(e) = copied {
        // A full disk, say: no partial copy is left to be taken for the tail, and the
        // file is not cut (the open fails, and the next one tries again).
        let _ = std::fs::remove_file(&aside);
        return Err(e);
    }
    if let Some(parent) = aside.parent() {
        File::open(parent)?.sync_all().map_err(io_error)?;
    }
    Ok(aside)
}

thread_local! {
    /// A window a finished reader left on this thread: a scan of a million events makes
    /// over a hundred readers, and fresh megabytes cost the kernel's zeroing each time.
    /// One per thread that scanned (verification's readers; the server's blocking pool,
    /// whose idle threads exit after seconds).
    static SPARE_WINDOW: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Reads records in order through a window of the file, for scans.
pub struct Reader {
    segment: Arc<Segment>,
    /// File offset of `window[0]`.
    start: u64,
    /// Bytes of `window` read from the file.
    filled: usize,
    /// How much the next read fetches.
    next_read: usize,
    window: Vec<u8>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let window = std::mem::take(&mut self.window);
        SPARE_WINDOW.with(|w| w.set(window));
    }
}

impl Reader {
    /// `len` bytes of the file at `offset`: from the window if it holds them, else after
    /// reading the window from `offset` on. `None` if the file ends first.
    fn bytes(&mut self, offset: u64, len: usize) -> std::io::Result<Option<&[u8]>> {
        let Some(wanted_end) = offset.checked_add(len as u64) else {
            return Ok(None);
        };
        let inside = offset >= self.start && wanted_end <= self.start + self.filled as u64;
        if !inside {
            if !self.segment.holds(offset, len)? {
                return Ok(None);
            }
            // Bytes past the end are not yet (or never) indexed: a failed write's leftovers
            // that a later write may replace. Only the record asked for (indexed, so final)
            // and what lies before the end may stay in the window.
            let safe_end = self.segment.end.load(Ordering::Acquire);
            let size = len.max(self.next_read);
            self.next_read = (self.next_read * 2).min(WINDOW);
            if self.window.len() < size {
                self.window.resize(size, 0);
            }
            self.start = offset;
            self.filled = 0;
            while self.filled < size {
                match self.segment.file.read_at(
                    &mut self.window[self.filled..size],
                    offset + self.filled as u64,
                ) {
                    Ok(0) => break,
                    Ok(n) => self.filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.filled = 0;
                        return Err(e);
                    }
                }
            }
            let safe = usize::try_from(safe_end.saturating_sub(offset)).unwrap_or(usize::MAX);
            self.filled = self.filled.min(safe.max(len));
        }
        let from = (offset - self.start) as usize;
        Ok(self.window[..self.filled].get(from..from + len))
    }

    /// The bytes of the event at `at` (event `seq`).
    pub fn read(&mut self, seq: u64, at: Locator) -> StoreResult<&[u8]> {
        let segment = Arc::clone(&self.segment);
        let record = self
            .bytes(at.offset, 4 + at.len as usize)?
            .ok_or_else(|| missing(&segment.path, seq, at))?;
        check_prefix(&segment.path, seq, at, record)?;
        Ok(&record[4..])
    }
}

/// The sector size a torn write is judged by: a disk writes whole sectors, and the
/// file system leaves a sector never written as zeros.
const SECTOR: u64 = 512;

/// The shortest stretch of zeros taken for blank space inside a range: longer than any an
/// encoded event or index record holds (their hashes and signature are random, a payload
/// is JSON text without zero bytes; the first event's previous hash, 32 zero bytes, is
/// the longest).
const BLANK: usize = 64;

/// Where some sector's share of `bytes` (stored from file offset `offset` on) is all
/// zeros, if one is: the mark of a write a power loss tore, whose other sectors never
/// reached the disk. A share inside the range counts from [`BLANK`] bytes; the share at
/// its start from `head` bytes and the one at its end from `tail` (at most `BLANK`, at
/// least 1): where a write begins or ends inside a sector, the caller knows how many
/// zero bytes its first or last bytes may hold. Bytes damaged after they were wholly
/// written bear no such mark (except damage that writes zeros: a caller judges a range
/// only once something in it has failed its checks).
pub fn unwritten_sector(offset: u64, bytes: &[u8], head: usize, tail: usize) -> Option<u64> {
    let mut start = 0usize;
    while start < bytes.len() {
        let at = offset.saturating_add(start as u64);
        let to_boundary = (SECTOR - at % SECTOR) as usize;
        let end = bytes.len().min(start.saturating_add(to_boundary));
        let least = match (start == 0, end == bytes.len()) {
            (true, true) => head.min(tail),
            (true, false) => head,
            (false, true) => tail,
            (false, false) => BLANK,
        };
        if end - start >= least.clamp(1, BLANK) && bytes[start..end].iter().all(|&b| b == 0) {
            return Some(at);
        }
        start = end;
    }
    None
}

/// [`unwritten_sector`] over bytes `from..to` of `file` (as far as it holds them), read
/// a window at a time.
pub fn unwritten_sector_in(
    file: &File,
    from: u64,
    to: u64,
    head: usize,
    tail: usize,
) -> std::io::Result<Option<u64>> {
    let to = to.min(file.metadata()?.len());
    let mut buf = Vec::new();
    let mut at = from;
    while at < to {
        // Windows end on multiples of WINDOW, so every sector's share is judged whole.
        let end = to.min((at / WINDOW as u64 + 1) * WINDOW as u64);
        buf.resize((end - at) as usize, 0);
        file.read_exact_at(&mut buf, at)?;
        let head = if at == from { head } else { BLANK };
        let tail = if end == to { tail } else { BLANK };
        if let Some(blank) = unwritten_sector(at, &buf, head, tail) {
            return Ok(Some(blank));
        }
        at = end;
    }
    Ok(None)
}

fn missing(path: &Path, seq: u64, at: Locator) -> StoreError {
    StoreError::Corrupt(format!(
        "event {seq}: its record ({} bytes at offset {}) is missing from {}",
        4 + u64::from(at.len),
        at.offset,
        path.display()
    ))
}

fn check_prefix(path: &Path, seq: u64, at: Locator, record: &[u8]) -> StoreResult<()> {
    let prefix = record
        .get(..4)
        .and_then(|p| <[u8; 4]>::try_from(p).ok())
        .map(u32::from_be_bytes);
    if prefix != Some(at.len) {
        return Err(StoreError::Corrupt(format!(
            "event {seq}: the record at offset {} of {} has length {:?}, the index says {}",
            at.offset,
            path.display(),
            prefix,
            at.len
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_sector_marks_a_torn_record_and_short_zero_runs_do_not() {
        let written: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8 + 1).collect();
        assert_eq!(unwritten_sector(100, &written, BLANK, BLANK), None);
        // Zeros shorter than BLANK (a length prefix's high bytes, a genesis hash).
        let mut short = written.clone();
        short[..2].fill(0);
        short[700..700 + BLANK - 1].fill(0);
        assert_eq!(unwritten_sector(510, &short, BLANK, BLANK), None);
        // A sector never written, whole or at the record's edge.
        let mut torn = written.clone();
        torn[412..924].fill(0);
        assert_eq!(unwritten_sector(100, &torn, BLANK, BLANK), Some(512));
        // From 100, the record's last BLANK bytes are the whole of its last sector's part.
        let mut edge = written.clone();
        edge[1500 - BLANK..].fill(0);
        assert_eq!(
            unwritten_sector(100, &edge, BLANK, BLANK),
            Some(100 + 1500 - BLANK as u64)
        );
        // Damage, however long, that leaves a nonzero byte in every sector's part.
        let mut unaligned = written.clone();
        unaligned[10..10 + 2 * BLANK].fill(0);
        assert_eq!(unwritten_sector(0, &unaligned, BLANK, BLANK), None);
        // Shares shorter than BLANK at either end of the range, judged by head and tail.
        let mut ends = written.clone();
        ends[..12].fill(0); // from 500: the range's first share is 12 bytes
        assert_eq!(unwritten_sector(500, &ends, BLANK, BLANK), None);
        assert_eq!(unwritten_sector(500, &ends, 13, BLANK), None);
        assert_eq!(unwritten_sector(500, &ends, 12, BLANK), Some(500));
        let mut tail = written;
        tail[1500 - 3..].fill(0); // from 1036 to 2536: the last share is 488 bytes
        assert_eq!(unwritten_sector(1036, &tail, BLANK, 2), None);
        let share = (1036 + 1500) % 512;
        tail[1500 - share..].fill(0);
        assert_eq!(
            unwritten_sector(1036, &tail, BLANK, 2),
            Some(1036 + 1500 - share as u64)
        );
        // Exactly at the thresholds: a first share of 5 zero bytes counts from head 5, not
        // from 6; a last share of 1 zero byte counts from tail 1, not from 2; a range in
        // one sector is both first and last share.
        let bytes = vec![0u8; 5];
        assert_eq!(unwritten_sector(507, &bytes, 5, BLANK), Some(507));
        assert_eq!(unwritten_sector(507, &bytes, 6, BLANK), None);
        let mut last = vec![9u8; 513];
        last[512] = 0;
        assert_eq!(unwritten_sector(0, &last, BLANK, 1), Some(512));
        assert_eq!(unwritten_sector(0, &last, BLANK, 2), None);
        assert_eq!(unwritten_sector(600, &[0u8; 3], 4, 3), Some(600));
        assert_eq!(unwritten_sector(600, &[0u8; 3], 4, 4), None);
    }

    #[test]
    fn records_read_back_through_growing_windows_in_any_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seg = Arc::new(Segment::open(path(dir.path(), "t"), 0, false).expect("open"));
        // Lengths around the first window, the doubling steps and past the largest one.
        let lens = [
            1,
            7,
            FIRST_WINDOW - 3,
            FIRST_WINDOW + 9,
            100,
            3 * FIRST_WINDOW,
            WINDOW + 17,
            5,
            0,
            2,
        ];
        let bodies: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let _w = seg.lock();
        let (at, end) = seg
            .append(bodies.iter().map(Vec::as_slice))
            .expect("append");
        seg.publish(end);
        assert_eq!(end, bodies.iter().map(|b| 4 + b.len() as u64).sum::<u64>());
        let mut reader = seg.reader();
        for (i, (b, a)) in bodies.iter().zip(&at).enumerate() {
            assert_eq!(reader.read(i as u64 + 1, *a).expect("read"), b.as_slice());
        }
        for i in [9usize, 0, 6, 3, 3, 8, 1] {
            assert_eq!(
                reader.read(i as u64 + 1, at[i]).expect("read"),
                bodies[i].as_slice()
            );
            assert_eq!(seg.read(i as u64 + 1, at[i]).expect("read"), bodies[i]);
        }
        // A locator past the file, or with a length the record does not have, is refused
        // without a large allocation or a panic.
        let past = Locator {
            offset: end,
            len: 10,
        };
        assert!(reader.read(99, past).is_err() && seg.read(99, past).is_err());
        let huge = Locator {
            offset: u64::MAX - 2,
            len: u32::MAX,
        };
        assert!(reader.read(99, huge).is_err() && seg.read(99, huge).is_err());
        let wrong = Locator {
            offset: at[1].offset,
            len: at[1].len + 1,
        };
        assert!(reader.read(2, wrong).is_err() && seg.read(2, wrong).is_err());
    }
}
