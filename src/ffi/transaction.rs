//! `cmpkit_transaction`: one exchange driven by the caller (non-blocking), and the blocking
//! `cmpkit_execute` that is a loop over the same steps.

use super::ctx::cmpkit_ctx;
use super::request::cmpkit_request;
use super::response::cmpkit_response;
use super::util::{
    borrow_out, c_string, free_handle, guard, into_handle, set_last_error, try_bytes, try_mut,
    try_ref, write_handle,
};
use crate::client::{execute, Transaction};
use crate::error::{Error, ErrorCode};
use std::ffi::{c_char, CString};
use std::time::{Duration, Instant};

/// One transaction in progress. Use from one thread at a time; independent of the context
/// and request it was started from (they may be freed or changed meanwhile).
pub struct cmpkit_transaction {
    inner: Transaction,
    last_error: Option<CString>,
    /// When the transaction started (the polling deadline counts from here).
    started: Instant,
    /// When the last response was fed (the wait before the next pollReq counts from here).
    fed_at: Instant,
}

/// Whether the peer said anything a response handle should show.
fn peer_said_something(tx: &Transaction) -> bool {
    let r = tx.response();
    tx.result().is_ok()
        || r.status.is_some()
        || r.certificate.is_some()
        || !r.genp.is_empty()
        || r.poll_rounds > 0
}

/// Run the whole transaction for `req` (any operation) over the context's transfer,
/// blocking. While polling it sleeps as long as the server asks (`checkAfter`), up to the
/// context's polling deadline (`cmpkit_ctx_set_polling_deadline`).
///
/// Returns `CMPKIT_RESULT_OK` when the operation succeeded: for ir, cr, kur and p10cr the
/// certificate was issued and confirmed; for rr the CA accepted the revocation (status
/// accepted, grantedWithMods, revocationWarning or revocationNotification); for genm a genp
/// arrived. `*out` receives a response (caller frees with `cmpkit_response_free`) whenever
/// the exchange got that far that the peer said something — on success, and also on failures
/// such as `CMPKIT_RESULT_REJECTED`, `CMPKIT_RESULT_PEER_ERROR` or
/// `CMPKIT_RESULT_POLLING_TIMEOUT`, so that the peer's status can be read; otherwise `*out`
/// is set to NULL. This is the one exception to "out-parameters are written only on
/// success". `out` may be NULL if the caller does not want the response.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_execute(
    ctx: *mut cmpkit_ctx,
    req: *const cmpkit_request,
    out: *mut *mut cmpkit_response,
) -> ErrorCode {
    guard(|| {
        if !out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out.write(std::ptr::null_mut()) };
        }
        // SAFETY: NULL or live handles, used by this thread only.
        let (c, r) = unsafe { (try_mut(ctx, "ctx")?, try_ref(req, "req")?) };
        let run = |c: &mut cmpkit_ctx| -> Result<Transaction, Error> {
            let cfg = c.config()?;
            let mut tx = Transaction::start(cfg, r.op.operation())?;
            let mut transfer = c.transfer()?;
            let _ = execute(&mut tx, &mut transfer);
            Ok(tx)
        };
        let tx = run(c).inspect_err(|e| c.set_error(e))?;
        let result = tx.result();
        if !out.is_null() && peer_said_something(&tx) {
            // SAFETY: non-NULL and writable.
            unsafe { out.write(into_handle(cmpkit_response::new(tx.response().clone()))) };
        }
        result.inspect_err(|e| c.set_error(e))
    })
}

/// Start a transaction for `req` (any operation) without sending anything: the caller moves
/// the bytes.
///
/// Loop: wait `cmpkit_transaction_wait_ms` (non-zero only while polling); then
/// `cmpkit_transaction_request` gives the bytes to send; feed the answer to
/// `cmpkit_transaction_feed`; stop when `cmpkit_transaction_is_done` says 1. The caller frees
/// the transaction with `cmpkit_transaction_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_start(
    ctx: *mut cmpkit_ctx,
    req: *const cmpkit_request,
    out: *mut *mut cmpkit_transaction,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or live handles.
        let (c, r) = unsafe { (try_mut(ctx, "ctx")?, try_ref(req, "req")?) };
        if out.is_null() {
            return Err(Error::new(ErrorCode::NullArgument, "out is NULL"));
        }
        let tx = c
            .config()
            .and_then(|cfg| Transaction::start(cfg, r.op.operation()))
            .inspect_err(|e| c.set_error(e))?;
        // SAFETY: `out` checked non-NULL; writable per the contract.
        unsafe {
            write_handle(
                out,
                cmpkit_transaction {
                    inner: tx,
                    last_error: None,
                    started: Instant::now(),
                    fed_at: Instant::now(),
                },
                "out",
            )
        }
    })
}

/// The next request to send. Borrowed until the next call on the transaction.
/// `CMPKIT_RESULT_INVALID_STATE` when the transaction is done.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_request(
    tx: *const cmpkit_transaction,
    req: *mut *const u8,
    req_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live transaction handle.
        let t = unsafe { try_ref(tx, "tx") }?;
        let r = t.inner.pending_request().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidState,
                "the transaction is done: nothing to send",
            )
        })?;
        // SAFETY: out-params NULL or writable.
        unsafe { borrow_out(r, req, req_len) }
    })
}

/// Feed the server's answer to the last request. Returns the outcome of checking it; a
/// failure ends the transaction (the transaction handle stays valid for reading).
///
/// When the answer asks to poll again later than the context's polling deadline allows
/// (counted from `cmpkit_transaction_start`), the transaction ends here with
/// `CMPKIT_RESULT_POLLING_TIMEOUT`, as `cmpkit_execute` would end it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_feed(
    tx: *mut cmpkit_transaction,
    rsp: *const u8,
    rsp_len: usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live transaction handle used by one thread.
        let t = unsafe { try_mut(tx, "tx") }?;
        // SAFETY: a buffer of `rsp_len` bytes.
        let bytes = unsafe { try_bytes(rsp, rsp_len, "rsp") }?;
        let outcome = t.inner.handle_response(bytes).and_then(|()| {
            t.fed_at = Instant::now();
            let deadline = t.inner.config().polling_deadline;
            match t.inner.wait_hint() {
                Some(wait) if t.started.elapsed() + wait > deadline => {
                    let e = Error::new(
                        ErrorCode::PollingTimeout,
                        format!(
                            "the server asks to poll again in {} s, which passes the polling deadline of {} s ({} polling rounds)",
                            wait.as_secs(),
                            deadline.as_secs(),
                            t.inner.response().poll_rounds
                        ),
                    );
                    t.inner.abort(e.clone());
                    Err(e)
                }
                _ => Ok(()),
            }
        });
        outcome.inspect_err(|e| t.last_error = Some(c_string(&e.to_string())))
    })
}

/// Milliseconds to wait before sending the pending request (`cmpkit_transaction_request`),
/// for an event loop's timer: 0 = send it now; more while polling, when the server asked to
/// come back later (`checkAfter` of a pollRep). The value counts down: it is the time left
/// from now, measured from the `cmpkit_transaction_feed` that delivered the pollRep.
/// -1 when the transaction is done (nothing to send) or `tx` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_wait_ms(tx: *const cmpkit_transaction) -> i64 {
    let mut ms = -1;
    guard(|| {
        // SAFETY: NULL or a live transaction handle.
        let t = unsafe { try_ref(tx, "tx") }?;
        if t.inner.pending_request().is_some() {
            let wait = t.inner.wait_hint().unwrap_or(Duration::ZERO);
            let left = wait.saturating_sub(t.fed_at.elapsed());
            // Round up so that waiting `ms` never sends early.
            let left_ms = left.as_nanos().div_ceil(1_000_000);
            ms = i64::try_from(left_ms).unwrap_or(i64::MAX);
        }
        Ok(())
    });
    ms
}

/// End the transaction because the transfer failed (e.g. a timeout in the caller's event
/// loop); `detail` (may be NULL) is kept as the failure's description.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_abort(
    tx: *mut cmpkit_transaction,
    detail: *const c_char,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live transaction handle.
        let t = unsafe { try_mut(tx, "tx") }?;
        let d = if detail.is_null() {
            "aborted by the caller".to_owned()
        } else {
            // SAFETY: non-NULL NUL-terminated string per the contract.
            unsafe { super::util::try_str(detail, "detail") }?.to_owned()
        };
        if !t.inner.is_done() {
            // Keep the reason for `cmpkit_transaction_last_error` too, as `feed` does.
            let e = Error::new(ErrorCode::TransferFailed, d);
            t.last_error = Some(c_string(&e.to_string()));
            t.inner.abort(e);
        }
        Ok(())
    })
}

/// 1 when the transaction is over (successfully or not), 0 while a request awaits an answer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_is_done(tx: *const cmpkit_transaction) -> i32 {
    // SAFETY: NULL or a live transaction handle.
    unsafe { tx.as_ref() }.is_none_or(|t| t.inner.is_done()) as i32
}

/// The transaction's final result: OK once the operation succeeded (as for `cmpkit_execute`);
/// `CMPKIT_RESULT_INVALID_STATE` while still running; the failure otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_result(tx: *const cmpkit_transaction) -> ErrorCode {
    // SAFETY: NULL or a live transaction handle.
    match unsafe { tx.as_ref() } {
        None => set_last_error(&Error::new(ErrorCode::NullArgument, "tx is NULL")),
        Some(t) => match t.inner.result() {
            Ok(()) => ErrorCode::Ok,
            Err(e) => set_last_error(&e),
        },
    }
}

/// The detail of the transaction's failure, or NULL. Borrowed until the next call on it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_last_error(
    tx: *const cmpkit_transaction,
) -> *const c_char {
    // SAFETY: NULL or a live transaction handle.
    unsafe { tx.as_ref() }
        .and_then(|t| t.last_error.as_ref())
        .map_or(std::ptr::null(), |s| s.as_ptr())
}

/// A snapshot of what the peer said so far; the caller frees it with `cmpkit_response_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_response(
    tx: *const cmpkit_transaction,
    out: *mut *mut cmpkit_response,
) -> ErrorCode {
    guard(|| {
        // SAFETY: NULL or a live transaction handle.
        let t = unsafe { try_ref(tx, "tx") }?;
        // SAFETY: `out` NULL or writable.
        unsafe { write_handle(out, cmpkit_response::new(t.inner.response().clone()), "out") }
    })
}

/// Free a transaction (NULL is ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmpkit_transaction_free(tx: *mut cmpkit_transaction) {
    // SAFETY: NULL or a live transaction handle, freed once.
    unsafe { free_handle(tx) };
}
