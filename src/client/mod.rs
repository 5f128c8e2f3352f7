//! Client transactions for every CMP operation ([`Operation`]: ir, cr, kur, p10cr, rr, genm,
//! krr, ccr, central key generation, with polling), sans-IO: a [`Transaction`] emits request
//! bytes and consumes response bytes; [`execute`] is the blocking loop over the same calls with a [`Transfer`].

mod config;
mod enroll;
pub mod genm;
mod response;

pub use config::{ClientConfig, Credentials, DEFAULT_POLLING_DEADLINE};
pub(crate) use enroll::cert_hash;
pub use enroll::{EnrollRequest, KeygenRequest, Operation, Transaction};
pub use genm::RootCaKeyUpdate;
pub use response::{RecoveredKey, Response};

use crate::error::{Error, ErrorCode, Result};
use std::time::{Duration, Instant};

/// Sends one request and returns the peer's response: HTTP, CoAP, a serial line, files.
pub trait Transfer {
    /// Deliver `request` (a DER PKIMessage) and return the response bytes.
    fn transfer(&mut self, request: &[u8]) -> Result<Vec<u8>>;
}

impl<F> Transfer for F
where
    F: FnMut(&[u8]) -> Result<Vec<u8>>,
{
    fn transfer(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self(request)
    }
}

/// Drive `tx` to its end over `transfer`: send each request, feed back each response.
///
/// While polling, it sleeps for each [`Transaction::wait_hint`] before sending the pollReq.
/// When the wait would end after [`ClientConfig::polling_deadline`] (counted from the start
/// of this call), the transaction ends with [`ErrorCode::PollingTimeout`] without sleeping.
///
/// Returns the transaction's result; its [`Response`] holds what the peer said either way.
pub fn execute(tx: &mut Transaction, transfer: &mut dyn Transfer) -> Result<()> {
    execute_with_sleep(tx, transfer, &mut std::thread::sleep)
}

/// [`execute`] with the caller's sleep function (an event loop's timer, a test clock).
pub fn execute_with_sleep(
    tx: &mut Transaction,
    transfer: &mut dyn Transfer,
    sleep: &mut dyn FnMut(Duration),
) -> Result<()> {
    let start = Instant::now();
    let deadline = tx.config().polling_deadline;
    let mut slept = Duration::ZERO;
    while tx.pending_request().is_some() {
        if let Some(wait) = tx.wait_hint() {
            let elapsed = start.elapsed().max(slept);
            if elapsed + wait > deadline {
                let e = Error::new(
                    ErrorCode::PollingTimeout,
                    format!(
                        "the server asks to poll again in {} s, which passes the polling deadline of {} s ({} s spent, {} polling rounds)",
                        wait.as_secs(),
                        deadline.as_secs(),
                        elapsed.as_secs(),
                        tx.response().poll_rounds
                    ),
                );
                tx.abort(e.clone());
                return Err(e);
            }
            if !wait.is_zero() {
                sleep(wait);
                slept += wait;
            }
        }
        let request = tx.pending_request().expect("checked by the loop");
        let response = match transfer.transfer(request) {
            Ok(r) => r,
            Err(e) => {
                let e = e.context("transfer");
                tx.abort(e.clone());
                return Err(e);
            }
        };
        tx.handle_response(&response)?;
    }
    tx.result()
}
