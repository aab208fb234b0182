//! Arbitrary bytes, split at arbitrary points, into a `ServerSession`: it must never panic, and
//! every way of splitting the same bytes must give the same outcome and events (retina's split-point idea).
//!
//! Input layout: the first byte picks up to 8 split points from the next 8 bytes; the rest is
//! the client's byte stream. Publishes are always accepted so media paths are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::split_at_cuts;
use sluice_ingest::{ServerSession, SessionConfig, SessionEvent, SessionOutput};

fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<SessionEvent>, bool) {
    let mut session = ServerSession::new(SessionConfig::default());
    let mut events = Vec::new();
    for piece in pieces {
        let mut result = session.handle_input(piece);
        loop {
            let Ok(outputs) = result else {
                return (events, true);
            };
            let mut requested = false;
            for output in outputs {
                if let SessionOutput::Event(event) = output {
                    requested |= matches!(event, SessionEvent::PublishRequested { .. });
                    events.push(event);
                }
            }
            if !requested {
                break;
            }
            session.accept_publish();
            result = session.handle_input(&[]);
        }
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let (cuts, stream) = rest.split_at(rest.len().min(8));
    let pieces = split_at_cuts(stream, cuts, count);
    let (whole_events, whole_failed) = run([stream]);
    let (split_events, split_failed) = run(pieces);
    assert_eq!(whole_failed, split_failed);
    // On an error the events of the failing call are dropped with it, so compare clean runs.
    if !whole_failed {
        assert_eq!(whole_events, split_events);
    }
});
