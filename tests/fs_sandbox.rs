//! The `fs` API never reaches outside `--root`, also through symlinks inside the root (Lua
//! cannot create symlinks, so this test builds them).

#![cfg(unix)]

mod common;

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use common::{Server, WAIT};

const SCRIPT: &str = r#"
local function show(name, ...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    print(name .. "=" .. table.concat(parts, ","))
end
show("exists link/secret.txt", fs.exists("link/secret.txt"))
show("isDir link", fs.isDir("link"))
show("list link", pcall(fs.list, "link"))
show("open linkfile", fs.open("linkfile", "r"))
show("open link/secret.txt", fs.open("link/secret.txt", "r"))
show("write link/new.txt", fs.open("link/new.txt", "w"))
show("write dangling", fs.open("dangling", "w"))
show("append linkfile", fs.open("linkfile", "a"))
show("makeDir link/x", pcall(fs.makeDir, "link/x"))
show("copy linkfile", pcall(fs.copy, "linkfile", "copied"))
show("copy link/secret.txt", pcall(fs.copy, "link/secret.txt", "copied"))
show("move into link", pcall(fs.move, "plain.txt", "link/moved.txt"))
show("getSize linkfile", pcall(fs.getSize, "linkfile"))
show("attributes linkfile", pcall(fs.attributes, "linkfile"))
show("loadfile linkfile", loadfile("linkfile"))
show("find", table.concat(fs.find("*/*"), " "))
show("dotdot", fs.open("/../outside/secret.txt", "r"))
local h = fs.open("inner/a.txt", "r")
show("inner", h.readAll())
h.close()
fs.delete("link")
fs.delete("linkfile")
show("deleted links", fs.exists("link"), fs.exists("linkfile"))
print("DONE")
"#;

#[test]
fn symlinks_cannot_escape_the_root() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fs-sandbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("sub")).expect("root");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret.txt"), "TOP SECRET").expect("secret");
    std::fs::write(root.join("sub/a.txt"), "inside").expect("inside file");
    std::fs::write(root.join("plain.txt"), "plain").expect("plain file");
    symlink(&outside, root.join("link")).expect("dir link");
    symlink(outside.join("secret.txt"), root.join("linkfile")).expect("file link");
    symlink(outside.join("created.txt"), root.join("dangling")).expect("dangling link");
    symlink(root.join("sub"), root.join("inner")).expect("inner link");
    let script = root.join("check.lua");
    std::fs::write(&script, SCRIPT).expect("script");

    let root_arg = root.to_string_lossy().into_owned();
    let script_arg = script.to_string_lossy().into_owned();
    let mut server = Server::spawn_exact(&["--root", root_arg.as_str(), script_arg.as_str()]);
    assert!(server.wait_exit(WAIT).is_some(), "script did not finish");
    let out = server.rest_of_stdout();
    let stderr = server.stderr_when_closed();
    let want = [
        "exists link/secret.txt=false",
        "isDir link=false",
        "list link=false,/link: Not a directory",
        "open linkfile=nil,/linkfile: Access denied",
        "open link/secret.txt=nil,/link/secret.txt: Access denied",
        "write link/new.txt=nil,/link/new.txt: Access denied",
        "write dangling=nil,/dangling: Access denied",
        "append linkfile=nil,/linkfile: Access denied",
        "makeDir link/x=false,/link/x: Access denied",
        "copy linkfile=false,/linkfile: Access denied",
        "copy link/secret.txt=false,/link/secret.txt: Access denied",
        "move into link=false,/link/moved.txt: Access denied",
        "getSize linkfile=false,/linkfile: No such file",
        "attributes linkfile=false,/linkfile: No such file",
        "loadfile linkfile=nil,File not found",
        "find=inner/a.txt sub/a.txt",
        "dotdot=nil,/outside/secret.txt: No such file",
        "inner=inside",
        "deleted links=false,false",
        "DONE",
    ];
    assert_eq!(out, want, "stderr: {stderr}");
    // Nothing was created or removed outside the root.
    assert!(!outside.join("new.txt").exists());
    assert!(!outside.join("created.txt").exists());
    assert!(!outside.join("x").exists());
    assert!(!outside.join("moved.txt").exists());
    assert_eq!(
        std::fs::read_to_string(outside.join("secret.txt"))
            .ok()
            .as_deref(),
        Some("TOP SECRET")
    );
    assert!(!root.join("copied").exists());
    let _ = std::fs::remove_dir_all(&base);
}
