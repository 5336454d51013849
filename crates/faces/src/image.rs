//! Decoding what Rekognition accepts (JPEG or PNG bytes) into RGB, bounded in memory.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

/// The largest image [`decode_image`] accepts, in pixels (width times height): 36 Mpx, e.g.
/// 7360x4912, about 108 MB as RGB. Rekognition caps the bytes (5 MB inline), not the pixels, so
/// a bound of our own keeps a small, highly compressed file from taking gigabytes.
pub const MAX_PIXELS: u64 = 36_000_000;

/// The most memory the decoder may allocate for one image (the decoded pixels plus its
/// buffers; a 16-bit RGBA PNG takes 8 bytes a pixel before conversion).
const MAX_ALLOC_BYTES: u64 = 512 * 1024 * 1024;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Neither JPEG nor PNG (Rekognition's `InvalidImageFormatException`).
    #[error("unsupported image format: only JPEG and PNG are accepted")]
    Unsupported,
    /// A JPEG or PNG that does not decode: truncated or corrupt (also
    /// `InvalidImageFormatException`).
    #[error("invalid {format} image: {message}")]
    Invalid {
        /// `JPEG` or `PNG`.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// Width times height over [`MAX_PIXELS`], or the decoder would need more memory than
    /// allowed (Rekognition's `ImageTooLargeException`).
    #[error("image too large: {width}x{height} pixels (at most {max_pixels} pixels)")]
    TooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// [`MAX_PIXELS`].
        max_pixels: u64,
    },
}

/// Decodes JPEG or PNG bytes into 8-bit RGB (grey and alpha are converted; alpha is dropped).
/// The header's dimensions are checked against [`MAX_PIXELS`] before any pixel is decoded, and
/// the decoder runs under an allocation limit.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => ImageFormat::Jpeg,
        Ok(ImageFormat::Png) => ImageFormat::Png,
        _ => return Err(ImageError::Unsupported),
    };
    let name = if format == ImageFormat::Jpeg {
        "JPEG"
    } else {
        "PNG"
    };
    let invalid = |e: image::ImageError| ImageError::Invalid {
        format: name,
        message: e.to_string(),
    };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(invalid)?;
    let too_large = ImageError::TooLarge {
        width,
        height,
        max_pixels: MAX_PIXELS,
    };
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(too_large);
    }
    if width == 0 || height == 0 {
        return Err(ImageError::Invalid {
            format: name,
            message: format!("empty image ({width}x{height})"),
        });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_ALLOC_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    match reader.decode() {
        Ok(decoded) => Ok(decoded.into_rgb8()),
        Err(image::ImageError::Limits(_)) => Err(too_large),
        Err(e) => Err(invalid(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_png_exactly() {
        let img = decode_image(&png(5, 3)).unwrap();
        assert_eq!(img.dimensions(), (5, 3));
        assert_eq!(img.get_pixel(4, 2).0, [4, 2, 7]);
    }

    #[test]
    fn rejects_other_formats() {
        assert!(matches!(
            decode_image(b"GIF89a......"),
            Err(ImageError::Unsupported)
        ));
        assert!(matches!(decode_image(b""), Err(ImageError::Unsupported)));
        assert!(matches!(
            decode_image(b"hello world, not an image"),
            Err(ImageError::Unsupported)
        ));
    }

    #[test]
    fn rejects_huge_dimensions_from_the_header_before_decoding() {
        // A valid PNG whose IHDR claims 100000 x 100000 pixels: rejected from the header alone.
        let mut bytes = png(1, 1);
        // IHDR data starts at byte 16: width (4 bytes BE), height (4 bytes BE); then its CRC.
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        match decode_image(&bytes) {
            Err(ImageError::TooLarge { width, height, .. }) => {
                assert_eq!((width, height), (100_000, 100_000))
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn truncated_png_is_invalid() {
        let bytes = png(64, 64);
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            decode_image(cut),
            Err(ImageError::Invalid { format: "PNG", .. })
        ));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
