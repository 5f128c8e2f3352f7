//! Client transactions, sans-IO: a [`Transaction`] emits request bytes and consumes response
//! bytes; [`execute`] is the blocking loop over the same calls with a [`Transfer`].

mod config;
mod enroll;
mod response;

pub use config::{ClientConfig, Credentials};
pub(crate) use enroll::cert_hash;
pub use enroll::{EnrollRequest, Transaction};
pub use response::Response;

use crate::error::Result;

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
/// Returns the transaction's result; its [`Response`] holds what the peer said either way.
pub fn execute(tx: &mut Transaction, transfer: &mut dyn Transfer) -> Result<()> {
    while let Some(request) = tx.pending_request() {
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
