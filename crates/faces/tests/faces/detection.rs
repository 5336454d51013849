//! Detection, landmarks, pose and quality on real photos.

use vigil_faces::{ImageError, Landmark, decode_image};

use crate::common::{crate_dir, engine, photo};

#[test]
fn one_frontal_face_in_each_portrait() {
    for name in [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden.jpg",
        "astronaut.png",
    ] {
        let img = photo(name);
        let faces = engine().detect(&img).unwrap();
        assert_eq!(faces.len(), 1, "{name}: {faces:?}");
        let f = &faces[0];
        assert!(f.confidence > 0.8, "{name}: {f:?}");
        // A portrait: the face is a good part of the picture.
        assert!(f.rect.width > img.width() as f32 / 10.0, "{name}: {f:?}");
        let r = f.rect;
        for p in f.landmarks {
            assert!(
                p.x > r.left && p.x < r.left + r.width && p.y > r.top && p.y < r.top + r.height,
                "{name}: {p:?} outside {r:?}"
            );
        }
        let lm = |l: Landmark| f.landmarks[l as usize];
        // Rekognition's eyeLeft is the subject's left eye: on the image's right.
        assert!(lm(Landmark::EyeLeft).x > lm(Landmark::EyeRight).x, "{name}");
        assert!(
            lm(Landmark::MouthLeft).x > lm(Landmark::MouthRight).x,
            "{name}"
        );
        assert!(
            lm(Landmark::Nose).y > lm(Landmark::EyeLeft).y
                && lm(Landmark::MouthLeft).y > lm(Landmark::Nose).y,
            "{name}"
        );
        // Frontal portraits: small angles; reasonably lit and sharp.
        assert!(
            f.pose.roll.abs() < 15.0 && f.pose.yaw.abs() < 30.0 && f.pose.pitch.abs() < 30.0,
            "{name}: {:?}",
            f.pose
        );
        assert!(
            f.quality.brightness > 20.0 && f.quality.brightness < 90.0,
            "{name}: {:?}",
            f.quality
        );
        assert!(f.quality.sharpness > 10.0, "{name}: {:?}", f.quality);
    }
}

#[test]
fn no_face_in_a_photo_of_coffee() {
    assert!(engine().detect(&photo("coffee.png")).unwrap().is_empty());
}

#[test]
fn group_photo_faces_come_largest_first() {
    let img = photo("group.jpg");
    let faces = engine().detect(&img).unwrap();
    assert!(faces.len() >= 3, "{} faces", faces.len());
    for pair in faces.windows(2) {
        let area = |f: &vigil_faces::DetectedFace| f.rect.width * f.rect.height;
        assert!(area(&pair[0]) >= area(&pair[1]));
    }
    for f in &faces {
        assert!(f.rect.width >= 20.0);
        assert!(f.rect.left >= 0.0 && f.rect.top >= 0.0);
        assert!(f.rect.left + f.rect.width <= img.width() as f32 + 1e-3);
        assert!(f.rect.top + f.rect.height <= img.height() as f32 + 1e-3);
    }
}

#[test]
fn blur_lowers_sharpness_and_darkening_lowers_brightness() {
    let img = photo("obama.jpg");
    let sharp = engine().detect(&img).unwrap()[0].quality;
    let blurred = image::imageops::blur(&img, 6.0);
    let soft = engine().detect(&blurred).unwrap()[0].quality;
    assert!(
        soft.sharpness < sharp.sharpness / 2.0,
        "{soft:?} vs {sharp:?}"
    );
    let mut dark = img.clone();
    dark.pixels_mut().for_each(|p| p.0 = p.0.map(|c| c / 3));
    let dim = engine().detect(&dark).unwrap();
    if let Some(f) = dim.first() {
        assert!(
            f.quality.brightness < sharp.brightness / 2.0,
            "{:?} vs {sharp:?}",
            f.quality
        );
    }
}

#[test]
fn a_mirrored_photo_mirrors_landmarks_roll_and_yaw() {
    let img = photo("obama2.jpg");
    let f = engine().detect(&img).unwrap()[0].clone();
    let m = engine()
        .detect(&image::imageops::flip_horizontal(&img))
        .unwrap()[0]
        .clone();
    let w = img.width() as f32;
    // The detector is not exactly mirror-symmetric: within 6% of the face's width.
    let tol = 0.06 * f.rect.width;
    // Mirroring swaps the subject's left and right: eyeLeft of the mirror image is the mirror
    // of eyeRight, and so on.
    for (a, b) in [(0, 1), (1, 0), (2, 2), (3, 4), (4, 3)] {
        let (p, q) = (f.landmarks[a], m.landmarks[b]);
        assert!(
            (q.x - (w - p.x)).abs() < tol && (q.y - p.y).abs() < tol,
            "{a}: {p:?} vs {q:?} ({tol})"
        );
    }
    assert!(
        (f.rect.left + f.rect.width - (w - m.rect.left)).abs() < tol,
        "{:?} vs {:?}",
        f.rect,
        m.rect
    );
    assert!(
        (f.pose.roll + m.pose.roll).abs() < 8.0,
        "{:?} vs {:?}",
        f.pose,
        m.pose
    );
    assert!(
        (f.pose.yaw + m.pose.yaw).abs() < 8.0,
        "{:?} vs {:?}",
        f.pose,
        m.pose
    );
    assert!((f.confidence - m.confidence).abs() < 0.05);
}

#[test]
fn decode_errors_on_real_files() {
    let jpeg = std::fs::read(crate_dir().join("testdata/obama.jpg")).unwrap();
    // Truncated within the entropy-coded data, and within the header.
    assert!(
        matches!(
            decode_image(&jpeg[..300]),
            Err(ImageError::Invalid { format: "JPEG", .. })
        ),
        "{:?}",
        decode_image(&jpeg[..300]).map(|i| i.dimensions())
    );
    // A JPEG whose SOF0 claims 60000 x 60000 pixels: too large, from the header alone.
    let mut huge = Vec::new();
    image::RgbImage::new(16, 16)
        .write_to(
            &mut std::io::Cursor::new(&mut huge),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let sof = huge.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    huge[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
    huge[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
    assert!(matches!(
        decode_image(&huge),
        Err(ImageError::TooLarge {
            width: 60000,
            height: 60000,
            ..
        })
    ));
    assert!(matches!(
        decode_image(b"RIFF....WEBPVP8 "),
        Err(ImageError::Unsupported)
    ));
}

#[test]
fn truncated_jpeg_either_fails_or_decodes_to_its_size() {
    // Cut mid-scan: the decoder may report the truncation (an error) or, as libjpeg does,
    // return the image with the missing rows filled; never a panic or a different size.
    let jpeg = std::fs::read(crate_dir().join("testdata/obama.jpg")).unwrap();
    match decode_image(&jpeg[..jpeg.len() / 2]) {
        Err(ImageError::Invalid { .. }) => {}
        Ok(img) => assert_eq!(img.dimensions(), photo("obama.jpg").dimensions()),
        Err(e) => panic!("{e}"),
    }
}
