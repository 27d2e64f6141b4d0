//! A small deterministic mutator in libFuzzer's manner: bit flips, byte
//! sets, inserts, deletes, copies, splices of two corpus inputs and
//! dictionary tokens, stacked a few at a time. Seeded, so a failure
//! comes back on every run.

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that mean something to most of the formats.
const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xff\"\\{}[],:-+.eE0129\n\r\t ;=()@?/_";

pub struct Mutator<'a> {
    pub corpus: &'a [Vec<u8>],
    pub dictionary: &'a [Vec<u8>],
    pub max_len: usize,
}

impl Mutator<'_> {
    /// A mutant of `input`: one to four mutations stacked.
    pub fn mutate(&self, rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            self.once(rng, &mut out);
        }
        out.truncate(self.max_len);
        out
    }

    fn once(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        let len = out.len();
        match rng.below(12) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = from + 1 + rng.below((len - from).min(64));
                out.drain(from..to.min(len));
            }
            4 if len > 0 => {
                // Copy a chunk elsewhere: repeats structure.
                let from = rng.below(len);
                let to = (from + 1 + rng.below(128)).min(len);
                let chunk = out[from..to].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, chunk);
            }
            5 if !self.corpus.is_empty() => {
                // Splice: a prefix of this input, a suffix of another.
                let other = &self.corpus[rng.below(self.corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 | 7 if !self.dictionary.is_empty() => {
                let token = &self.dictionary[rng.below(self.dictionary.len())];
                let at = rng.below(len + 1);
                if rng.below(2) == 0 || at == len {
                    out.splice(at..at, token.iter().copied());
                } else {
                    let end = (at + token.len()).min(len);
                    out.splice(at..end, token.iter().copied());
                }
            }
            8 if len > 0 => {
                // Nudge a digit, or make a number huge.
                let digits: Vec<usize> = (0..len).filter(|&i| out[i].is_ascii_digit()).collect();
                if let Some(&i) = digits.get(rng.below(digits.len())) {
                    match rng.below(3) {
                        0 => out[i] = b'0' + ((out[i] - b'0' + 1) % 10),
                        1 => out[i] = b'0' + ((out[i] - b'0' + 9) % 10),
                        _ => {
                            let big: &[u8] = [
                                &b"18446744073709551616"[..],
                                b"9007199254740993",
                                b"1e-400",
                                b"1e400",
                                b"-0",
                                b"99999999999999999999999999999999",
                            ][rng.below(6)];
                            out.splice(i..i + 1, big.iter().copied());
                        }
                    }
                }
            }
            9 => {
                // Deep nesting around a point.
                let at = rng.below(len + 1);
                let depth = 1 + rng.below(140);
                let (open, close) = if rng.below(2) == 0 {
                    (b'[', b']')
                } else {
                    (b'{', b'}')
                };
                let mut wrap = Vec::with_capacity(depth * 6);
                for _ in 0..depth {
                    if open == b'{' {
                        wrap.extend_from_slice(b"{\"a\":");
                    } else {
                        wrap.push(open);
                    }
                }
                out.splice(at..at, wrap);
                let end = out.len();
                let at = at + rng.below(end - at + 1);
                out.splice(at..at, std::iter::repeat_n(close, depth));
            }
            10 if len > 0 => out.truncate(rng.below(len)),
            _ => {
                // Swap two bytes.
                if len > 1 {
                    let (i, j) = (rng.below(len), rng.below(len));
                    out.swap(i, j);
                }
            }
        }
    }
}

/// A libFuzzer dictionary (`name="token"` or `"token"` lines, `\\`, `\"`
/// and `\xNN` escapes; `#` comments).
pub fn parse_dictionary(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(start) = line.find('"') else {
            continue;
        };
        let Some(quoted) = line[start + 1..].strip_suffix('"') else {
            continue;
        };
        let mut token = Vec::new();
        let bytes = quoted.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                match bytes[i + 1] {
                    b'x' if i + 3 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap_or("");
                        if let Ok(b) = u8::from_str_radix(hex, 16) {
                            token.push(b);
                        }
                        i += 4;
                    }
                    other => {
                        token.push(other);
                        i += 2;
                    }
                }
            } else {
                token.push(bytes[i]);
                i += 1;
            }
        }
        out.push(token);
    }
    out
}
