//! Hands memory the process has freed back to the operating system.
//!
//! glibc's malloc keeps freed memory in its arenas (one for each thread that allocated, up to
//! eight per core) to reuse it, and returns pages to the system only from the top of a heap.
//! The media libraries (FFmpeg, x264) and the short-lived threads of asset jobs and live
//! sessions free tens of megabytes at a time between blocks that stay, so without help the
//! resident set grows with every job and never shrinks. Measured: after ten uploads had become
//! assets, the server held 101 MB of anonymous memory, and `malloc_trim` returned 76 MB of it
//! (docs/RELIABILITY.md). A Rust global allocator would not fix it: most of that memory is
//! allocated by the C libraries through glibc.
//!
//! So `sluice serve` calls `malloc_trim(0)` every [`TRIM_INTERVAL`], on a blocking thread
//! (it walks every arena, a few milliseconds). Elsewhere than glibc it does nothing.

use std::time::Duration;

/// How often freed memory is handed back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// Trims every [`TRIM_INTERVAL`] until the runtime shuts down.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut interval = tokio::time::interval(TRIM_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    });
}

/// Returns the free pages of every malloc arena to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only takes malloc's own locks and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return free memory by themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident anonymous memory of this process, in bytes.
    fn anonymous_bytes() -> u64 {
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let kib: u64 = rollup
            .lines()
            .find_map(|line| line.strip_prefix("Anonymous:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap();
        kib * 1024
    }

    #[test]
    fn memory_freed_between_blocks_still_in_use_goes_back_to_the_system() {
        const BLOCKS: usize = 16 * 1024;
        // A thread of its own allocates in an arena of its own, as a job's threads do.
        let (kept, before_trim) = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; 4096]).collect();
            // One block in sixteen stays, so the 60 MiB freed never reach the top of the heap
            // and glibc keeps them.
            let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(16).collect();
            (kept, anonymous_bytes())
        })
        .join()
        .unwrap();
        release_free_memory();
        let returned = before_trim.saturating_sub(anonymous_bytes());
        assert!(
            returned > 40 * 1024 * 1024,
            "trimming returned only {returned} bytes"
        );
        drop(kept);
    }
}
