//! AMF0 values: decoder and encoder (Adobe "Action Message Format -- AMF 0", 2007, §2).
//!
//! Supported markers: number (0x00), boolean (0x01), string (0x02), object (0x03), null (0x05),
//! undefined (0x06), ECMA array (0x08), object end (0x09, only inside objects and ECMA arrays),
//! strict array (0x0A), date (0x0B) and long string (0x0C). Movie clip, reference, unsupported,
//! record set, XML document, typed object and the AMF3 switch are refused with an error.
//!
//! The decoder sees peer bytes: it is bounds-checked, caps nesting at [`MAX_DEPTH`] and the
//! number of values per decode at [`MAX_VALUES`] (a strict array of a million nulls is two bytes
//! each on the wire but much larger in memory), never reserves from a declared count, and reports
//! every error with the byte offset it happened at. Strings that are not UTF-8 are decoded
//! lossily: RTMP clients put free text in them and refusing a stream over it helps no one.

use bytes::{BufMut, Bytes, BytesMut};

/// Deepest nesting of objects/arrays accepted.
pub const MAX_DEPTH: usize = 32;
/// Most values one [`decode_all`] call will produce.
pub const MAX_VALUES: usize = 65_536;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;

/// Errors raised while decoding AMF0; `offset` is relative to the start of the decoded bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Amf0Error {
    #[error("AMF0 truncated at offset {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("AMF0 marker {marker:#04x} at offset {offset} is not supported")]
    UnsupportedMarker { offset: usize, marker: u8 },
    #[error("AMF0 object end marker at offset {offset} outside an object")]
    UnexpectedObjectEnd { offset: usize },
    #[error("AMF0 nesting deeper than {MAX_DEPTH} at offset {offset}")]
    TooDeep { offset: usize },
    #[error("AMF0 data holds more than {MAX_VALUES} values (offset {offset})")]
    TooManyValues { offset: usize },
}

/// One AMF0 value. Object and ECMA array keep their properties in wire order.
#[derive(Clone, Debug, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A string or long string (the encoder picks the marker by length).
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    Date {
        /// Milliseconds since the Unix epoch.
        millis: f64,
        /// Time zone offset (reserved; should be 0).
        timezone: i16,
    },
}

impl Amf0Value {
    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a number value.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(props) | Amf0Value::EcmaArray(props) => Some(props),
            _ => None,
        }
    }

    /// The value of property `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// A convenience for building objects in replies.
    pub fn object<const N: usize>(props: [(&str, Amf0Value); N]) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }

    /// Appends the encoded value to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Amf0Value::Number(n) => {
                out.put_u8(NUMBER);
                out.put_f64(*n);
            }
            Amf0Value::Boolean(b) => {
                out.put_u8(BOOLEAN);
                out.put_u8(u8::from(*b));
            }
            Amf0Value::String(s) => match u16::try_from(s.len()) {
                Ok(len) => {
                    out.put_u8(STRING);
                    out.put_u16(len);
                    out.put_slice(s.as_bytes());
                }
                Err(_) => {
                    out.put_u8(LONG_STRING);
                    put_long_utf8(out, s);
                }
            },
            Amf0Value::Object(props) => {
                out.put_u8(OBJECT);
                encode_properties(props, out);
            }
            Amf0Value::Null => out.put_u8(NULL),
            Amf0Value::Undefined => out.put_u8(UNDEFINED),
            Amf0Value::EcmaArray(props) => {
                out.put_u8(ECMA_ARRAY);
                out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
                encode_properties(props, out);
            }
            Amf0Value::StrictArray(items) => {
                out.put_u8(STRICT_ARRAY);
                out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
                for item in items {
                    item.encode(out);
                }
            }
            Amf0Value::Date { millis, timezone } => {
                out.put_u8(DATE);
                out.put_f64(*millis);
                out.put_i16(*timezone);
            }
        }
    }
}

fn put_long_utf8(out: &mut BytesMut, s: &str) {
    // Strings over 4 GiB cannot be sent; they never arise from Sluice's own replies.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.put_u32(len);
    out.put_slice(&s.as_bytes()[..len as usize]);
}

fn encode_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        let len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        out.put_u16(len);
        out.put_slice(&key.as_bytes()[..usize::from(len)]);
        value.encode(out);
    }
    out.put_u16(0);
    out.put_u8(OBJECT_END);
}

/// Encodes a sequence of values (a command or data message body).
pub fn encode_all(values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::new();
    for value in values {
        value.encode(&mut out);
    }
    out.freeze()
}

/// Decodes every value in `bytes` (a command or data message body).
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        values: 0,
    };
    let mut out = Vec::new();
    while reader.pos < bytes.len() {
        out.push(reader.value(0)?);
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    values: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, len: usize) -> Result<&'a [u8], Amf0Error> {
        let slice = self
            .bytes
            .get(self.pos..self.pos.saturating_add(len))
            .ok_or(Amf0Error::Truncated {
                offset: self.pos,
                what,
                needed: len,
                available: self.bytes.len().saturating_sub(self.pos),
            })?;
        self.pos += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Amf0Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(what, N)?);
        Ok(out)
    }

    fn utf8(&mut self, what: &'static str, len: usize) -> Result<String, Amf0Error> {
        Ok(String::from_utf8_lossy(self.take(what, len)?).into_owned())
    }

    fn short_string(&mut self, what: &'static str) -> Result<String, Amf0Error> {
        let len = u16::from_be_bytes(self.array(what)?);
        self.utf8(what, usize::from(len))
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        let offset = self.pos;
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(Amf0Error::TooManyValues { offset });
        }
        let [marker] = self.array("value marker")?;
        let value = match marker {
            NUMBER => Amf0Value::Number(f64::from_be_bytes(self.array("number")?)),
            BOOLEAN => Amf0Value::Boolean(self.array::<1>("boolean")?[0] != 0),
            STRING => Amf0Value::String(self.short_string("string")?),
            LONG_STRING => {
                let len = u32::from_be_bytes(self.array("long string length")?);
                Amf0Value::String(self.utf8("long string", len as usize)?)
            }
            OBJECT => Amf0Value::Object(self.properties(depth + 1, offset)?),
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            ECMA_ARRAY => {
                // The count is advisory (encoders get it wrong); the end marker terminates.
                self.array::<4>("ECMA array count")?;
                Amf0Value::EcmaArray(self.properties(depth + 1, offset)?)
            }
            STRICT_ARRAY => {
                let count = u32::from_be_bytes(self.array("strict array count")?);
                if depth + 1 > MAX_DEPTH {
                    return Err(Amf0Error::TooDeep { offset });
                }
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            DATE => Amf0Value::Date {
                millis: f64::from_be_bytes(self.array("date")?),
                timezone: i16::from_be_bytes(self.array("date time zone")?),
            },
            OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd { offset }),
            marker => return Err(Amf0Error::UnsupportedMarker { offset, marker }),
        };
        Ok(value)
    }

    fn properties(
        &mut self,
        depth: usize,
        offset: usize,
    ) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep { offset });
        }
        let mut props = Vec::new();
        loop {
            let key = self.short_string("property name")?;
            if key.is_empty() && self.bytes.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth)?;
            props.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Amf0Value> {
        vec![
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("fpad", Amf0Value::Boolean(false)),
                ("nothing", Amf0Value::Null),
                ("gone", Amf0Value::Undefined),
                (
                    "list",
                    Amf0Value::StrictArray(vec![Amf0Value::Number(2.5), Amf0Value::Null]),
                ),
                (
                    "when",
                    Amf0Value::Date {
                        millis: 1.5e12,
                        timezone: 0,
                    },
                ),
            ]),
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]),
            Amf0Value::string("x".repeat(70_000)),
        ]
    }

    #[test]
    fn values_round_trip() {
        let values = sample();
        assert_eq!(decode_all(&encode_all(&values)).unwrap(), values);
    }

    #[test]
    fn golden_connect_command_decodes() {
        // The start of ffmpeg's connect command: "connect", 1.0, {app: "live"}.
        let bytes = [
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0x00, 0x3F, 0xF0, 0, 0, 0,
            0, 0, 0, 0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e',
            0x00, 0x00, 0x09,
        ];
        let values = decode_all(&bytes).unwrap();
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_number(), Some(1.0));
        assert_eq!(
            values[2].get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
    }

    #[test]
    fn long_strings_use_the_long_string_marker() {
        let encoded = encode_all(&[Amf0Value::string("y".repeat(70_000))]);
        assert_eq!(encoded[0], LONG_STRING);
    }

    #[test]
    fn truncation_anywhere_is_an_error_never_a_panic() {
        let encoded = encode_all(&sample());
        for end in 0..encoded.len() {
            if let Ok(values) = decode_all(&encoded[..end]) {
                // Only cuts between top-level values may decode.
                assert!(values.len() < sample().len(), "cut at {end}");
            }
        }
        assert_eq!(
            decode_all(&[0x02, 0x00, 0x05, b'a']),
            Err(Amf0Error::Truncated {
                offset: 3,
                what: "string",
                needed: 5,
                available: 1
            })
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend_from_slice(&[OBJECT, 0x00, 0x01, b'a']);
        }
        assert!(matches!(decode_all(&bytes), Err(Amf0Error::TooDeep { .. })));
        let arrays: Vec<u8> = (0..100).flat_map(|_| [STRICT_ARRAY, 0, 0, 0, 1]).collect();
        assert!(matches!(
            decode_all(&arrays),
            Err(Amf0Error::TooDeep { .. })
        ));
    }

    #[test]
    fn huge_declared_counts_do_not_allocate() {
        assert!(matches!(
            decode_all(&[STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, NULL]),
            Err(Amf0Error::Truncated { .. })
        ));
        let many_nulls: Vec<u8> = [STRICT_ARRAY, 0x00, 0x10, 0x00, 0x00]
            .into_iter()
            .chain(std::iter::repeat_n(NULL, 0x10_0000))
            .collect();
        assert!(matches!(
            decode_all(&many_nulls),
            Err(Amf0Error::TooManyValues { .. })
        ));
    }

    #[test]
    fn unsupported_and_misplaced_markers_report_their_offset() {
        assert_eq!(
            decode_all(&[NULL, 0x11]),
            Err(Amf0Error::UnsupportedMarker {
                offset: 1,
                marker: 0x11
            })
        );
        assert_eq!(
            decode_all(&[OBJECT_END]),
            Err(Amf0Error::UnexpectedObjectEnd { offset: 0 })
        );
    }
}
