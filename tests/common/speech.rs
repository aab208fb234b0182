//! Speech for tests and benchmarks that transcribe: sentences spoken by espeak-ng.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `text` spoken by espeak-ng (`-v en-us -s 130`) into `speech.wav` in `dir`.
pub fn spoken(dir: &Path, text: &str) -> PathBuf {
    let wav = dir.join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "130", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng runs (scripts/install-deps.sh test installs it)");
    assert!(status.success(), "espeak-ng spoke {text:?}");
    wav
}
