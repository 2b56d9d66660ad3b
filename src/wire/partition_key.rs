//! The partition a partition key maps to: the service's hash, as the official .NET, Java, JS
//! and Python SDKs compute it client-side (`PartitionResolver`), used by both our client (the
//! buffered producer assigns keyed events itself) and the emulator (routing keyed events sent
//! to the hub), so that one key lands in one partition whichever side picked it.
//!
//! The hash is Bob Jenkins' lookup3 `hashlittle2` over the key's UTF-8 bytes with both seeds
//! 0; the two 32-bit results are XORed and truncated to a signed 16-bit value. The partition
//! is `|hash % count|` with a remainder that takes the dividend's sign (C#'s `%`, and Rust's).

/// The service's 16-bit hash of a partition key (`GenerateHashCode` in the .NET SDK); an empty
/// key hashes to 0.
pub fn hash_code(key: &str) -> i16 {
    if key.is_empty() {
        return 0;
    }
    let (c, b) = hashlittle2(key.as_bytes());
    // Truncation to 16 bits is the service's rule, not an accident.
    (c ^ b) as u16 as i16
}

/// The index (0-based, into the hub's partition list) that `key` maps to among
/// `partition_count` partitions; 0 when there are none.
pub fn partition_index(key: &str, partition_count: u32) -> u32 {
    if partition_count == 0 {
        return 0;
    }
    let count = i64::from(partition_count);
    (i64::from(hash_code(key)) % count).unsigned_abs() as u32
}

fn word(bytes: &[u8]) -> u32 {
    // Little-endian with the missing high bytes zero, which is lookup3's tail rule.
    bytes
        .iter()
        .take(4)
        .enumerate()
        .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (8 * i))
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(14));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(11));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(25));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(16));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(4));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(14));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(24));
}

/// lookup3 `hashlittle2` with both seeds 0: the primary (`c`) and secondary (`b`) results.
fn hashlittle2(data: &[u8]) -> (u32, u32) {
    // lookup3 adds the length as a 32-bit value; keys over 4 GiB wrap as they would there.
    let init = 0xdead_beef_u32.wrapping_add(data.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut rest = data;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return (c, b);
    }
    a = a.wrapping_add(word(rest));
    b = b.wrapping_add(word(rest.get(4..).unwrap_or_default()));
    c = c.wrapping_add(word(rest.get(8..).unwrap_or_default()));
    final_mix(&mut a, &mut b, &mut c);
    (c, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vectors of the official SDKs' `PartitionResolver` tests (.NET
    /// `PartitionHashTestCases`, repeated by the Java and Python suites).
    const SDK_VECTORS: &[(&str, i16)] = &[
        ("7", -15263),
        ("131", 30562),
        ("7149583486996073602", 12977),
        ("FWfAT", -22341),
        ("sOdeEAsyQoEuEFPGerWO", -6503),
        (
            "FAyAIctPeCgmiwLKbJcyswoHglHVjQdvtBowLACDNORsYvOcLddNJYDmhAVkbyLOrHTKLneMNcbgWVlasVywOByANjs",
            5226,
        ),
        (
            "1XYM6!(7(lF5wq4k4m*e$Nc!1ezLJv*1YK1Y-C^*&B$O)lq^iUkG(TNzXG;Zi#z2Og*Qq0#^*k):vXh$3,C7We7%W0meJ;b3,rQCg^J;^twXgs5E$$hWKxqp",
            23950,
        ),
        (
            "E(x;RRIaQcJs*P;D&jTPau-4K04oqr:lF6Z):ERpo&;9040qyV@G1_c9mgOs-8_8/10Fwa-7b7-yP!T-!IH&968)FWuI;(^g$2fN;)HJ^^yTn:",
            -29304,
        ),
        ("!c*_!I@1^c", 15372),
        ("p4*!jioeO/z-!-;w:dh", -3104),
        ("$0cb", 26269),
        ("-4189260826195535198", 453),
    ];

    #[test]
    fn matches_the_sdks_published_hashes() {
        for &(key, want) in SDK_VECTORS {
            assert_eq!(hash_code(key), want, "hash of {key:?}");
        }
    }

    #[test]
    fn empty_key_hashes_to_zero() {
        assert_eq!(hash_code(""), 0);
        assert_eq!(partition_index("", 4), 0);
    }

    #[test]
    fn negative_hashes_use_the_truncating_remainder() {
        // -15263 % 4 == -3 in C#: partition 3 (a flooring modulo would say 1).
        assert_eq!(partition_index("7", 4), 3);
        assert_eq!(partition_index("131", 4), 30562 % 4);
        assert_eq!(partition_index("7", 32), 15263 % 32);
        assert_eq!(partition_index("7", 0), 0);
    }

    #[test]
    fn every_tail_length_is_in_range() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..key.len() {
            assert!(partition_index(&key[..n], 7) < 7);
        }
    }

    proptest::proptest! {
        /// Any key maps into the hub, the same way every time, by the truncating rule.
        #[test]
        fn any_key_maps_into_the_hub(key in ".{0,80}", count in 1u32..=1024) {
            let p = partition_index(&key, count);
            proptest::prop_assert!(p < count);
            proptest::prop_assert_eq!(p, partition_index(&key.clone(), count));
            let h = i64::from(hash_code(&key));
            proptest::prop_assert_eq!(i64::from(p), (h % i64::from(count)).abs());
        }
    }
}
