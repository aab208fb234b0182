//! Server side of the RTMP handshake (Adobe RTMP specification 1.0, §5.2).
//!
//! The client sends C0 (one version byte, 3) and C1 (1536 bytes); the server answers S0, S1 and
//! S2 at once and then waits for C2 (1536 bytes), after which chunk streams begin.
//!
//! Two flavours exist in the wild and both are accepted:
//!
//! * the **simple handshake** of the specification: S1 is random, S2 echoes C1;
//! * the **digest handshake** of Flash Player / FMS that librtmp-derived clients (OBS) and
//!   ffmpeg send: C1 carries an HMAC-SHA256 digest, keyed with `"Genuine Adobe Flash Player
//!   001"`, at an offset found by one of two schemes (offset bytes at 8 or at 772). When that
//!   digest validates, S1 carries a digest keyed with the FMS key at the same scheme and S2 ends
//!   with a signature keyed from the client's digest, as Flash expects.
//!
//! C2 is read and discarded: it is not required to equal S1, so replayed captures still work.
//! Everything here is sans-IO: bytes come in through [`ServerHandshake::advance`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_PACKET_LEN: usize = 1536;
/// The only plain-RTMP version byte (6 is RTMPE, which Sluice does not speak).
pub const RTMP_VERSION: u8 = 3;

const DIGEST_LEN: usize = 32;
/// "Genuine Adobe Flash Player 001" followed by the 32 extra bytes of the full key.
const FLASH_PLAYER_KEY: &[u8] = b"Genuine Adobe Flash Player 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
/// "Genuine Adobe Flash Media Server 001" followed by the same 32 extra bytes.
const FMS_KEY: &[u8] = b"Genuine Adobe Flash Media Server 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
/// The text-only prefixes used to sign C1 and S1.
const FLASH_PLAYER_KEY_TEXT_LEN: usize = 30;
const FMS_KEY_TEXT_LEN: usize = 36;
/// The version S1 announces in digest mode (the value FMS 3.5 sends).
const SERVER_VERSION: [u8; 4] = [0x0d, 0x0e, 0x0a, 0x0d];

/// Errors raised by the handshake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// C0 (byte offset 0) was not 3: not RTMP, or encrypted RTMPE.
    #[error("unsupported RTMP version byte {version:#04x} at offset 0 (expected 3)")]
    UnsupportedVersion { version: u8 },
}

/// Where the digest sits in C1/S1: the two layouts Flash uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// Offset bytes at 8..12 (digest somewhere in 12..772).
    Scheme0,
    /// Offset bytes at 772..776 (digest somewhere in 776..1536).
    Scheme1,
}

impl DigestScheme {
    /// Start of the digest in a 1536-byte packet.
    fn digest_offset(self, packet: &[u8; HANDSHAKE_PACKET_LEN]) -> usize {
        let base = match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        };
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        // 728 = 764-byte half minus the 4 offset bytes minus the 32 digest bytes.
        sum % 728 + base + 4
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest of `packet` (all bytes except the 32 at `offset`) under `key`.
fn packet_digest(
    packet: &[u8; HANDSHAKE_PACKET_LEN],
    offset: usize,
    key: &[u8],
) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..offset], &packet[offset + DIGEST_LEN..]])
}

/// Writes a digest into `packet` at the place `scheme` picks; returns the digest.
pub(crate) fn imprint_digest(
    packet: &mut [u8; HANDSHAKE_PACKET_LEN],
    scheme: DigestScheme,
    key: &[u8],
) -> [u8; DIGEST_LEN] {
    let offset = scheme.digest_offset(packet);
    let digest = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
    digest
}

/// Finds a valid client digest in C1: the scheme and the digest bytes.
fn find_client_digest(c1: &[u8; HANDSHAKE_PACKET_LEN]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    let key = &FLASH_PLAYER_KEY[..FLASH_PLAYER_KEY_TEXT_LEN];
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|scheme| {
            let offset = scheme.digest_offset(c1);
            let expected = packet_digest(c1, offset, key);
            let found = &c1[offset..offset + DIGEST_LEN];
            // Not a secret: a plain comparison is fine.
            (found == expected).then_some((scheme, expected))
        })
}

/// The client digest key used to sign C1 (exposed for tests that play the client).
#[cfg(test)]
pub(crate) fn client_key() -> &'static [u8] {
    &FLASH_PLAYER_KEY[..FLASH_PLAYER_KEY_TEXT_LEN]
}

/// Which handshake the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeMode {
    Simple,
    Digest(DigestScheme),
}

/// What one call to [`ServerHandshake::advance`] achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// More bytes are needed; nothing to send.
    NeedMore,
    /// C0+C1 arrived: send these bytes (S0+S1+S2), then wait for C2.
    Reply(Bytes),
    /// C2 arrived: the chunk stream starts with whatever is left in the buffer.
    Done,
}

#[derive(Debug)]
enum State {
    AwaitingC0C1,
    AwaitingC2,
    Done,
}

/// The server's handshake state machine.
#[derive(Debug)]
pub struct ServerHandshake {
    state: State,
    mode: Option<HandshakeMode>,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A handshake waiting for C0.
    pub fn new() -> Self {
        ServerHandshake {
            state: State::AwaitingC0C1,
            mode: None,
        }
    }

    /// Whether C2 has been consumed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The flavour the client chose, once C1 has been read.
    pub fn mode(&self) -> Option<HandshakeMode> {
        self.mode
    }

    /// Consumes what it can from `input` (handshake bytes only; anything after C2 is left).
    pub fn advance(&mut self, input: &mut BytesMut) -> Result<HandshakeProgress, HandshakeError> {
        match self.state {
            State::AwaitingC0C1 => {
                if let Some(&version) = input.first() {
                    if version != RTMP_VERSION {
                        return Err(HandshakeError::UnsupportedVersion { version });
                    }
                }
                if input.len() < 1 + HANDSHAKE_PACKET_LEN {
                    return Ok(HandshakeProgress::NeedMore);
                }
                input.advance(1);
                let mut c1 = [0u8; HANDSHAKE_PACKET_LEN];
                input.copy_to_slice(&mut c1);
                let reply = self.reply_to(&c1);
                self.state = State::AwaitingC2;
                Ok(HandshakeProgress::Reply(reply))
            }
            State::AwaitingC2 => {
                if input.len() < HANDSHAKE_PACKET_LEN {
                    return Ok(HandshakeProgress::NeedMore);
                }
                input.advance(HANDSHAKE_PACKET_LEN);
                self.state = State::Done;
                Ok(HandshakeProgress::Done)
            }
            State::Done => Ok(HandshakeProgress::Done),
        }
    }

    /// Builds S0+S1+S2 for this C1.
    fn reply_to(&mut self, c1: &[u8; HANDSHAKE_PACKET_LEN]) -> Bytes {
        let mut s1 = [0u8; HANDSHAKE_PACKET_LEN];
        rand::Rng::fill(&mut rand::thread_rng(), &mut s1[8..]);
        // A client version of zero means the simple handshake (librtmp and nginx-rtmp agree).
        let client_digest = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            find_client_digest(c1)
        };
        let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_PACKET_LEN);
        out.put_u8(RTMP_VERSION);
        match client_digest {
            Some((scheme, c1_digest)) => {
                self.mode = Some(HandshakeMode::Digest(scheme));
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                imprint_digest(&mut s1, scheme, &FMS_KEY[..FMS_KEY_TEXT_LEN]);
                let mut s2 = [0u8; HANDSHAKE_PACKET_LEN];
                rand::Rng::fill(&mut rand::thread_rng(), &mut s2[..]);
                let signing_key = hmac_sha256(FMS_KEY, &[&c1_digest]);
                let split = HANDSHAKE_PACKET_LEN - DIGEST_LEN;
                let signature = hmac_sha256(&signing_key, &[&s2[..split]]);
                s2[split..].copy_from_slice(&signature);
                out.put_slice(&s1);
                out.put_slice(&s2);
            }
            None => {
                self.mode = Some(HandshakeMode::Simple);
                out.put_slice(&s1);
                out.put_slice(c1);
            }
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c0c1(c1: &[u8; HANDSHAKE_PACKET_LEN]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u8(RTMP_VERSION);
        buf.put_slice(c1);
        buf
    }

    fn digest_c1(scheme: DigestScheme) -> [u8; HANDSHAKE_PACKET_LEN] {
        let mut c1 = [0u8; HANDSHAKE_PACKET_LEN];
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = (i * 7 + 3) as u8;
        }
        c1[4..8].copy_from_slice(&[0x80, 0x00, 0x07, 0x02]);
        imprint_digest(&mut c1, scheme, client_key());
        c1
    }

    #[test]
    fn simple_handshake_echoes_c1_in_s2() {
        let mut c1 = [0u8; HANDSHAKE_PACKET_LEN];
        c1[100] = 42;
        let mut hs = ServerHandshake::new();
        let mut input = c0c1(&c1);
        let HandshakeProgress::Reply(reply) = hs.advance(&mut input).unwrap() else {
            panic!("expected a reply");
        };
        assert_eq!(reply.len(), 1 + 2 * HANDSHAKE_PACKET_LEN);
        assert_eq!(reply[0], RTMP_VERSION);
        assert_eq!(&reply[1 + HANDSHAKE_PACKET_LEN..], &c1[..]);
        assert_eq!(hs.mode(), Some(HandshakeMode::Simple));
    }

    #[test]
    fn digest_handshake_is_recognised_in_both_schemes_and_signed_back() {
        for scheme in [DigestScheme::Scheme0, DigestScheme::Scheme1] {
            let c1 = digest_c1(scheme);
            let mut hs = ServerHandshake::new();
            let mut input = c0c1(&c1);
            let HandshakeProgress::Reply(reply) = hs.advance(&mut input).unwrap() else {
                panic!("expected a reply");
            };
            assert_eq!(hs.mode(), Some(HandshakeMode::Digest(scheme)));
            let s1: [u8; HANDSHAKE_PACKET_LEN] =
                reply[1..1 + HANDSHAKE_PACKET_LEN].try_into().unwrap();
            let offset = scheme.digest_offset(&s1);
            let expected = packet_digest(&s1, offset, &FMS_KEY[..FMS_KEY_TEXT_LEN]);
            assert_eq!(&s1[offset..offset + DIGEST_LEN], &expected);
            // S2's signature is keyed from the client's digest, as Flash checks it.
            let (_, c1_digest) = find_client_digest(&c1).unwrap();
            let s2 = &reply[1 + HANDSHAKE_PACKET_LEN..];
            let key = hmac_sha256(FMS_KEY, &[&c1_digest]);
            let split = HANDSHAKE_PACKET_LEN - DIGEST_LEN;
            assert_eq!(&s2[split..], &hmac_sha256(&key, &[&s2[..split]]));
        }
    }

    #[test]
    fn ffmpeg_c1_carries_a_scheme_0_digest() {
        let capture = include_bytes!("../testdata/ffmpeg_publish.bin");
        let mut hs = ServerHandshake::new();
        let mut input = BytesMut::from(&capture[..1 + HANDSHAKE_PACKET_LEN]);
        assert!(matches!(
            hs.advance(&mut input),
            Ok(HandshakeProgress::Reply(_))
        ));
        assert_eq!(
            hs.mode(),
            Some(HandshakeMode::Digest(DigestScheme::Scheme0))
        );
    }

    #[test]
    fn c1_with_a_version_but_no_valid_digest_falls_back_to_echo() {
        let mut c1 = digest_c1(DigestScheme::Scheme0);
        c1[1000] ^= 0xff;
        c1[300] ^= 0xff;
        let mut hs = ServerHandshake::new();
        let HandshakeProgress::Reply(reply) = hs.advance(&mut c0c1(&c1)).unwrap() else {
            panic!("expected a reply");
        };
        assert_eq!(hs.mode(), Some(HandshakeMode::Simple));
        assert_eq!(&reply[1 + HANDSHAKE_PACKET_LEN..], &c1[..]);
    }

    #[test]
    fn garbage_instead_of_c0_is_refused_at_once() {
        let mut hs = ServerHandshake::new();
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(
            hs.advance(&mut input),
            Err(HandshakeError::UnsupportedVersion { version: b'G' })
        );
    }

    #[test]
    fn c2_need_not_equal_s1_and_leftover_bytes_stay() {
        let mut hs = ServerHandshake::new();
        let mut input = c0c1(&[7u8; HANDSHAKE_PACKET_LEN]);
        assert!(matches!(
            hs.advance(&mut input),
            Ok(HandshakeProgress::Reply(_))
        ));
        input.put_slice(&[9u8; HANDSHAKE_PACKET_LEN - 1]);
        assert_eq!(hs.advance(&mut input), Ok(HandshakeProgress::NeedMore));
        input.put_slice(&[9u8, 0xAA]);
        assert_eq!(hs.advance(&mut input), Ok(HandshakeProgress::Done));
        assert!(hs.is_done());
        assert_eq!(&input[..], &[0xAA]);
    }
}
