//! Helpers of the WebRTC (WHIP) ingest suites: SDP offers, WHIP requests, and the headless
//! Chromium publisher that goes live through Sluice's publish page (`tests/node/publish.mjs`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

use super::{http_request, HttpResponse, Server};

/// A WebRTC offer as a browser makes it (ICE credentials, DTLS fingerprint, BUNDLE), with
/// Opus audio and one video section offering `video_codecs` (`rtpmap` encoding names).
pub fn browser_offer(video_codecs: &[&str]) -> String {
    // What every media section of a bundled offer repeats: transport, ICE and DTLS.
    let transport = "c=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:Qx4b\r\n\
         a=ice-pwd:3bKx1Uy0yR7nBQ2y8aVq9TfW\r\n\
         a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
         a=setup:actpass\r\n\
         a=sendonly\r\n\
         a=rtcp-mux\r\n";
    let mut sdp = format!(
        "v=0\r\n\
         o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
         s=-\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0 1\r\n\
         a=msid-semantic: WMS\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
         {transport}\
         a=mid:0\r\n\
         a=msid:- audio0\r\n\
         a=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=ssrc:1001 cname:sluicetest\r\n",
    );
    let payload_types: Vec<String> = (0..video_codecs.len())
        .map(|i| (96 + i).to_string())
        .collect();
    sdp.push_str(&format!(
        "m=video 9 UDP/TLS/RTP/SAVPF {}\r\n\
         {transport}\
         a=mid:1\r\n\
         a=msid:- video0\r\n\
         a=rtcp-rsize\r\n",
        payload_types.join(" ")
    ));
    for (codec, pt) in video_codecs.iter().zip(&payload_types) {
        sdp.push_str(&format!(
            "a=rtpmap:{pt} {codec}/90000\r\n\
             a=rtcp-fb:{pt} nack\r\n\
             a=rtcp-fb:{pt} nack pli\r\n\
             a=rtcp-fb:{pt} ccm fir\r\n"
        ));
        if codec.eq_ignore_ascii_case("H264") {
            sdp.push_str(&format!(
                "a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
            ));
        }
    }
    sdp.push_str("a=ssrc:2002 cname:sluicetest\r\n");
    sdp
}

impl Server {
    /// `POST`s `sdp` to the WHIP endpoint of `live_stream_id` with `key` as Bearer token.
    pub fn whip_offer(&self, live_stream_id: &str, key: &str, sdp: &str) -> HttpResponse {
        let authorization = format!("Authorization: Bearer {key}");
        http_request(
            "POST",
            &self.url(&format!("/whip/{live_stream_id}")),
            &["Content-Type: application/sdp", &authorization],
            Some(sdp.as_bytes()),
        )
    }
}

/// The JSON error code and message of a response.
pub fn error_of(response: &HttpResponse) -> (String, String) {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(&response.body)
        )
    });
    (
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// How long [`BrowserPublisher::next_report`] waits for the script's next line: beyond any
/// test's time live, Chromium's start and shutdown.
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// Headless Chromium publishing its fake camera and microphone through the publish page.
pub struct BrowserPublisher {
    child: Child,
    /// The script's output lines, read as they come.
    reports: Receiver<String>,
}

impl BrowserPublisher {
    /// Opens `page_url`, types `key` and goes live for `seconds`, then closes the tab, after
    /// pressing Stop (which sends DELETE) when `stop` is set.
    pub fn start(page_url: &str, key: &str, seconds: u32, stop: bool) -> BrowserPublisher {
        let ending = if stop { "stop" } else { "close" };
        let mut child = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/node/publish.mjs"
            ))
            .args([page_url, key, &seconds.to_string(), ending])
            .stdout(Stdio::piped())
            .spawn()
            .expect("node tests/node/publish.mjs (make test installs Node.js and Chromium)");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (sender, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        BrowserPublisher { child, reports }
    }

    /// The next report line of the script (`{"state": "live" | "failed" | "closed", …}`);
    /// fails the test if the script ends or stays silent for [`REPORT_TIMEOUT`] first.
    pub fn next_report(&mut self) -> Value {
        let line = self
            .reports
            .recv_timeout(REPORT_TIMEOUT)
            .unwrap_or_else(|e| panic!("no report from the browser publisher: {e}"));
        serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("publisher report is not JSON ({e}): {line:?}"))
    }

    /// Waits for the script to end (the tab closed); whether it succeeded.
    pub fn wait(mut self) -> bool {
        self.child
            .wait()
            .map(|status| status.success())
            .unwrap_or(false)
    }
}

impl Drop for BrowserPublisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
