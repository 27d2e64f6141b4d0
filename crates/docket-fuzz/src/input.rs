//! Reading structured values off the front of a fuzz input. Running out
//! of bytes reads zeros, so every input means something.

pub(crate) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// Little-endian, from up to 8 bytes.
    pub(crate) fn u64(&mut self) -> u64 {
        let n = self.rest.len().min(8);
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        u64::from_le_bytes(buf)
    }

    /// A number that is small most of the time (one byte) and anywhere in
    /// `u64` otherwise, so that proofs see both real tree sizes and the
    /// edges of the integer range.
    pub(crate) fn size(&mut self) -> u64 {
        match self.u8() {
            0xff => self.u64(),
            0xfe => u64::MAX - u64::from(self.u8()),
            b => u64::from(b),
        }
    }

    pub(crate) fn hash(&mut self) -> docket_core::Hash {
        let n = self.rest.len().min(32);
        let mut buf = [0u8; 32];
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        docket_core::Hash(buf)
    }

    /// The rest, as 32-byte hashes (a short last one padded with zeros).
    pub(crate) fn hashes(&mut self) -> Vec<docket_core::Hash> {
        let mut out = Vec::with_capacity(self.rest.len().div_ceil(32));
        while !self.rest.is_empty() {
            out.push(self.hash());
        }
        out
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// A small deterministic generator (splitmix64) for choices derived from
/// an input, such as where to split a stream.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for choosing cut points; `n > 0`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
