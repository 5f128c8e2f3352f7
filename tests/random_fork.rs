//! `message::random_bytes` after `fork()`: the child must not hand out octets the parent
//! buffered. A test binary of its own, so that no other test's thread holds a lock (of
//! OpenSSL or malloc) while the process forks.

#![cfg(unix)]

use cmpkit::message::random_bytes;

const VALUES: usize = 4;
const LEN: usize = 16;

#[test]
fn a_forked_child_never_repeats_the_parents_random_values() {
    // Fill this thread's buffer: without fork detection the child would go on from here
    // exactly as the parent does.
    random_bytes(LEN).unwrap();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fork(2) in a test binary with no other test running; the child only takes
    // random octets, writes them to the pipe and leaves with _exit (no destructors, no
    // atexit handlers, no return into the test harness).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut out = [0u8; VALUES * LEN];
        let mut ok = true;
        for chunk in out.chunks_mut(LEN) {
            match random_bytes(LEN) {
                Ok(v) => chunk.copy_from_slice(&v),
                Err(_) => ok = false,
            }
        }
        // SAFETY: writes from our own buffer to the pipe's write end; _exit ends the child
        // at once.
        unsafe {
            let written = libc::write(fds[1], out.as_ptr().cast(), out.len());
            libc::_exit(if ok && written == out.len() as isize {
                0
            } else {
                1
            });
        }
    }
    // SAFETY: the parent closes its copy of the write end, which it does not use.
    unsafe { libc::close(fds[1]) };
    let mut child = Vec::new();
    let mut buf = [0u8; VALUES * LEN];
    loop {
        // SAFETY: reads into our own buffer, at most its length.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        child.extend_from_slice(&buf[..n as usize]);
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is ours to write.
    unsafe {
        libc::close(fds[0]);
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    assert_eq!(child.len(), VALUES * LEN);
    let parent: Vec<Vec<u8>> = (0..VALUES).map(|_| random_bytes(LEN).unwrap()).collect();
    for c in child.chunks(LEN) {
        assert!(
            !parent.iter().any(|p| p.as_slice() == c),
            "the child handed out a value the parent also handed out"
        );
    }
}
