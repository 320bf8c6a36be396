//! The CSPRNG for getrandom(2), /dev/random and AT_RANDOM when the CPU has
//! no RDRAND: RustCrypto's ChaCha20 generator (`rand_chacha`), seeded from
//! the host's entropy in `BootInfo`, with fast key erasure on every reseed.
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// The library OS's generator.
pub struct Csprng(ChaCha20Rng);

impl Csprng {
    /// A generator keyed by `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Csprng(ChaCha20Rng::from_seed(seed))
    }

    /// Mixes more entropy in: the next key is fresh output XOR `extra`, so
    /// the old key cannot be recovered from the new state.
    pub fn reseed(&mut self, extra: &[u8]) {
        let mut key = [0u8; 32];
        self.0.fill_bytes(&mut key);
        for (i, b) in extra.iter().enumerate() {
            key[i % 32] ^= b;
        }
        self.0 = ChaCha20Rng::from_seed(key);
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_chacha20_as_in_rfc8439() {
        // RFC 8439 A.1, test vector 1: zero key, zero nonce, counter 0.
        let mut r = Csprng::new([0; 32]);
        let mut b = [0u8; 64];
        r.fill(&mut b);
        assert_eq!(&b[..8], &[0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90]);
        assert_eq!(
            &b[48..56],
            &[0x6a, 0x43, 0xb8, 0xf4, 0x15, 0x18, 0xa1, 0x1c]
        );
        assert_eq!(&b[56..], &[0xc3, 0x87, 0xb6, 0x69, 0xb2, 0xee, 0x65, 0x86]);
    }

    #[test]
    fn outputs_differ_and_a_reseed_changes_the_stream() {
        let mut r = Csprng::new([3; 32]);
        let mut a = [0u8; 40];
        let mut b = [0u8; 40];
        r.fill(&mut a);
        r.fill(&mut b);
        assert_ne!(a, b);
        let mut same = Csprng::new([3; 32]);
        let mut c = [0u8; 40];
        same.fill(&mut c);
        assert_eq!(a, c, "the same seed gives the same stream");
        same.reseed(&[1, 2, 3]);
        let mut d = [0u8; 40];
        same.fill(&mut d);
        assert_ne!(b, d, "a reseed leaves the old stream");
    }
}
