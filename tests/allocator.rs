//! The `ccserve` binary caps glibc's malloc arenas at 2 (src/main.rs, `limit_malloc_arenas`), so
//! that many connection threads do not each grow an arena of their own; `MALLOC_ARENA_MAX` in the
//! environment still wins. Counted from `/proc/PID/maps` while 16 connections, and so 16
//! connection threads that have each allocated, are open at once.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{listen_script, read_response, Server};

/// glibc reserves each heap of a thread arena as one mapping of this size, aligned to it
/// (`HEAP_MAX_SIZE`, twice the largest mmap threshold: 64 MiB on 64-bit systems, 1 MiB on 32-bit
/// ones). Connections that allocate little keep each arena to one heap.
const HEAP_MAX: u64 = if std::mem::size_of::<usize>() == 8 {
    64 << 20
} else {
    1 << 20
};

/// The thread arenas (not counting the main arena, which lives in `[heap]`) of process `pid`:
/// an anonymous read-write mapping aligned to [`HEAP_MAX`], followed by the inaccessible rest of
/// its reservation, the two spanning exactly [`HEAP_MAX`].
fn thread_arenas(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read /proc/PID/maps");
    let regions: Vec<(u64, u64, String, bool)> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?.to_string();
            let anonymous = fields.nth(3).is_none(); // no path after offset, device, inode
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
                perms,
                anonymous,
            ))
        })
        .collect();
    regions
        .windows(2)
        .filter(|pair| {
            let (start, end, perms, anonymous) = &pair[0];
            let (next_start, next_end, next_perms, _) = &pair[1];
            *anonymous
                && perms.starts_with("rw")
                && start % HEAP_MAX == 0
                && next_start == end
                && next_perms.starts_with("---")
                && next_end - start == HEAP_MAX
        })
        .count()
}

/// Starts a server with `env`, opens 16 keep-alive connections with one request answered on
/// each, and counts thread arenas while they are all open. `None` under an emulator.
fn arenas_with(env: &[(&str, &str)]) -> Option<usize> {
    let server = Server::start_env(&listen_script("res.write('ok') res.close()"), &[], env);
    if common::under_emulator(server.pid()) {
        eprintln!("skipped: the server runs under qemu-user, its maps are the emulator's");
        return None;
    }
    let mut open: Vec<TcpStream> = Vec::new();
    for _ in 0..16 {
        let mut stream = common::connect(server.port);
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send a request");
        let response = read_response(&mut stream, false).expect("a response");
        assert_eq!(response.status, 200);
        open.push(stream);
    }
    Some(thread_arenas(server.pid()))
}

#[test]
fn the_binary_keeps_one_thread_arena_beside_the_main_one() {
    if let Some(arenas) = arenas_with(&[]) {
        assert!(arenas <= 1, "{arenas} thread arenas, want at most 1");
    }
}

#[test]
fn malloc_arena_max_in_the_environment_wins() {
    // 8 arenas: the main one and up to 7 thread arenas, which 16 live threads fill. This also
    // shows that `thread_arenas` finds arenas where they exist.
    if let Some(arenas) = arenas_with(&[("MALLOC_ARENA_MAX", "8")]) {
        assert!(
            (4..=7).contains(&arenas),
            "{arenas} thread arenas, want 4 to 7"
        );
    }
}
