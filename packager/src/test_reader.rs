//! A minimal ISOBMFF box reader for tests: walks box headers (ISO/IEC 14496-12 §4.2) and
//! checks every declared size, so tests can read back what the writers produced.

/// A box as a test reader sees it: its type and its body (after the size and type).
#[derive(Debug)]
pub struct ReadBox<'a> {
    pub fourcc: [u8; 4],
    pub body: &'a [u8],
}

/// Splits `data` into consecutive boxes, checking every declared size.
pub fn read_boxes(mut data: &[u8]) -> Vec<ReadBox<'_>> {
    let mut boxes = Vec::new();
    while !data.is_empty() {
        let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && size <= data.len(),
            "box size {size} of {}",
            data.len()
        );
        boxes.push(ReadBox {
            fourcc: data[4..8].try_into().unwrap(),
            body: &data[8..size],
        });
        data = &data[size..];
    }
    boxes
}

/// Reads `data` as exactly one box of type `fourcc` and returns its body.
pub fn read_one<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> &'a [u8] {
    let boxes = read_boxes(data);
    assert_eq!(boxes.len(), 1);
    assert_eq!(&boxes[0].fourcc, fourcc);
    boxes[0].body
}

/// Follows a path of child boxes from a list of sibling boxes.
pub fn find<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
    let (first, rest) = path.split_first().unwrap();
    let found = read_boxes(data)
        .into_iter()
        .find(|b| &b.fourcc == *first)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(*first)));
    if rest.is_empty() {
        found.body
    } else {
        find(found.body, rest)
    }
}

/// The big-endian `u16` at `at`.
pub fn u16_at(body: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(body[at..at + 2].try_into().unwrap())
}

/// The big-endian `u32` at `at`.
pub fn u32_at(body: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(body[at..at + 4].try_into().unwrap())
}
