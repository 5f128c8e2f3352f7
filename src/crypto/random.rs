//! Random octets for public protocol values (nonces, transactionIDs, serial numbers), drawn
//! from OpenSSL's CSPRNG in blocks instead of one call per value.
//!
//! # Design
//!
//! Each `RAND_bytes` call goes through OpenSSL's DRBG locking and a `getpid()` system call
//! (OpenSSL's own fork detection), which for 16 octets costs far more than the octets. So
//! each thread keeps a [`POOL_SIZE`]-octet buffer, filled by one `RAND_bytes` call and
//! handed out front to back; an octet is handed out at most once (the read position only
//! moves forward, and a refill overwrites the whole buffer). Requests larger than
//! [`DIRECT_ABOVE`] go to `RAND_bytes` directly.
//!
//! **Fork safety.** After `fork()` the child has a copy of the forking thread's buffer: if
//! both processes went on taking from it, they would send the same nonces and
//! transactionIDs. A process-wide fork generation counter is bumped in the child by a
//! `pthread_atfork` child handler (registered once, on first use); each buffer records the
//! generation it was filled in and is discarded, unused, when the generation differs. The
//! handler runs in the child before `fork()` returns there, so the child never takes a
//! buffered octet; the parent's buffer is untouched (its octets stay unique to the parent).
//! OpenSSL reseeds its own DRBG in the child, so the child's refill differs too. If the
//! handler cannot be registered, every request goes to `RAND_bytes` directly. A child made
//! without the `pthread_atfork` handlers (a raw `clone` system call) is not detected; `fork`,
//! `posix_spawn` and `vfork` + `exec` are fine. Without `fork` (non-Unix) there is no
//! handler and nothing to detect.
//!
//! Not for secrets: cmpkit's secret values (keys, content-encryption keys of central key
//! generation) are made by OpenSSL itself, which draws them from its private DRBG; nothing
//! secret comes from this pool; its users are nonces, transactionIDs, the demo CA's serial
//! numbers and PBM/PBKDF2 salts, all sent in the clear.

use crate::Result;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Octets each thread's buffer holds (32 nonces of 16 octets per `RAND_bytes` call).
const POOL_SIZE: usize = 512;

/// Requests of more octets than this bypass the buffer.
const DIRECT_ABOVE: usize = 64;

/// One thread's buffer. `pos == POOL_SIZE` means empty.
struct Pool {
    buf: [u8; POOL_SIZE],
    /// The next octet to hand out.
    pos: usize,
    /// [`FORK_GENERATION`] when `buf` was filled.
    generation: u64,
    /// How many times this thread's buffer was filled (for tests).
    #[cfg(test)]
    refills: u64,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            buf: [0; POOL_SIZE],
            pos: POOL_SIZE,
            generation: 0,
            #[cfg(test)]
            refills: 0,
        })
    };
}

/// Bumped in every child process right after `fork()` (see the module documentation).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Whether the fork handler is registered (and so whether buffering is safe): one of
/// `HANDLER_*`. Not a `OnceLock`: a fork while another thread registers would leave the
/// child waiting for ever on an initialisation no thread of it finishes; here the child
/// goes on without the buffer.
static FORK_HANDLER: AtomicU8 = AtomicU8::new(HANDLER_UNKNOWN);
const HANDLER_UNKNOWN: u8 = 0;
const HANDLER_REGISTERING: u8 = 1;
const HANDLER_REGISTERED: u8 = 2;
const HANDLER_FAILED: u8 = 3;

/// Whether the fork handler is registered; registers it on the first call. While another
/// thread registers it, `false` (that call goes to OpenSSL directly).
fn fork_handler_registered() -> bool {
    match FORK_HANDLER.compare_exchange(
        HANDLER_UNKNOWN,
        HANDLER_REGISTERING,
        Ordering::Acquire,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            let ok = register_fork_handler();
            let state = if ok {
                HANDLER_REGISTERED
            } else {
                HANDLER_FAILED
            };
            FORK_HANDLER.store(state, Ordering::Release);
            ok
        }
        Err(state) => state == HANDLER_REGISTERED,
    }
}

/// `pthread_atfork` child handler: only an atomic increment (async-signal-safe).
#[cfg(unix)]
extern "C" fn on_fork_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[cfg(unix)]
fn register_fork_handler() -> bool {
    // SAFETY: registers a handler that only increments an atomic; the prepare and parent
    // handlers are absent. The handler is a plain function of this library: glibc ties a
    // handler registered from a shared object to that object and drops it when it is unloaded.
    unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) == 0 }
}

#[cfg(not(unix))]
fn register_fork_handler() -> bool {
    true
}

/// Fill `out` with octets from OpenSSL's CSPRNG, through this thread's buffer for small
/// requests. For public values only (see the module documentation).
pub(crate) fn fill_public(out: &mut [u8]) -> Result<()> {
    if out.len() > DIRECT_ABOVE || !fork_handler_registered() {
        return Ok(openssl::rand::rand_bytes(out)?);
    }
    // Read after the handler is registered (the Acquire above): a fork from here on bumps
    // it in the child.
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    POOL.with(|pool| {
        // A re-entrant call (from a signal handler, say) goes to OpenSSL directly.
        let Ok(mut pool) = pool.try_borrow_mut() else {
            return Ok(openssl::rand::rand_bytes(out)?);
        };
        if pool.generation != generation || POOL_SIZE - pool.pos < out.len() {
            // Mark empty first: if the refill fails, nothing old is handed out later.
            pool.pos = POOL_SIZE;
            openssl::rand::rand_bytes(&mut pool.buf)?;
            pool.pos = 0;
            pool.generation = generation;
            #[cfg(test)]
            {
                pool.refills += 1;
            }
        }
        let start = pool.pos;
        out.copy_from_slice(&pool.buf[start..start + out.len()]);
        pool.pos = start + out.len();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Mutex, MutexGuard};

    /// Held by the tests that count refills or look into the buffer, and by the test that
    /// bumps the (process-wide) fork generation, which empties every thread's buffer.
    static GENERATION: Mutex<()> = Mutex::new(());

    fn generation_lock() -> MutexGuard<'static, ()> {
        GENERATION
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        fill_public(&mut v).unwrap();
        v
    }

    fn refills() -> u64 {
        POOL.with(|p| p.borrow().refills)
    }

    /// The octets this thread would hand out next (without taking them).
    fn buffered_next(n: usize) -> Option<Vec<u8>> {
        POOL.with(|p| {
            let p = p.borrow();
            (POOL_SIZE - p.pos >= n).then(|| p.buf[p.pos..p.pos + n].to_vec())
        })
    }

    #[test]
    fn values_never_repeat_across_many_calls() {
        let mut seen = HashSet::new();
        for i in 0..5000 {
            // Mixed sizes, so that values straddle refills at different offsets.
            let v = take(if i % 3 == 0 { 20 } else { 16 });
            assert!(seen.insert(v), "value {i} repeated");
        }
    }

    #[test]
    fn values_never_repeat_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..2000).map(|_| take(16)).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for v in t.join().unwrap() {
                assert!(seen.insert(v), "a value came out twice");
            }
        }
        assert_eq!(seen.len(), 8000);
    }

    #[test]
    fn buffer_is_refilled_when_used_up_and_serves_one_call_per_block() {
        let _g = generation_lock();
        take(16);
        let before = refills();
        // The rest of the current block, then one more value: exactly one refill.
        let mut left = POOL.with(|p| POOL_SIZE - p.borrow().pos);
        while left > 0 {
            let n = left.min(16);
            take(n);
            left -= n;
        }
        assert_eq!(refills(), before, "the rest of a block needs no refill");
        let next = take(16);
        assert_eq!(refills(), before + 1);
        assert_ne!(next, vec![0; 16]);
        for _ in 1..POOL_SIZE / 16 {
            take(16);
        }
        assert_eq!(
            refills(),
            before + 1,
            "one RAND_bytes call serves a whole block"
        );
    }

    #[test]
    fn large_requests_bypass_the_buffer() {
        let _g = generation_lock();
        take(16);
        let (before, next) = (refills(), buffered_next(16).unwrap());
        let big = take(DIRECT_ABOVE + 1);
        assert_eq!(refills(), before);
        assert_eq!(take(16), next, "the buffer is left as it was");
        assert_ne!(big, vec![0; DIRECT_ABOVE + 1]);
    }

    #[cfg(unix)]
    #[test]
    fn a_fork_generation_change_discards_the_buffered_octets() {
        let _g = generation_lock();
        take(16);
        let next = buffered_next(16).unwrap();
        let before = refills();
        // What the child handler does in a child process (the real fork is tested in
        // tests/random_fork.rs). Other threads' buffers are discarded too, which is harmless.
        on_fork_child();
        let got = take(16);
        assert_eq!(refills(), before + 1, "the buffer was filled again");
        assert_ne!(got, next, "a buffered value was handed out after a fork");
    }
}
