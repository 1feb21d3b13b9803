//! Shrinks the Lua source embedded in the binary without changing what it does or the line
//! numbers its errors report: comments go, and so does the indentation and trailing space of each
//! line; every newline stays (a multi-line comment leaves its newlines behind). Strings, long
//! strings and everything else are copied byte for byte. Used by `build.rs`, and tested from
//! `src/lib.rs`.

/// The length of a long bracket `[[`, `[=[`, `[==[`… starting at `s[i]`, with its level, if one
/// starts there.
fn long_bracket(s: &[u8], i: usize) -> Option<(usize, usize)> {
    if s.get(i) != Some(&b'[') {
        return None;
    }
    let mut j = i + 1;
    while s.get(j) == Some(&b'=') {
        j += 1;
    }
    (s.get(j) == Some(&b'[')).then_some((j + 1 - i, j - i - 1))
}

/// Where the long bracket of `level` opened before `from` closes: the index just past `]=…]`.
fn long_end(s: &[u8], from: usize, level: usize) -> usize {
    let mut i = from;
    while i < s.len() {
        if s[i] == b']' {
            let mut j = i + 1;
            while j < s.len() && s[j] == b'=' {
                j += 1;
            }
            if j - i - 1 == level && s.get(j) == Some(&b']') {
                return j + 1;
            }
        }
        i += 1;
    }
    s.len()
}

/// `source` without comments, indentation or trailing spaces, with the same lines.
pub fn minify(source: &str) -> String {
    let s = source.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut i = 0;
    let mut line_start = true;
    while i < s.len() {
        let c = s[i];
        if line_start && (c == b' ' || c == b'\t') {
            i += 1;
            continue;
        }
        line_start = false;
        match c {
            b'\n' => {
                while matches!(out.last(), Some(b' ' | b'\t' | b'\r')) {
                    out.pop();
                }
                out.push(b'\n');
                line_start = true;
                i += 1;
            }
            b'-' if s.get(i + 1) == Some(&b'-') => {
                if let Some((len, level)) = long_bracket(s, i + 2) {
                    let end = long_end(s, i + 2 + len, level);
                    let newlines = s[i..end].iter().filter(|&&b| b == b'\n').count();
                    out.extend(std::iter::repeat_n(b'\n', newlines));
                    // Keep the tokens either side apart (`a--[[x]]b` is `a b`).
                    if newlines == 0 {
                        out.push(b' ');
                    }
                    i = end;
                } else {
                    while i < s.len() && s[i] != b'\n' {
                        i += 1;
                    }
                }
            }
            b'[' => match long_bracket(s, i) {
                Some((len, level)) => {
                    let end = long_end(s, i + len, level);
                    out.extend_from_slice(&s[i..end]);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            },
            b'"' | b'\'' => {
                let start = i;
                i += 1;
                while i < s.len() && s[i] != c {
                    // An escape takes the next byte with it (an escaped quote, or a newline).
                    i += if s[i] == b'\\' { 2 } else { 1 };
                    if s.get(i - 1) == Some(&b'\n') && s[i - 2] != b'\\' {
                        break; // an unfinished string: leave the rest to Lua's own error
                    }
                }
                i = (i + 1).min(s.len());
                out.extend_from_slice(&s[start..i]);
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| source.to_string())
}
