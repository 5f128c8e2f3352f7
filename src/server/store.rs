//! The transaction store: what the server remembers between the messages of a transaction.
//!
//! A record is opaque bytes ([`TransactionRecord::to_bytes`]) keyed by the transactionID, so
//! several server processes can share one external store (a database, Redis, ...): everything
//! needed to continue a transaction is in the record, nothing is kept in process memory.
//!
//! Contract for implementations of [`TransactionStore`]:
//! - records whose expiry time has passed behave as absent in every method;
//! - [`insert`](TransactionStore::insert) is atomic "insert if absent": of two concurrent
//!   inserts for the same transactionID exactly one returns `Ok(true)`;
//! - [`update`](TransactionStore::update) is an atomic compare-and-swap on the whole record:
//!   it replaces the record only if the stored bytes still equal `expected`;
//! - errors (the store is unreachable) are reported as `Err`; the server then answers with
//!   failInfo `systemUnavail` and changes nothing else.

use crate::error::{fail, Error, ErrorCode, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// Storage of open (and recently finished) transactions, shared by the threads and possibly
/// the processes of a server. See the [module documentation](self) for the contract.
pub trait TransactionStore: Send + Sync {
    /// Store `record` under `id` unless a live record exists; `Ok(false)` if one does.
    fn insert(&self, id: &[u8], record: &[u8], expires: SystemTime) -> Result<bool>;
    /// The live record stored under `id`.
    fn get(&self, id: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Replace the live record under `id` by `record` if it still equals `expected`;
    /// `Ok(false)` if it is absent or differs.
    fn update(
        &self,
        id: &[u8],
        expected: &[u8],
        record: &[u8],
        expires: SystemTime,
    ) -> Result<bool>;
    /// Remove the record under `id` (no error if absent).
    fn remove(&self, id: &[u8]) -> Result<()>;
}

/// The default cap on the live records of a [`MemoryStore`].
pub const DEFAULT_STORE_CAPACITY: usize = 100_000;

/// Records by transactionID, with their expiry.
type Records = HashMap<Vec<u8>, (Vec<u8>, SystemTime)>;

/// An in-process [`TransactionStore`]: a `Mutex<HashMap>` whose expired records are swept on
/// insertion. Holds at most [`DEFAULT_STORE_CAPACITY`] live records by default.
#[derive(Debug)]
pub struct MemoryStore {
    map: Mutex<Records>,
    capacity: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_STORE_CAPACITY)
    }
}

impl MemoryStore {
    /// An empty store with the default capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding at most `capacity` live records (inserting more fails).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        // Every operation leaves the map consistent, so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The number of live (unexpired) records.
    pub fn len(&self) -> usize {
        let now = SystemTime::now();
        self.lock().values().filter(|(_, e)| *e > now).count()
    }

    /// Whether no live record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live records' transactionIDs (for diagnostics and tests).
    pub fn ids(&self) -> Vec<Vec<u8>> {
        let now = SystemTime::now();
        self.lock()
            .iter()
            .filter(|(_, (_, e))| *e > now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drop every expired record.
    pub fn sweep(&self) {
        let now = SystemTime::now();
        self.lock().retain(|_, (_, e)| *e > now);
    }
}

impl TransactionStore for MemoryStore {
    fn insert(&self, id: &[u8], record: &[u8], expires: SystemTime) -> Result<bool> {
        let now = SystemTime::now();
        let mut map = self.lock();
        if let Some((_, e)) = map.get(id) {
            if *e > now {
                return Ok(false);
            }
        }
        if map.len() >= self.capacity {
            map.retain(|_, (_, e)| *e > now);
            if map.len() >= self.capacity {
                return fail(
                    ErrorCode::Internal,
                    format!("transaction store is full ({} records)", self.capacity),
                );
            }
        }
        map.insert(id.to_vec(), (record.to_vec(), expires));
        Ok(true)
    }

    fn get(&self, id: &[u8]) -> Result<Option<Vec<u8>>> {
        let now = SystemTime::now();
        Ok(self
            .lock()
            .get(id)
            .filter(|(_, e)| *e > now)
            .map(|(r, _)| r.clone()))
    }

    fn update(
        &self,
        id: &[u8],
        expected: &[u8],
        record: &[u8],
        expires: SystemTime,
    ) -> Result<bool> {
        let now = SystemTime::now();
        let mut map = self.lock();
        match map.get_mut(id) {
            Some((r, e)) if *e > now && r.as_slice() == expected => {
                *r = record.to_vec();
                *e = expires;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn remove(&self, id: &[u8]) -> Result<()> {
        self.lock().remove(id);
        Ok(())
    }
}

/// Where a stored transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordState {
    /// A request is being processed (the transactionID is reserved).
    InProgress = 0,
    /// A certificate was issued; certConf is awaited.
    AwaitingConfirm = 1,
    /// The handler answered "waiting"; pollReq is awaited.
    Waiting = 2,
    /// The transaction ended successfully; kept until expiry so the ID is not reused.
    Finished = 3,
}

impl RecordState {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => RecordState::InProgress,
            1 => RecordState::AwaitingConfirm,
            2 => RecordState::Waiting,
            3 => RecordState::Finished,
            _ => return None,
        })
    }
}

/// Everything needed to continue a transaction, serialized by [`to_bytes`](Self::to_bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransactionRecord {
    /// Where the transaction stands.
    pub state: Option<RecordState>,
    /// The PKIBody tag of the request that opened the transaction (0 ir, 2 cr, 4 p10cr, ...).
    pub request_type: u8,
    /// Whether the client asked for implicit confirmation.
    pub implicit_confirm: bool,
    /// The certReqId of the request (-1 for p10cr).
    pub cert_req_id: i64,
    /// How many pollReqs were answered so far.
    pub polls: u32,
    /// The senderNonce of our last response: the next request's recipNonce must equal it.
    pub our_nonce: Vec<u8>,
    /// Who authenticated the request that opened the transaction (see
    /// [`Requester::identity`](super::Requester::identity)).
    pub requester: Vec<u8>,
    /// The issued certificate (DER), while awaiting certConf.
    pub cert: Vec<u8>,
    /// The request that opened the transaction (DER), while waiting for pollReq.
    pub request: Vec<u8>,
}

const RECORD_VERSION: u8 = 1;

impl TransactionRecord {
    /// The state, `InProgress` if unset.
    pub fn state(&self) -> RecordState {
        self.state.unwrap_or(RecordState::InProgress)
    }

    /// Serialize: version, state, type, flag, certReqId (8 octets), polls (4 octets), then
    /// four length-prefixed (4 octets, big-endian) byte fields.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![
            RECORD_VERSION,
            self.state() as u8,
            self.request_type,
            self.implicit_confirm as u8,
        ];
        v.extend_from_slice(&self.cert_req_id.to_be_bytes());
        v.extend_from_slice(&self.polls.to_be_bytes());
        for f in [&self.our_nonce, &self.requester, &self.cert, &self.request] {
            v.extend_from_slice(&(f.len() as u32).to_be_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    /// Parse bytes made by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let bad = || Error::new(ErrorCode::Internal, "corrupt transaction record");
        if b.len() < 16 || b[0] != RECORD_VERSION {
            return Err(bad());
        }
        let state = RecordState::from_u8(b[1]).ok_or_else(bad)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[4..12]);
        let polls = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
        let mut rest = &b[16..];
        let mut fields: Vec<Vec<u8>> = Vec::with_capacity(4);
        for _ in 0..4 {
            if rest.len() < 4 {
                return Err(bad());
            }
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if rest.len() < n {
                return Err(bad());
            }
            fields.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        let request = fields.pop().unwrap_or_default();
        let cert = fields.pop().unwrap_or_default();
        let requester = fields.pop().unwrap_or_default();
        let our_nonce = fields.pop().unwrap_or_default();
        Ok(TransactionRecord {
            state: Some(state),
            request_type: b[2],
            implicit_confirm: b[3] != 0,
            cert_req_id: i64::from_be_bytes(id),
            polls,
            our_nonce,
            requester,
            cert,
            request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn record_round_trips_and_rejects_corruption() {
        let r = TransactionRecord {
            state: Some(RecordState::Waiting),
            request_type: 4,
            implicit_confirm: true,
            cert_req_id: -1,
            polls: 2,
            our_nonce: vec![1; 16],
            requester: b"mac:ref".to_vec(),
            cert: vec![],
            request: vec![0x30, 0],
        };
        let b = r.to_bytes();
        assert_eq!(TransactionRecord::from_bytes(&b).unwrap(), r);
        assert!(TransactionRecord::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(TransactionRecord::from_bytes(&[]).is_err());
    }

    #[test]
    fn memory_store_insert_is_exclusive_update_is_cas_and_expiry_hides() {
        let s = MemoryStore::new();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(s.insert(b"t", b"a", later).unwrap());
        assert!(!s.insert(b"t", b"b", later).unwrap());
        assert!(!s.update(b"t", b"x", b"c", later).unwrap());
        assert!(s.update(b"t", b"a", b"c", later).unwrap());
        assert_eq!(s.get(b"t").unwrap().unwrap(), b"c");
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(s.insert(b"old", b"a", past).unwrap());
        assert_eq!(s.get(b"old").unwrap(), None);
        assert!(s.insert(b"old", b"new", later).unwrap());
        assert_eq!(s.len(), 2);
        s.remove(b"t").unwrap();
        assert_eq!(s.ids(), vec![b"old".to_vec()]);
    }
}
