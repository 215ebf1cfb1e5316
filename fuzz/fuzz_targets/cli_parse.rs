//! Fuzzes the command-line parser: the input bytes, split on NUL, are grace-init's arguments (any bytes, so
//! non-UTF-8 too). The parser must never panic, and a usage error must stay one non-empty line.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use grace_init::cli::{Parsed, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let words = data
        .split(|b| *b == 0)
        .map(|w| OsString::from_vec(w.to_vec()));
    let argv = std::iter::once(OsString::from("grace-init")).chain(words);
    match parse(argv) {
        Parsed::Usage { message, .. } => {
            assert!(!message.is_empty(), "empty usage error");
            assert!(
                !message.contains('\n'),
                "usage error on several lines: {message:?}"
            );
        }
        Parsed::Run(config) => assert!(!config.command.is_empty(), "a run without a command"),
        Parsed::Info(text) => assert!(!text.is_empty(), "empty help or version"),
    }
});
