//! The C server API called the way C calls it: NULL arguments, garbage requests, and a
//! handler table whose callbacks reject, delegate, wait, and misuse the decision.

use cmpkit::client::{execute, ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, SoftwareKey};
use cmpkit::ffi::ca_handler::*;
use cmpkit::ffi::server::*;
use cmpkit::ffi::server_config::*;
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::summarize;
use cmpkit::ErrorCode;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::Arc;

unsafe fn bytes(b: *const cmpkit_bytes) -> Vec<u8> {
    let (mut p, mut n) = (null(), 0usize);
    assert_eq!(
        unsafe { cmpkit_bytes_data(b, &mut p, &mut n) },
        ErrorCode::Ok
    );
    unsafe { std::slice::from_raw_parts(p, n) }.to_vec()
}

/// The policy: CN "wait" waits once, CN "bad" is rejected, "misuse" calls the wrong
/// setter (refused, so the default, delegate, stands), everything else is delegated.
unsafe extern "C" fn policy(
    userdata: *mut c_void,
    info: *const cmpkit_cert_request_info,
    d: *mut cmpkit_decision,
) -> i32 {
    let calls = unsafe { &*(userdata as *const std::sync::atomic::AtomicU32) };
    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let cn = unsafe { CStr::from_ptr(cmpkit_cert_request_info_common_name(info)) };
    let (mut p, mut n) = (null(), 0usize);
    assert_eq!(
        unsafe { cmpkit_cert_request_info_public_key_der(info, &mut p, &mut n) },
        ErrorCode::Ok
    );
    assert!(n > 60);
    let req = unsafe { CStr::from_ptr(cmpkit_cert_request_info_requester(info)) };
    assert_eq!(req.to_str().unwrap(), "mac:ffi-ref");
    match cn.to_str().unwrap() {
        "wait" if unsafe { cmpkit_cert_request_info_polls(info) } == 0 => unsafe {
            cmpkit_decision_waiting(d) as i32
        },
        "bad" => unsafe { cmpkit_decision_reject(d, 1 << 19, c"no bad names".as_ptr()) as i32 },
        "misuse" => {
            assert_eq!(
                unsafe { cmpkit_decision_accept(d) },
                ErrorCode::InvalidState
            );
            assert_eq!(
                unsafe { cmpkit_decision_issue(d, b"junk".as_ptr(), 4) },
                ErrorCode::BadCertificate
            );
            0
        }
        "fail" => 7,
        _ => 0,
    }
}

#[test]
fn server_api_with_a_c_policy() {
    // SAFETY: exercising the C API as C would.
    unsafe {
        assert_eq!(
            cmpkit_server_config_new(null_mut()),
            ErrorCode::NullArgument
        );
        let mut cfg = null_mut();
        assert_eq!(cmpkit_server_config_new(&mut cfg), ErrorCode::Ok);
        assert_eq!(
            cmpkit_server_config_add_secret(cfg, null(), 3, b"s".as_ptr(), 1),
            ErrorCode::NullArgument
        );
        assert_eq!(
            cmpkit_server_config_add_secret(
                cfg,
                b"ffi-ref".as_ptr(),
                7,
                b"ffi-secret".as_ptr(),
                10
            ),
            ErrorCode::Ok
        );
        assert_eq!(cmpkit_server_config_set_check_after(cfg, 0), ErrorCode::Ok);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let table = cmpkit_ca_handler {
            userdata: &calls as *const _ as *mut c_void,
            certificate_request: Some(policy),
            revoke: None,
            cert_confirm: None,
        };
        let mut srv = null_mut();
        assert_eq!(cmpkit_server_new(cfg, &table, &mut srv), ErrorCode::Ok);
        cmpkit_server_config_free(cfg);
        cmpkit_server_config_free(null_mut());

        // Garbage in: an error message out.
        let mut out = null_mut();
        assert_eq!(
            cmpkit_server_process(srv, b"junk".as_ptr(), 4, &mut out),
            ErrorCode::Ok
        );
        assert!(summarize(&bytes(out)).starts_with("error rejection (failInfo: badDataFormat)"));
        cmpkit_bytes_free(out);
        cmpkit_bytes_free(null_mut());
        assert_eq!(
            cmpkit_server_process(srv, null(), 4, &mut out),
            ErrorCode::NullArgument
        );

        let srv_ptr = srv as usize;
        let enroll = |cn: &str| {
            let config = Arc::new(ClientConfig {
                credentials: Some(Credentials::mac(
                    b"ffi-secret",
                    b"ffi-ref",
                    MacParams::Pbm(PbmConfig::default()),
                )),
                ..ClientConfig::default()
            });
            let req = EnrollRequest {
                subject: Some(parse_name(&format!("/CN={cn}")).unwrap()),
                sans: Vec::new(),
                key: Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap()),
            };
            let mut tx = Transaction::start_ir(config, req).unwrap();
            let mut transfer = |req: &[u8]| {
                let mut out = null_mut();
                let rc = cmpkit_server_process(
                    srv_ptr as *const cmpkit_server,
                    req.as_ptr(),
                    req.len(),
                    &mut out,
                );
                assert_eq!(rc, ErrorCode::Ok);
                let b = bytes(out);
                cmpkit_bytes_free(out);
                Ok(b)
            };
            let r = execute(&mut tx, &mut transfer);
            (tx, r)
        };
        let (_, r) = enroll("good.example");
        r.unwrap();
        let (tx, r) = enroll("wait");
        r.unwrap();
        assert!(tx.response().certificate.is_some());
        let (_, r) = enroll("misuse");
        r.unwrap();
        let (tx, r) = enroll("bad");
        assert_eq!(r.unwrap_err().code, ErrorCode::Rejected);
        let st = tx.response().status.clone().unwrap();
        assert_eq!(st.fail_info, 1 << 19);
        assert_eq!(st.texts, ["no bad names"]);
        let (tx, r) = enroll("fail");
        assert_eq!(r.unwrap_err().code, ErrorCode::Rejected);
        assert_eq!(
            tx.response().status.clone().unwrap().texts,
            ["the CA handler failed"]
        );
        assert_eq!(cmpkit_server_issued_count(srv), 3);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 6);

        // Listening: port, requests served, stop.
        let mut l = null_mut();
        assert_eq!(
            cmpkit_server_listen(srv, c"127.0.0.1:0".as_ptr(), 1, &mut l),
            ErrorCode::Ok
        );
        assert_ne!(cmpkit_listener_port(l), 0);
        assert_eq!(cmpkit_listener_requests_served(l), 0);
        cmpkit_server_free(srv);
        assert_eq!(cmpkit_listener_stop(l), ErrorCode::Ok);
        assert_eq!(cmpkit_listener_stop(null_mut()), ErrorCode::Ok);
    }
}
