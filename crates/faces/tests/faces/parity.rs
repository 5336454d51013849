//! Parity with onnxruntime: each model run by tract and by Python onnxruntime on the same
//! tensor gives the same outputs; and the engine's preprocessing (resize, padding, colour
//! order, alignment, normalisation) equals an independent numpy reimplementation
//! (`onnxruntime_reference.py`) on a real photo.

use std::path::Path;

use vigil_faces::internals::{centerface_input, feature_input};
use vigil_faces::{Model, align_face};

use crate::common::{
    cosine, crate_dir, engine, max_abs_diff, photo, read_f32, reference, scratch, write_f32,
};

fn model_path(model: Model) -> String {
    crate_dir()
        .join("models")
        .join(model.file_name())
        .display()
        .to_string()
}

/// Runs `model` in onnxruntime on `input` (shape `shape`); its outputs, flat.
fn onnxruntime(dir: &Path, model: Model, input: &[f32], shape: &[usize]) -> Vec<Vec<f32>> {
    let inp = dir.join(format!("{model}.in.f32"));
    write_f32(&inp, input);
    let prefix = dir.join(format!("{model}.out"));
    let shape_arg: Vec<String> = shape.iter().map(|v| v.to_string()).collect();
    let shapes = reference(&[
        "run",
        &model_path(model),
        inp.to_str().unwrap(),
        &shape_arg.join(","),
        prefix.to_str().unwrap(),
    ]);
    let n = shapes.matches('[').count() - 1;
    (0..n)
        .map(|i| read_f32(&dir.join(format!("{model}.out.{i}.f32"))))
        .collect()
}

/// Every padded shape the engine uses at the default working size (see
/// `detect::short_side`), each with a real photo scaled into it.
#[test]
fn centerface_matches_onnxruntime_on_the_same_tensor_in_every_shape() {
    let dir = scratch("centerface-parity");
    let cases = [
        ("obama.jpg", 1280, 960),
        ("obama.jpg", 960, 1280),
        ("biden.jpg", 1280, 720),
        ("biden.jpg", 720, 1280),
        ("astronaut.png", 512, 512),
    ];
    let mut shapes = Vec::new();
    for (name, w, h) in cases {
        let img =
            image::imageops::resize(&photo(name), w, h, image::imageops::FilterType::Triangle);
        let input = centerface_input(&img, 640);
        shapes.push((input.width, input.height));
        let (tract, (mh, mw)) = engine().run_centerface(&input).unwrap();
        let ort = onnxruntime(
            &dir,
            Model::CenterFace,
            &input.tensor,
            &[1, 3, input.height, input.width],
        );
        assert_eq!(ort.len(), 4);
        for (i, (t, o)) in tract.iter().zip(&ort).enumerate() {
            assert_eq!(t.len(), o.len(), "output {i}: {mh}x{mw} maps");
            let d = max_abs_diff(t, o);
            eprintln!(
                "centerface {}x{} output {i}: max |tract - onnxruntime| = {d:e}",
                input.width, input.height
            );
            assert!(
                d < 1e-4,
                "{}x{} output {i} differs by {d}",
                input.width,
                input.height
            );
        }
    }
    shapes.sort();
    assert_eq!(
        shapes,
        [(384, 640), (480, 640), (640, 384), (640, 480), (640, 640)]
    );
}

#[test]
fn fr_feature_matches_onnxruntime_on_the_same_tensor() {
    let dir = scratch("feature-parity");
    let img = photo("biden.jpg");
    let face = engine().detect(&img).unwrap().remove(0);
    let input = feature_input(&align_face(&img, &face.landmarks).unwrap());
    let tract = engine().run_feature(&input).unwrap();
    let ort = onnxruntime(&dir, Model::FrFeature, &input, &[1, 3, 112, 112]);
    let d = max_abs_diff(&tract, &ort[0]);
    eprintln!("fr_feature: max |tract - onnxruntime| = {d:e}");
    assert!(d < 1e-4, "differs by {d}");
}

#[test]
fn preprocessing_matches_a_numpy_reimplementation_end_to_end() {
    let dir = scratch("preprocessing");
    let img = photo("obama3.jpg");
    let (w, h) = img.dimensions();
    let rgb = dir.join("img.rgb");
    std::fs::write(&rgb, img.as_raw()).unwrap();
    let rgb = rgb.to_str().unwrap();

    // Detection input: resize (bilinear, half-pixel centres), pad, RGB 0-255, NCHW.
    let ours = centerface_input(&img, 640);
    let theirs_path = dir.join("cf.f32");
    let dims = reference(&[
        "centerface-input",
        rgb,
        &w.to_string(),
        &h.to_string(),
        "640",
        theirs_path.to_str().unwrap(),
    ]);
    assert_eq!(dims.trim(), format!("{} {}", ours.height, ours.width));
    let theirs = read_f32(&theirs_path);
    let d = max_abs_diff(&ours.tensor, &theirs);
    eprintln!("centerface input: max |rust - numpy| = {d:e} (0-255 scale)");
    assert!(d < 1e-2, "detection inputs differ by {d}");

    // Embedding input: similarity transform by least squares, bilinear warp, (x - 127) / 128.
    let face = engine().detect(&img).unwrap().remove(0);
    let lm: Vec<String> = face
        .landmarks
        .iter()
        .flat_map(|p| [p.x.to_string(), p.y.to_string()])
        .collect();
    let theirs_path = dir.join("feat.f32");
    reference(&[
        "feature-input",
        rgb,
        &w.to_string(),
        &h.to_string(),
        &lm.join(","),
        theirs_path.to_str().unwrap(),
    ]);
    let theirs = read_f32(&theirs_path);
    let ours = feature_input(&align_face(&img, &face.landmarks).unwrap());
    // Both round the crop to 8 bits, so a value may differ by one step where the two
    // computations straddle a rounding boundary; nearly all must be equal.
    let step = 1.0 / 128.0;
    let d = max_abs_diff(&ours, &theirs);
    let differing = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| (*a - *b).abs() > 1e-6)
        .count();
    eprintln!(
        "fr_feature input: max |rust - numpy| = {d:e}, {differing} of {} values differ",
        ours.len()
    );
    assert!(d <= step + 1e-6, "embedding inputs differ by {d}");
    assert!(differing * 200 < ours.len(), "{differing} values differ");

    // And the embedding of numpy's input by onnxruntime is the engine's embedding.
    let ort = onnxruntime(&dir, Model::FrFeature, &theirs, &[1, 3, 112, 112]);
    let ours = engine().embed(&img, &face).unwrap();
    let c = cosine(&ours.0, &ort[0]);
    eprintln!("embedding: cosine(engine, numpy + onnxruntime) = {c}");
    assert!(c > 0.9999, "cosine {c}");
}
