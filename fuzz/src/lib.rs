//! Helpers shared by the fuzz targets.

/// Cuts `stream` into pieces at up to `count % 9` points picked by `cuts` (each byte a position
/// in 256ths of the stream), in order: the same bytes as the fuzzer would see them arrive in
/// separate reads.
pub fn split_at_cuts<'a>(stream: &'a [u8], cuts: &[u8], count: u8) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .take(usize::from(count % 9))
        .map(|&c| (usize::from(c) * stream.len()) / 256)
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for point in points {
        pieces.push(&stream[start..point]);
        start = point;
    }
    pieces.push(&stream[start..]);
    pieces
}
