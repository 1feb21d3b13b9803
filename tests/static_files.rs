//! `examples/static_files.lua` serves a `--root` directory: files, index.html for directories,
//! 404 for missing files, and never anything outside the root.

mod common;

use std::path::{Path, PathBuf};

use common::{get, Server, WAIT};

/// A fresh directory under the test tmpdir: `(parent, parent/root)`, with a secret file beside
/// the root.
fn dirs(name: &str) -> (PathBuf, PathBuf) {
    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("static-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&parent);
    let root = parent.join("root");
    std::fs::create_dir_all(root.join("sub")).expect("create root");
    std::fs::write(parent.join("secret.txt"), "TOP SECRET").expect("write secret");
    std::fs::write(root.join("hello.txt"), "hello file\n").expect("write file");
    std::fs::write(root.join("sub/index.html"), "<p>index</p>").expect("write index");
    std::fs::write(root.join("data.bin"), [0u8, 1, 2, 255]).expect("write binary");
    (parent, root)
}

fn start(root: &Path) -> Server {
    let script = format!("{}/examples/static_files.lua", env!("CARGO_MANIFEST_DIR"));
    let root = root.to_string_lossy().into_owned();
    let mut server = Server::spawn_exact(&[
        "-v",
        "--bind",
        "127.0.0.1",
        "--root",
        root.as_str(),
        script.as_str(),
        "0",
    ]);
    server.port = server
        .stderr_line_containing("listening on ", WAIT)
        .and_then(|line| {
            let rest = line.split("://").nth(1)?;
            rest.rsplit(':').next().and_then(|p| p.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("did not start listening: {}", server.stderr()));
    server
}

#[test]
fn serves_files_and_404s() {
    let (parent, root) = dirs("serve");
    let server = start(&root);
    let r = get(server.port, "/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello file\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = get(server.port, "/sub/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<p>index</p>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = get(server.port, "/data.bin");
    assert_eq!(r.body, vec![0u8, 1, 2, 255]);
    let r = get(server.port, "/missing.txt");
    assert_eq!(r.status, 404);
    let r = get(server.port, "/hello%2etxt?x=1");
    assert_eq!(r.status, 200, "percent-decoded name and query ignored");
    drop(server);
    let _ = std::fs::remove_dir_all(parent);
}

#[test]
fn refuses_escapes() {
    let (parent, root) = dirs("escape");
    let server = start(&root);
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let r = get(server.port, path);
        assert!(
            r.status == 403 || r.status == 404 || r.status == 400,
            "{path}: status {}",
            r.status
        );
        let text = r.text();
        assert!(!text.contains("TOP SECRET"), "{path}: leaked {text}");
        assert!(!text.contains("root:"), "{path}: leaked {text}");
    }
    // Still serving afterwards.
    assert_eq!(get(server.port, "/hello.txt").status, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(parent);
}

#[test]
fn serves_the_shipped_public_directory_as_its_run_line_says() {
    let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/public");
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/static_files.lua"),
    )
    .unwrap();
    assert!(
        script.contains("ccserve --root examples/public examples/static_files.lua"),
        "the script's Run line changed; keep this test in step"
    );
    let server = start(&public);
    let r = get(server.port, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    let index = std::fs::read(public.join("index.html")).unwrap();
    assert_eq!(r.body, index);
    let r = get(server.port, "/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css"));
}
