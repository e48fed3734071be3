//! Deterministic random streams: one independent generator per purpose and
//! coordinates, so the data does not depend on generation order or threads,
//! and the dirt drawn at one rate leaves the clean data untouched.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a random stream is used for.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Person = 1,
    Identity = 2,
    Transactions = 3,
    Devices = 4,
    Social = 5,
    Offer = 6,
    Update = 7,
    Dirt = 8,
}

/// SplitMix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for `(seed, stream, a, b)`.
pub fn rng(seed: u64, stream: Stream, a: u64, b: u64) -> ChaCha8Rng {
    let key = mix(mix(mix(seed ^ mix(stream as u64)) ^ a) ^ b.rotate_left(17));
    ChaCha8Rng::seed_from_u64(key)
}
