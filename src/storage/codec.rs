//! The record-batch compression codecs Kafka defines (attribute bits 0..2): gzip, snappy
//! (xerial framing, as Kafka's Java client writes it, or raw), lz4 (frame format) and zstd.
//! Decompression is bounded: a batch that would inflate past the caller's limit is refused
//! before the memory is spent, so a decompression bomb costs at most `limit` bytes.
//! Compression uses the topic's `compression.<codec>.level`, or Kafka's defaults (gzip 6,
//! lz4 9, zstd 3), as a Kafka broker recompressing for `compression.type` does.

use std::io::{Read, Write};

/// Codec ids of the batch attributes.
pub const CODEC_NONE: u8 = 0;
pub const CODEC_GZIP: u8 = 1;
pub const CODEC_SNAPPY: u8 = 2;
pub const CODEC_LZ4: u8 = 3;
pub const CODEC_ZSTD: u8 = 4;

/// Kafka's default `compression.gzip.level` (java.util.zip's default, 6).
const GZIP_LEVEL: u32 = 6;
/// Kafka's default `compression.lz4.level`.
const LZ4_LEVEL: u32 = 9;
/// Kafka's default `compression.zstd.level`.
const ZSTD_LEVEL: i32 = 3;
/// xerial snappy-java's stream header: magic, version 1, compatible version 1.
const SNAPPY_XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's block size (what Kafka's producer and broker write).
const SNAPPY_BLOCK_BYTES: usize = 32 * 1024;
/// Largest zstd window (log2) a frame may ask the decoder to allocate: 32 MiB. A window
/// larger than the decompressed-size limit is never needed by an honest producer.
const ZSTD_MAX_WINDOW_LOG: u32 = 25;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
    #[error("decompressed records exceed the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{codec} data is corrupt: {reason}")]
    Corrupt { codec: &'static str, reason: String },
}

pub fn codec_name(codec: u8) -> &'static str {
    match codec {
        CODEC_NONE => "none",
        CODEC_GZIP => "gzip",
        CODEC_SNAPPY => "snappy",
        CODEC_LZ4 => "lz4",
        CODEC_ZSTD => "zstd",
        _ => "unknown",
    }
}

fn corrupt(codec: u8, reason: impl ToString) -> CodecError {
    CodecError::Corrupt {
        codec: codec_name(codec),
        reason: reason.to_string(),
    }
}

/// Decompresses `data` (the records section of a batch) into `out`, refusing to produce more
/// than `limit` bytes. `out` is cleared first.
pub fn decompress(
    codec: u8,
    data: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    out.clear();
    match codec {
        CODEC_NONE => {
            if data.len() > limit {
                return Err(CodecError::TooLarge { limit });
            }
            out.extend_from_slice(data);
            Ok(())
        }
        CODEC_GZIP => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), limit, out),
        CODEC_SNAPPY => snappy_decompress(data, limit, out),
        CODEC_LZ4 => {
            let decoder = lz4::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, limit, out)
        }
        CODEC_ZSTD => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            decoder
                .window_log_max(ZSTD_MAX_WINDOW_LOG)
                .map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, limit, out)
        }
        other => Err(CodecError::UnknownCodec(other)),
    }
}

/// Reads a decoder to its end, but never more than `limit` bytes: one byte past the limit
/// is proof enough that the batch is too large.
fn read_bounded(
    codec: u8,
    decoder: impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(())
}

/// Snappy as Kafka clients write it: xerial framing (header, then blocks each prefixed with
/// its compressed length), or one raw snappy block (librdkafka before xerial support). Each
/// block's decompressed length is read from its preamble and checked before allocating.
fn snappy_decompress(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let codec = CODEC_SNAPPY;
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<(), CodecError> {
        let len = snap::raw::decompress_len(compressed).map_err(|e| corrupt(codec, e))?;
        let start = out.len();
        if len > limit.saturating_sub(start) {
            return Err(CodecError::TooLarge { limit });
        }
        out.resize(start + len, 0);
        let written = decoder
            .decompress(compressed, &mut out[start..])
            .map_err(|e| corrupt(codec, e))?;
        out.truncate(start + written);
        Ok(())
    };
    // Kafka checks only the 8-byte magic; versions differ between snappy-java releases.
    if !data.starts_with(&SNAPPY_XERIAL_HEADER[..8]) {
        return block(data, out);
    }
    let mut rest = data
        .get(SNAPPY_XERIAL_HEADER.len()..)
        .ok_or_else(|| corrupt(codec, "truncated xerial header"))?;
    while !rest.is_empty() {
        let (len_bytes, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(codec, "truncated block length"))?;
        let len = u32::from_be_bytes(*len_bytes) as usize;
        if len > tail.len() {
            return Err(corrupt(codec, "block runs past the end of the batch"));
        }
        let (compressed, after) = tail.split_at(len);
        block(compressed, out)?;
        rest = after;
    }
    Ok(())
}

/// Compresses `data` with `codec` at `level` (the topic's `compression.<codec>.level`; None,
/// or gzip's -1, is Kafka's default), appending the result to `out`.
pub fn compress(
    codec: u8,
    level: Option<i32>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    match codec {
        CODEC_NONE => out.extend_from_slice(data),
        CODEC_GZIP => {
            let mut encoder = flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(match level {
                    Some(l @ 1..=9) => l as u32,
                    _ => GZIP_LEVEL,
                }),
            );
            encoder.write_all(data).map_err(|e| corrupt(codec, e))?;
            encoder.finish().map_err(|e| corrupt(codec, e))?;
        }
        CODEC_SNAPPY => {
            out.extend_from_slice(SNAPPY_XERIAL_HEADER);
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(SNAPPY_BLOCK_BYTES) {
                let length_at = out.len();
                out.extend_from_slice(&[0; 4]);
                let start = out.len();
                out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
                let written = encoder
                    .compress(chunk, &mut out[start..])
                    .map_err(|e| corrupt(codec, e))?;
                out.truncate(start + written);
                out[length_at..start].copy_from_slice(&(written as u32).to_be_bytes());
            }
        }
        CODEC_LZ4 => {
            // Kafka's lz4 framing: 64 KiB independent blocks, no block or content checksum.
            let mut encoder = lz4::EncoderBuilder::new()
                .level(level.map_or(LZ4_LEVEL, |l| l.clamp(1, 17) as u32))
                .checksum(lz4::ContentChecksum::NoChecksum)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .build(out)
                .map_err(|e| corrupt(codec, e))?;
            encoder.write_all(data).map_err(|e| corrupt(codec, e))?;
            let (_, finished) = encoder.finish();
            finished.map_err(|e| corrupt(codec, e))?;
        }
        CODEC_ZSTD => {
            let mut encoder = zstd::stream::write::Encoder::new(out, level.unwrap_or(ZSTD_LEVEL))
                .map_err(|e| corrupt(codec, e))?;
            // The frame states its size, so decoders (ours included) size their window to it.
            encoder
                .set_pledged_src_size(Some(data.len() as u64))
                .map_err(|e| corrupt(codec, e))?;
            encoder.write_all(data).map_err(|e| corrupt(codec, e))?;
            encoder.finish().map_err(|e| corrupt(codec, e))?;
        }
        other => return Err(CodecError::UnknownCodec(other)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_topic_level_is_the_one_used() {
        // Text that compresses much better at gzip 9 or zstd 19 than at gzip 1 or zstd 1.
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("key-{} value-{} ", i % 977, i % 131).into_bytes())
            .collect();
        for (codec, fast, best) in [(CODEC_GZIP, 1, 9), (CODEC_ZSTD, 1, 19)] {
            let (mut at_fast, mut at_best) = (Vec::new(), Vec::new());
            compress(codec, Some(fast), &data, &mut at_fast).unwrap();
            compress(codec, Some(best), &data, &mut at_best).unwrap();
            assert!(
                at_best.len() < at_fast.len(),
                "codec {codec}: level {best} gave {} bytes, level {fast} {}",
                at_best.len(),
                at_fast.len()
            );
        }
    }
    use super::*;

    const ALL: [u8; 5] = [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 977) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for len in [0, 1, 1000, 100_000] {
                let data = sample(len);
                let mut packed = Vec::new();
                compress(codec, None, &data, &mut packed).unwrap();
                let mut unpacked = Vec::new();
                decompress(codec, &packed, len, &mut unpacked).unwrap();
                assert_eq!(unpacked, data, "{} at {len} bytes", codec_name(codec));
            }
        }
    }

    #[test]
    fn inflating_past_the_limit_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        for codec in ALL {
            let mut packed = Vec::new();
            compress(codec, None, &zeros, &mut packed).unwrap();
            let mut out = Vec::new();
            assert_eq!(
                decompress(codec, &packed, 4096, &mut out),
                Err(CodecError::TooLarge { limit: 4096 }),
                "{}",
                codec_name(codec)
            );
            assert!(out.len() <= 4097, "{}", codec_name(codec));
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for codec in [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD] {
            let mut out = Vec::new();
            let err = decompress(codec, b"\x82SNAPPY\0not really", 1 << 20, &mut out);
            assert!(
                matches!(err, Err(CodecError::Corrupt { .. })),
                "{codec}: {err:?}"
            );
        }
        let mut out = Vec::new();
        assert_eq!(
            decompress(7, b"x", 10, &mut out),
            Err(CodecError::UnknownCodec(7))
        );
    }
}
