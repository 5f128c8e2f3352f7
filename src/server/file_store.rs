//! A [`TransactionStore`] in a directory, shared by several server processes on one host
//! (e.g. behind a load balancer): one file per transaction, named by the hex transactionID,
//! holding the expiry (8 bytes, seconds since the epoch, big-endian) and the record. Every
//! operation holds an exclusive `flock` on `DIR/.lock`, which makes insert-if-absent and
//! compare-and-swap atomic across processes; files are replaced by write-then-rename, so a
//! crash never leaves a half-written record.

use super::store::TransactionStore;
use crate::error::{Error, ErrorCode, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Transactions as files in a directory; see the [module documentation](self).
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

/// An exclusive lock on the store, released when dropped.
struct Locked(File);

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: the descriptor belongs to the open file held by `self`.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorCode::Internal,
        format!("transaction store: {what} {}: {e}", path.display()),
    )
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl FileStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        Ok(FileStore { dir })
    }

    fn lock(&self) -> Result<Locked> {
        let path = self.dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        // SAFETY: a valid open descriptor; flock blocks until the lock is ours.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io("lock", &path, std::io::Error::last_os_error()));
        }
        Ok(Locked(f))
    }

    fn path(&self, id: &[u8]) -> PathBuf {
        let name = crate::message::hex(id);
        self.dir.join(if name.is_empty() {
            "-".to_owned()
        } else {
            name
        })
    }

    /// The live record at `path`, if any (an expired one is deleted).
    fn read_live(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", path, e)),
        };
        let Some((expiry, record)) = data.split_first_chunk::<8>() else {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("transaction store: {} is truncated", path.display()),
            ));
        };
        if u64::from_be_bytes(*expiry) <= secs(SystemTime::now()) {
            let _ = std::fs::remove_file(path);
            return Ok(None);
        }
        Ok(Some(record.to_vec()))
    }

    fn write(&self, path: &Path, record: &[u8], expires: SystemTime) -> Result<()> {
        // Round the expiry up to whole seconds so a record never expires early.
        let expires = secs(expires + Duration::from_millis(999));
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(&expires.to_be_bytes())
            .and_then(|_| f.write_all(record))
            .map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("rename", path, e))
    }

    /// Delete every expired record; returns how many were removed.
    pub fn sweep(&self) -> Result<usize> {
        let _l = self.lock()?;
        let mut removed = 0;
        for e in std::fs::read_dir(&self.dir)
            .map_err(|e| io("list", &self.dir, e))?
            .flatten()
        {
            let p = e.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if self.read_live(&p).ok().flatten().is_none() && !p.exists() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl TransactionStore for FileStore {
    fn insert(&self, id: &[u8], record: &[u8], expires: SystemTime) -> Result<bool> {
        let _l = self.lock()?;
        let p = self.path(id);
        if self.read_live(&p)?.is_some() {
            return Ok(false);
        }
        self.write(&p, record, expires)?;
        Ok(true)
    }

    fn get(&self, id: &[u8]) -> Result<Option<Vec<u8>>> {
        let _l = self.lock()?;
        self.read_live(&self.path(id))
    }

    fn update(
        &self,
        id: &[u8],
        expected: &[u8],
        record: &[u8],
        expires: SystemTime,
    ) -> Result<bool> {
        let _l = self.lock()?;
        let p = self.path(id);
        match self.read_live(&p)? {
            Some(cur) if cur == expected => {
                self.write(&p, record, expires)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn remove(&self, id: &[u8]) -> Result<()> {
        let _l = self.lock()?;
        let p = self.path(id);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &p, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> FileStore {
        let d = std::env::temp_dir().join(format!(
            "cmpkit-filestore-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        FileStore::open(d).unwrap()
    }

    #[test]
    fn insert_is_if_absent_and_update_is_compare_and_swap() {
        let s = store();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(s.insert(b"tid", b"one", later).unwrap());
        assert!(
            !s.insert(b"tid", b"two", later).unwrap(),
            "a live record is not replaced"
        );
        assert!(!s.update(b"tid", b"stale", b"three", later).unwrap());
        assert!(s.update(b"tid", b"one", b"three", later).unwrap());
        assert_eq!(s.get(b"tid").unwrap().as_deref(), Some(&b"three"[..]));
        s.remove(b"tid").unwrap();
        assert_eq!(s.get(b"tid").unwrap(), None);
        s.remove(b"tid").unwrap();
    }

    #[test]
    fn expired_records_are_absent_and_swept() {
        let s = store();
        assert!(s
            .insert(b"old", b"x", SystemTime::now() - Duration::from_secs(5))
            .unwrap());
        assert_eq!(s.get(b"old").unwrap(), None);
        assert!(
            s.insert(b"old", b"y", SystemTime::now() + Duration::from_secs(60))
                .unwrap(),
            "an expired record does not block"
        );
        assert!(s
            .insert(b"gone", b"z", SystemTime::now() - Duration::from_secs(5))
            .unwrap());
        assert_eq!(s.sweep().unwrap(), 1);
        assert_eq!(s.get(b"old").unwrap().as_deref(), Some(&b"y"[..]));
    }

    #[test]
    fn two_stores_on_one_directory_see_each_others_records() {
        let a = store();
        let b = FileStore::open(a.dir.clone()).unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(a.insert(b"shared", b"1", later).unwrap());
        assert!(!b.insert(b"shared", b"2", later).unwrap());
        assert!(b.update(b"shared", b"1", b"2", later).unwrap());
        assert_eq!(a.get(b"shared").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn concurrent_inserts_of_one_id_have_exactly_one_winner() {
        let s = std::sync::Arc::new(store());
        let later = SystemTime::now() + Duration::from_secs(60);
        let wins: usize = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || s.insert(b"race", &[i], later).unwrap() as usize)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(wins, 1);
    }
}
