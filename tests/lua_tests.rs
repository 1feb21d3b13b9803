//! Runs every self-checking script in `lua-tests/` with the real binary (listeners bound to
//! 127.0.0.1). A script passes when it exits 0 after printing `N passed, 0 failed`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a single script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn scripts() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lua-tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("lua-tests/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .filter(|p| p.file_name().is_some_and(|n| n != "helper.lua"))
        .collect();
    files.sort();
    files
}

/// Runs one script; returns (passed, output).
fn run(script: &PathBuf) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccserve"))
        .arg("--bind")
        .arg("127.0.0.1")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ccserve");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // std has no wait-with-timeout for a child process.
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let summary_ok = out
        .lines()
        .last()
        .is_some_and(|l| l.ends_with(" passed, 0 failed") && !l.starts_with("0 passed"));
    let passed = status.is_some_and(|s| s.success()) && summary_ok;
    let mut report = format!("== {} ==\n{out}", script.display());
    if !err.is_empty() {
        report.push_str(&format!("-- stderr --\n{err}"));
    }
    if status.is_none() {
        report.push_str("-- timed out --\n");
    }
    (passed, report)
}

#[test]
fn lua_test_scripts_pass() {
    let scripts = scripts();
    assert!(!scripts.is_empty(), "no scripts in lua-tests/");
    let mut failed = Vec::new();
    for script in &scripts {
        let (passed, report) = run(script);
        println!("{report}");
        if !passed {
            failed.push(script.display().to_string());
        }
    }
    assert!(failed.is_empty(), "failing Lua test scripts: {failed:?}");
}
