//! A ChaCha20-based CSPRNG for getrandom(2) and AT_RANDOM when the CPU has no
//! RDRAND: seeded from the host's entropy in `BootInfo`.

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The ChaCha20 block function (RFC 8439 §2.3).
pub fn chacha20_block(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u8; 64] {
    let mut st = [0u32; 16];
    st[0..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        st[4 + i] =
            u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
    }
    st[12] = counter;
    for i in 0..3 {
        st[13 + i] = u32::from_le_bytes([
            nonce[4 * i],
            nonce[4 * i + 1],
            nonce[4 * i + 2],
            nonce[4 * i + 3],
        ]);
    }
    let mut w = st;
    for _ in 0..10 {
        quarter(&mut w, 0, 4, 8, 12);
        quarter(&mut w, 1, 5, 9, 13);
        quarter(&mut w, 2, 6, 10, 14);
        quarter(&mut w, 3, 7, 11, 15);
        quarter(&mut w, 0, 5, 10, 15);
        quarter(&mut w, 1, 6, 11, 12);
        quarter(&mut w, 2, 7, 8, 13);
        quarter(&mut w, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for i in 0..16 {
        out[4 * i..4 * i + 4].copy_from_slice(&w[i].wrapping_add(st[i]).to_le_bytes());
    }
    out
}

/// Fast-key-erasure generator: each refill produces a new key and output.
pub struct Csprng {
    key: [u8; 32],
    counter: u32,
}

impl Csprng {
    /// A generator keyed by `seed`.
    pub const fn new(seed: [u8; 32]) -> Self {
        Csprng {
            key: seed,
            counter: 0,
        }
    }

    /// Mixes more entropy into the key.
    pub fn reseed(&mut self, extra: &[u8]) {
        for (i, b) in extra.iter().enumerate() {
            self.key[i % 32] ^= b;
        }
        self.rekey();
    }

    fn rekey(&mut self) {
        let b = chacha20_block(&self.key, self.counter, &[0; 12]);
        self.counter = self.counter.wrapping_add(1);
        self.key.copy_from_slice(&b[..32]);
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            let b = chacha20_block(&self.key, self.counter, &[1; 12]);
            self.counter = self.counter.wrapping_add(1);
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.rekey();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8439_block_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let nonce = [0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let b = chacha20_block(&key, 1, &nonce);
        assert_eq!(&b[..8], &[0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15]);
        assert_eq!(&b[56..], &[0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e]);
    }

    #[test]
    fn outputs_differ() {
        let mut r = Csprng::new([3; 32]);
        let mut a = [0u8; 40];
        let mut b = [0u8; 40];
        r.fill(&mut a);
        r.fill(&mut b);
        assert_ne!(a, b);
    }
}
