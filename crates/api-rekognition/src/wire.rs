//! Rekognition's wire shapes: the inputs (serde, unknown members ignored as the SDKs expect),
//! the service model's validation rules, and the JSON of faces, boxes and landmarks.
//!
//! Geometry is as Rekognition reports it: `BoundingBox` and landmark `X`/`Y` as ratios of the
//! image's width and height (0-1, origin top left), `Confidence` 0-100, `Pose` in degrees,
//! `Quality` 0-100. FaceIds and ImageIds are lower-case UUIDs.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_api_common::PageTokens;
use vigil_faces::{DetectedFace, Rect};

use super::collections::FaceMeta;
use super::error::{RekResult, RekognitionError};

/// `Image`: inline bytes (base64 on the wire) or an S3 object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInput {
    /// Base64 of the JPEG or PNG.
    pub bytes: Option<String>,
    /// An S3 object, which Vigil cannot read.
    pub s3_object: Option<Value>,
}

impl ImageInput {
    /// The image's bytes. `member` names the input for messages (`image`, `sourceImage`).
    pub fn bytes(&self, member: &str) -> RekResult<Vec<u8>> {
        if self.s3_object.is_some() {
            return Err(RekognitionError::InvalidS3ObjectException(format!(
                "Vigil has no S3: {member}.S3Object cannot be read. Pass the image as \
                 {member}.Bytes (base64 of a JPEG or PNG of at most 5 MB)."
            )));
        }
        let Some(b64) = &self.bytes else {
            return Err(RekognitionError::invalid(format!(
                "{member} must have Bytes (S3Object is not supported by Vigil)."
            )));
        };
        if b64.len() > super::engine::MAX_IMAGE_BYTES.div_ceil(3) * 4 + 4 {
            return Err(RekognitionError::ImageTooLargeException(format!(
                "Image size is too large: {member}.Bytes holds more than {} bytes.",
                super::engine::MAX_IMAGE_BYTES
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| {
                RekognitionError::SerializationException(format!(
                    "{member}.Bytes is not valid base64: {e}"
                ))
            })?;
        if bytes.is_empty() {
            return Err(RekognitionError::validation(
                "",
                &format!("{member}.bytes"),
                "Member must have length greater than or equal to 1",
            ));
        }
        Ok(bytes)
    }
}

/// An image member that is required.
pub fn required_image<'a>(
    image: &'a Option<ImageInput>,
    member: &str,
) -> RekResult<&'a ImageInput> {
    image
        .as_ref()
        .ok_or_else(|| RekognitionError::validation("null", member, "Member must not be null"))
}

/// `CollectionId`: 1-255 of `[a-zA-Z0-9_.\-]`.
pub fn collection_id(id: &Option<String>) -> RekResult<&str> {
    let Some(id) = id else {
        return Err(RekognitionError::validation(
            "null",
            "collectionId",
            "Member must not be null",
        ));
    };
    check_id(
        id,
        "collectionId",
        255,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
        "[a-zA-Z0-9_.\\-]+",
    )?;
    Ok(id)
}

/// `ExternalImageId`: 1-255 of `[a-zA-Z0-9_.\-:]`.
pub fn external_image_id(id: &Option<String>) -> RekResult<Option<&str>> {
    match id {
        None => Ok(None),
        Some(id) => {
            check_id(
                id,
                "externalImageId",
                255,
                |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'),
                "[a-zA-Z0-9_.\\-:]+",
            )?;
            Ok(Some(id))
        }
    }
}

/// Checks a `UserId` (1 to 128 of `[a-zA-Z0-9_.\-:]`).
pub fn user_id(id: &Option<String>) -> RekResult<Option<&str>> {
    match id {
        None => Ok(None),
        Some(id) => {
            check_id(
                id,
                "userId",
                128,
                |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'),
                "[a-zA-Z0-9_.\\-:]+",
            )?;
            Ok(Some(id))
        }
    }
}

/// Checks a list of face ids' length (1 to 4096, the model's) and parses each.
pub fn face_ids(ids: &[String], member: &str) -> RekResult<Vec<u128>> {
    if ids.is_empty() || ids.len() > 4096 {
        return Err(RekognitionError::validation(
            &format!("[{} ids]", ids.len()),
            member,
            "Member must have length between 1 and 4096",
        ));
    }
    ids.iter().map(|s| parse_uuid(s, member)).collect()
}

/// Checks an identifier's length (1 to `max` characters) and characters, with the model's
/// messages.
pub fn check_id(
    id: &str,
    member: &str,
    max: usize,
    ok: impl Fn(char) -> bool,
    pattern: &str,
) -> RekResult<()> {
    if id.is_empty() {
        return Err(RekognitionError::validation(
            id,
            member,
            "Member must have length greater than or equal to 1",
        ));
    }
    if id.chars().count() > max {
        return Err(RekognitionError::validation(
            id,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !id.chars().all(ok) {
        return Err(RekognitionError::validation(
            id,
            member,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        ));
    }
    Ok(())
}

/// An integer member in `min..=max`, or `default`.
pub fn int_in(v: Option<i64>, member: &str, min: i64, max: i64, default: i64) -> RekResult<i64> {
    match v {
        None => Ok(default),
        Some(n) if n < min => Err(RekognitionError::validation(
            &n.to_string(),
            member,
            &format!("Member must have value greater than or equal to {min}"),
        )),
        Some(n) if n > max => Err(RekognitionError::validation(
            &n.to_string(),
            member,
            &format!("Member must have value less than or equal to {max}"),
        )),
        Some(n) => Ok(n),
    }
}

/// A `Percent` member (0-100), or `default`.
pub fn percent(v: Option<f64>, member: &str, default: f32) -> RekResult<f32> {
    match v {
        None => Ok(default),
        Some(p) if p.is_nan() || p < 0.0 => Err(RekognitionError::validation(
            &p.to_string(),
            member,
            "Member must have value greater than or equal to 0",
        )),
        Some(p) if p > 100.0 => Err(RekognitionError::validation(
            &p.to_string(),
            member,
            "Member must have value less than or equal to 100",
        )),
        Some(p) => Ok(p as f32),
    }
}

/// A FaceId (or ImageId): a lower-case UUID.
pub fn parse_uuid(s: &str, member: &str) -> RekResult<u128> {
    let bad = || {
        RekognitionError::validation(
            s,
            member,
            "Member must satisfy regular expression pattern: \
             [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        )
    };
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12]
        || !groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
    {
        return Err(bad());
    }
    u128::from_str_radix(&groups.concat(), 16).map_err(|_| bad())
}

pub use vigil_api_common::wire::uuid;

/// A random version-4 UUID.
pub fn new_uuid() -> RekResult<u128> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| RekognitionError::InternalServerError("no random bytes".into()))?;
    let mut id = u128::from_be_bytes(b);
    id &= !(0xf << 76);
    id |= 0x4 << 76; // version 4
    id &= !(0x3 << 62);
    id |= 0x2 << 62; // variant 10
    Ok(id)
}

/// How strictly IndexFaces (and the searches) filter faces (`QualityFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualityFilter {
    /// No filtering.
    None,
    /// Low bar.
    Low,
    /// Medium bar (also `AUTO`).
    Medium,
    /// High bar.
    High,
}

impl QualityFilter {
    /// Parses the member, or `default`.
    pub fn parse(v: &Option<String>, default: Self) -> RekResult<Self> {
        match v.as_deref() {
            None => Ok(default),
            Some("NONE") => Ok(Self::None),
            Some("LOW") => Ok(Self::Low),
            Some("AUTO" | "MEDIUM") => Ok(Self::Medium),
            Some("HIGH") => Ok(Self::High),
            Some(other) => Err(RekognitionError::validation(
                other,
                "qualityFilter",
                "Member must satisfy enum value set: [MEDIUM, HIGH, NONE, AUTO, LOW]",
            )),
        }
    }

    /// Why `face` (in an image of `w`x`h`) fails this bar; empty if it passes. Reasons are
    /// Rekognition's; the bars are Vigil's (docs/faces.md).
    pub fn reasons(self, face: &DetectedFace) -> Vec<&'static str> {
        // (min confidence 0-1, min box side px, min sharpness, min brightness, max |yaw|/|pitch|)
        let (conf, side, sharp, bright, pose) = match self {
            Self::None => return Vec::new(),
            Self::Low => (0.5, 20.0, 5.0, 5.0, 80.0),
            Self::Medium => (0.7, 32.0, 10.0, 10.0, 65.0),
            Self::High => (0.9, 48.0, 25.0, 20.0, 45.0),
        };
        let mut r = Vec::new();
        if face.confidence < conf {
            r.push("LOW_CONFIDENCE");
        }
        if face.rect.width.min(face.rect.height) < side {
            r.push("SMALL_BOUNDING_BOX");
        }
        if face.quality.sharpness < sharp {
            r.push("LOW_SHARPNESS");
        }
        if face.quality.brightness < bright {
            r.push("LOW_BRIGHTNESS");
        }
        if face.pose.yaw.abs() > pose || face.pose.pitch.abs() > pose {
            r.push("EXTREME_POSE");
        }
        r
    }
}

/// `DetectionAttributes` / `Attributes`: `DEFAULT`, `ALL`, or individual attribute names
/// (accepted; Vigil returns the default attributes whatever is asked).
pub fn attributes(v: &Option<Vec<String>>, member: &str) -> RekResult<()> {
    const KNOWN: [&str; 16] = [
        "DEFAULT",
        "ALL",
        "AGE_RANGE",
        "BEARD",
        "EMOTIONS",
        "EYE_DIRECTION",
        "EYEGLASSES",
        "EYES_OPEN",
        "GENDER",
        "MOUTH_OPEN",
        "MUSTACHE",
        "FACE_OCCLUDED",
        "SMILE",
        "SUNGLASSES",
        "POSE",
        "QUALITY",
    ];
    for a in v.iter().flatten() {
        if !KNOWN.contains(&a.as_str()) {
            return Err(RekognitionError::validation(
                a,
                member,
                "Member must satisfy enum value set: [DEFAULT, ALL, ...]",
            ));
        }
    }
    Ok(())
}

/// A box in pixels as Rekognition's `BoundingBox` (ratios of the image).
pub fn bounding_box(r: &Rect, w: f32, h: f32) -> [f32; 4] {
    [r.left / w, r.top / h, r.width / w, r.height / h]
}

/// `BoundingBox` JSON from ratios (left, top, width, height).
pub fn bbox_json(b: [f32; 4]) -> Value {
    let [left, top, width, height] = b;
    json!({ "Width": width, "Height": height, "Left": left, "Top": top })
}

const LANDMARK_TYPES: [&str; 5] = ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"];

/// A `FaceDetail` (the default attributes: BoundingBox, Landmarks, Pose, Quality, Confidence).
pub fn face_detail(f: &DetectedFace, w: f32, h: f32) -> Value {
    let landmarks: Vec<Value> = LANDMARK_TYPES
        .iter()
        .zip(&f.landmarks)
        .map(|(t, p)| json!({ "Type": t, "X": p.x / w, "Y": p.y / h }))
        .collect();
    json!({
        "BoundingBox": bbox_json(bounding_box(&f.rect, w, h)),
        "Landmarks": landmarks,
        "Pose": { "Roll": f.pose.roll, "Yaw": f.pose.yaw, "Pitch": f.pose.pitch },
        "Quality": { "Brightness": f.quality.brightness, "Sharpness": f.quality.sharpness },
        "Confidence": f.confidence * 100.0,
    })
}

/// A stored face as Rekognition's `Face`.
pub fn face_json(face_id: u128, m: &FaceMeta) -> Value {
    let mut v = json!({
        "FaceId": uuid(face_id),
        "BoundingBox": bbox_json(m.bounding_box),
        "ImageId": uuid(m.image_id),
        "Confidence": m.confidence,
        "IndexFacesModelVersion": m.model_version,
    });
    if let (Some(ext), Some(o)) = (&m.external_image_id, v.as_object_mut()) {
        o.insert("ExternalImageId".into(), json!(ext));
    }
    v
}

/// The longest `NextToken` taken back. Rekognition's model says 255 (`ValidationException`
/// beyond); a token this server issued for a position of more than about 170 bytes (a
/// collection id that long) is longer, and is still taken, up to this bound.
pub const TOKEN_MAX: usize = 1024;

/// A pagination token for `position`, for the operation `purpose`: sealed with the
/// listener's key ([`vigil_api_common::token`]), so that a client cannot make one up.
pub fn next_token(tokens: &PageTokens, purpose: &str, position: &str) -> String {
    tokens.seal_str(purpose, position)
}

/// The position in a token this server issued for `purpose`;
/// `InvalidPaginationTokenException` for anything else.
pub fn parse_token(
    tokens: &PageTokens,
    purpose: &str,
    token: &Option<String>,
) -> RekResult<Option<String>> {
    let Some(t) = token else {
        return Ok(None);
    };
    match tokens.open_str(purpose, t, TOKEN_MAX) {
        Some(position) => Ok(Some(position)),
        // The model's bound, for anything this server did not issue.
        None if t.len() > 255 => Err(RekognitionError::validation(
            t,
            "nextToken",
            "Member must have length less than or equal to 255",
        )),
        None => Err(RekognitionError::InvalidPaginationTokenException(
            "Invalid Token".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn ids_validate_as_the_model_says() {
        assert_eq!(
            collection_id(&Some("my.faces-1_a".into())).unwrap(),
            "my.faces-1_a"
        );
        for bad in ["", "a b", "a/b", "é", "a:b", &"x".repeat(256)] {
            let e = collection_id(&Some(bad.into())).unwrap_err();
            assert_eq!(e.aws_code(), "ValidationException", "{bad:?}");
            assert!(e.message().contains("'collectionId'"), "{}", e.message());
        }
        assert!(collection_id(&Some("x".repeat(255))).is_ok());
        assert!(collection_id(&None).is_err());
        assert_eq!(
            external_image_id(&Some("door:2026-01-01.jpg".into())).unwrap(),
            Some("door:2026-01-01.jpg")
        );
        assert!(external_image_id(&Some("a b".into())).is_err());
        assert!(external_image_id(&Some(String::new())).is_err());
        assert_eq!(external_image_id(&None).unwrap(), None);
    }

    #[test]
    fn ranges_and_enums() {
        assert_eq!(int_in(None, "maxFaces", 1, 4096, 80).unwrap(), 80);
        assert_eq!(int_in(Some(1), "maxFaces", 1, 4096, 80).unwrap(), 1);
        assert!(int_in(Some(0), "maxFaces", 1, 4096, 80).is_err());
        assert!(int_in(Some(4097), "maxFaces", 1, 4096, 80).is_err());
        assert_eq!(percent(None, "faceMatchThreshold", 80.0).unwrap(), 80.0);
        assert_eq!(percent(Some(0.0), "faceMatchThreshold", 80.0).unwrap(), 0.0);
        assert!(percent(Some(100.5), "faceMatchThreshold", 80.0).is_err());
        assert!(percent(Some(-1.0), "faceMatchThreshold", 80.0).is_err());
        assert_eq!(
            QualityFilter::parse(&Some("AUTO".into()), QualityFilter::None).unwrap(),
            QualityFilter::Medium
        );
        assert_eq!(
            QualityFilter::parse(&None, QualityFilter::None).unwrap(),
            QualityFilter::None
        );
        assert!(QualityFilter::parse(&Some("auto".into()), QualityFilter::None).is_err());
        attributes(&Some(vec!["ALL".into(), "DEFAULT".into()]), "attributes").unwrap();
        assert!(attributes(&Some(vec!["EVERYTHING".into()]), "attributes").is_err());
    }

    #[test]
    fn uuids_round_trip() {
        for _ in 0..100 {
            let id = new_uuid().unwrap();
            let s = uuid(id);
            assert_eq!(s.len(), 36);
            assert_eq!(&s[14..15], "4", "version 4: {s}");
            assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "variant: {s}");
            assert_eq!(parse_uuid(&s, "faceId").unwrap(), id);
        }
        for bad in [
            "",
            "not-a-uuid",
            "0123456789abcdef0123456789abcdef",
            "01234567-89AB-cdef-0123-456789abcdef",
            "01234567-89ab-cdef-0123-456789abcdeg",
            "01234567-89ab-cdef-0123-456789abcdef0",
        ] {
            assert!(parse_uuid(bad, "faceId").is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_fail() {
        let keys = PageTokens::generate();
        let t = next_token(&keys, "ListCollections", "people.v2");
        assert_eq!(
            parse_token(&keys, "ListCollections", &Some(t.clone()))
                .unwrap()
                .as_deref(),
            Some("people.v2")
        );
        assert_eq!(parse_token(&keys, "ListCollections", &None).unwrap(), None);
        // What tokens used to be (`v1.` and the base64url of the position) is made up now.
        for bad in ["", "abc", "v1.!!!", "v1.cGVvcGxlLnYy", &"A".repeat(255)] {
            assert_eq!(
                parse_token(&keys, "ListCollections", &Some(bad.into()))
                    .unwrap_err()
                    .aws_code(),
                "InvalidPaginationTokenException"
            );
        }
        assert!(parse_token(&keys, "ListFaces", &Some(t)).is_err());
        assert_eq!(
            parse_token(&keys, "ListCollections", &Some("A".repeat(256)))
                .unwrap_err()
                .aws_code(),
            "ValidationException"
        );
    }

    #[test]
    fn images_need_bytes() {
        let s3 = ImageInput {
            bytes: None,
            s3_object: Some(json!({"Bucket": "b", "Name": "k"})),
        };
        let e = s3.bytes("image").unwrap_err();
        assert_eq!(e.aws_code(), "InvalidS3ObjectException");
        assert!(e.message().contains("Bytes"));
        assert_eq!(
            ImageInput::default().bytes("image").unwrap_err().aws_code(),
            "InvalidParameterException"
        );
        let bad = ImageInput {
            bytes: Some("***".into()),
            s3_object: None,
        };
        assert_eq!(
            bad.bytes("image").unwrap_err().aws_code(),
            "SerializationException"
        );
        let ok = ImageInput {
            bytes: Some("aGVsbG8=".into()),
            s3_object: None,
        };
        assert_eq!(ok.bytes("image").unwrap(), b"hello");
        let huge = ImageInput {
            bytes: Some("A".repeat(8 << 20)),
            s3_object: None,
        };
        assert_eq!(
            huge.bytes("image").unwrap_err().aws_code(),
            "ImageTooLargeException"
        );
    }
}
