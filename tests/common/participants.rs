//! Room participants in headless Chromium (`tests/node/room_participants.mjs`), each joining
//! with LiveKit's client SDK and publishing a camera and a microphone, driven one command at a
//! time. The tests' server and the benchmarks' (which include this file) both drive them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// What the driver needs of the server whose rooms the participants join.
pub trait RoomServer {
    /// The URL of `path` on the server.
    fn url(&self, path: &str) -> String;
    /// What the server logged, shown when a command fails.
    fn log(&self) -> String;
}

/// How long a participant's command (a join, with ICE) may take on a loaded machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The participants' browser; its commands are the script's (see its header).
pub struct Participants {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
}

impl Participants {
    /// Starts the browser for the room `room_id` of `server`.
    pub fn start(server: &impl RoomServer, room_id: &str) -> Participants {
        let mut child = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/node/room_participants.mjs"
            ))
            .arg(server.url(&format!("/rooms/{room_id}/join")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "node tests/node/room_participants.mjs (make test installs Node.js and Chromium)",
            );
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Participants {
            child,
            stdin,
            replies,
        }
    }

    /// Sends one command and returns its reply; a failed command fails the test with the
    /// server's log.
    pub fn send(&mut self, server: &impl RoomServer, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        let line = self
            .replies
            .recv_timeout(COMMAND_TIMEOUT)
            .unwrap_or_else(|e| panic!("no reply to {command} ({e})\n{}", server.log()));
        let reply: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}"));
        assert_ne!(reply["cmd"], "failed", "{reply:#}\n{}", server.log());
        reply
    }
}

impl Drop for Participants {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
