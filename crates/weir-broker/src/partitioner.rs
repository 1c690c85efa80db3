//! Kafka's default keyed partitioner (murmur2), bit for bit as the Java
//! client computes it, so a keyed record lands in the same partition
//! whether a Kafka client or Weir picks it (feature B2).
//!
//! The Java client hashes a non-null serialized key with `Utils.murmur2` and
//! takes `toPositive(hash) % numPartitions`. A null key is not hashed (the
//! client uses sticky partitioning instead), so choosing between the two is the
//! caller's job; an empty key is a real key and is hashed like any other.

/// Seed Kafka passes to murmur2; any other seed would move every key.
const SEED: u32 = 0x9747_b28c;
/// Murmur2 multiplier.
const M: u32 = 0x5bd1_e995;
/// Murmur2 shift for mixing each 4-byte word.
const R: u32 = 24;

/// Kafka's `Utils.murmur2`: the 32-bit MurmurHash2 of `data`, returned as the
/// signed `int` Java returns.
///
/// All arithmetic is on `u32` with wrapping multiplies, so plain `>>` is
/// Java's unsigned `>>>` and the result matches Java's overflowing `int` math.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java mixes in `data.length`, an int; keys never reach 2^31 bytes, so the
    // truncating cast never changes the value in practice.
    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        h = h.wrapping_mul(M) ^ mix_word(k);
    }
    finalize(mix_tail(h, words.remainder())).cast_signed()
}

/// Kafka's default partition for a non-null `key`:
/// `toPositive(murmur2(key)) % n_partitions`.
///
/// # Panics
///
/// Panics if `n_partitions` is 0: a topic has at least one partition, and a
/// zero here is a caller bug, not a key to route.
pub fn partition_for_key(key: &[u8], n_partitions: u32) -> u32 {
    assert!(n_partitions > 0, "partition count must be positive");
    to_positive(murmur2(key)) % n_partitions
}

/// Kafka's `Utils.toPositive`: clears the sign bit rather than taking `abs`,
/// so `i32::MIN` maps to 0 instead of overflowing.
fn to_positive(x: i32) -> u32 {
    x.cast_unsigned() & 0x7fff_ffff
}

/// Scrambles one little-endian 4-byte word before it is folded into the hash.
fn mix_word(k: u32) -> u32 {
    let k = k.wrapping_mul(M);
    (k ^ (k >> R)).wrapping_mul(M)
}

/// Folds in the last `data.len() % 4` bytes.
///
/// Java does this with a fall-through `switch (length % 4)`: case 3 XORs byte
/// 2 at bit 16 and falls into case 2, which XORs byte 1 at bit 8 and falls
/// into case 1, which XORs byte 0 and multiplies once. XORing each present
/// byte at `8 * index`, then multiplying once, is the same thing; an empty
/// tail matches no case and skips the multiply.
fn mix_tail(h: u32, tail: &[u8]) -> u32 {
    if tail.is_empty() {
        return h;
    }
    let folded = tail
        .iter()
        .enumerate()
        .fold(h, |acc, (i, &byte)| acc ^ (u32::from(byte) << (8 * i)));
    folded.wrapping_mul(M)
}

/// Final avalanche, so the last bytes mixed in affect every output bit.
fn finalize(mut h: u32) -> u32 {
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own `UtilsTest.testMurmur2` (apache/kafka,
    /// clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    #[test]
    fn matches_kafka_utils_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    /// One key per tail length (1, 2, 3, then 0 and 1 after a full word), so
    /// every case of Java's fall-through switch is pinned. Values from akka's
    /// `Murmur2Spec`, which took them from Kafka's Java implementation.
    #[test]
    fn covers_every_tail_length() {
        let cases: [(&[u8], i32); 5] = [
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    /// librdkafka's `unittest_murmurhashneutral2` pins `toPositive(murmur2)`
    /// against the Java client, which is what partitioning actually uses.
    #[test]
    fn matches_librdkafka_positive_vectors() {
        let cases: [(&[u8], u32); 3] = [
            (b"kafka", 1_348_980_580),
            (b"amqp", 767_747_138),
            (b"giberish123456789", 257_239_820),
        ];
        for (key, want) in cases {
            assert_eq!(to_positive(murmur2(key)), want);
        }
    }

    /// The empty key takes only the seed and the final mix. No published
    /// vector was found; the value comes from an independent port of the
    /// Java code and is checked here so the no-words, no-tail path stays put.
    #[test]
    fn hashes_empty_key() {
        assert_eq!(murmur2(b""), 275_646_681);
        assert_eq!(partition_for_key(b"", 6), 3);
    }

    /// Partitions for a 6-partition topic, from the published hashes above
    /// through `toPositive(h) % 6`.
    #[test]
    fn partitions_keys_like_kafka_for_six_partitions() {
        let cases: [(&[u8], u32); 7] = [
            (b"21", 0),
            (b"foobar", 0),
            (b"abc", 3),
            (b"a-little-bit-long-string", 2),
            (b"a-little-bit-longer-string", 5),
            (b"kafka", 4),
            (b"amqp", 2),
        ];
        for (key, want) in cases {
            assert_eq!(
                partition_for_key(key, 6),
                want,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn single_partition_takes_every_key() {
        for key in [&b""[..], b"a", b"foobar", b"kafka"] {
            assert_eq!(partition_for_key(key, 1), 0);
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(i32::MAX), 0x7fff_ffff);
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
    }

    #[test]
    #[should_panic(expected = "partition count must be positive")]
    fn zero_partitions_panics() {
        partition_for_key(b"key", 0);
    }
}
