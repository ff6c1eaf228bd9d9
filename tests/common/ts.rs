//! Synthetic MPEG-TS for byte-level checks: every 188-byte packet carries the tag of the
//! source that made it and a running counter, so a test can tell which source a byte
//! came from, in which order, and whether packets stayed whole across a splice.

pub const PACKET: usize = 188;

/// Packet number `n` of the source tagged `tag`.
pub fn packet(tag: u8, n: u32) -> [u8; PACKET] {
    let mut p = [0xffu8; PACKET];
    p[0] = 0x47;
    p[1] = 0x01;
    p[2] = 0x00;
    p[3] = 0x10 | (n & 0x0f) as u8;
    p[4] = tag;
    p[5..9].copy_from_slice(&n.to_be_bytes());
    p
}

/// The byte at `offset` of the endless stream of source `tag`.
pub fn byte_at(tag: u8, offset: u64) -> u8 {
    let n = (offset / PACKET as u64) as u32;
    packet(tag, n)[(offset % PACKET as u64) as usize]
}

/// Appends `n` bytes of the stream of source `tag` starting at `offset`, a packet at a
/// time (much cheaper than [`byte_at`] per byte).
pub fn extend_stream(out: &mut Vec<u8>, tag: u8, offset: u64, n: u64) {
    let mut at = offset;
    let end = offset + n;
    while at < end {
        let number = (at / PACKET as u64) as u32;
        let within = (at % PACKET as u64) as usize;
        let take = ((end - at) as usize).min(PACKET - within);
        out.extend_from_slice(&packet(tag, number)[within..within + take]);
        at += take as u64;
    }
}

/// Reads back `(tag, counter)` of each whole packet; `Err` names the first offset that
/// is not a packet start.
pub fn packets(data: &[u8]) -> Result<Vec<(u8, u32)>, usize> {
    data.chunks(PACKET)
        .enumerate()
        .filter(|(_, p)| p.len() == PACKET)
        .map(|(i, p)| {
            if p[0] != 0x47 {
                return Err(i * PACKET);
            }
            let counter = u32::from_be_bytes([p[5], p[6], p[7], p[8]]);
            Ok((p[4], counter))
        })
        .collect()
}
