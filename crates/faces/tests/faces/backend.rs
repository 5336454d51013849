//! The onnxruntime backend: the same models and the same code around them as tract, so the
//! same outputs (to float rounding), the same faces and the same embeddings; and a clear error
//! when its library is missing.

use vigil_faces::internals::{centerface_input, feature_input};
use vigil_faces::{Backend, Engine, EngineOptions, Error, align_face, cosine};

use crate::common::{engine, max_abs_diff, ort_engine, photo};

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[test]
fn onnxruntime_backend_gives_tracts_outputs_on_the_same_tensors() {
    assert!(
        ort_engine()
            .backend_description()
            .starts_with("onnxruntime 1.23"),
        "{}",
        ort_engine().backend_description()
    );
    assert!(engine().backend_description().starts_with("tract 0.22"));
    // Every padded shape of the default working size, and one tract never planned for.
    for (name, w, h) in [
        ("obama.jpg", 1280, 960),
        ("obama.jpg", 960, 1280),
        ("biden.jpg", 1280, 720),
        ("astronaut.png", 512, 512),
        ("group.jpg", 1000, 300),
    ] {
        let img =
            image::imageops::resize(&photo(name), w, h, image::imageops::FilterType::Triangle);
        let input = centerface_input(&img, 640);
        let (tract, dims) = engine().run_centerface(&input).unwrap();
        let (ort, ort_dims) = ort_engine().run_centerface(&input).unwrap();
        assert_eq!(dims, ort_dims);
        for (i, (t, o)) in tract.iter().zip(&ort).enumerate() {
            // Relative above 1: output 1 is the log of box sizes (up to about 6), and
            // onnxruntime folds batch norms into the convolutions, tract does not (seen: at
            // most 6e-5).
            let d = max_rel_diff(t, o);
            eprintln!(
                "centerface {}x{} output {i}: max |tract - onnxruntime backend| / max(1, |tract|) = {d:e} (absolute {:e})",
                input.width,
                input.height,
                max_abs_diff(t, o)
            );
            assert!(
                d < 2e-4,
                "{}x{} output {i} differs by {d}",
                input.width,
                input.height
            );
        }
    }
    let img = photo("obama.jpg");
    let face = engine().detect(&img).unwrap().remove(0);
    let input = feature_input(&align_face(&img, &face.landmarks).unwrap());
    let d = max_abs_diff(
        &engine().run_feature(&input).unwrap(),
        &ort_engine().run_feature(&input).unwrap(),
    );
    eprintln!("fr_feature: max |tract - onnxruntime backend| = {d:e}");
    assert!(d < 1e-4, "fr_feature differs by {d}");
}

#[test]
fn onnxruntime_backend_finds_the_same_faces_and_embeddings() {
    let mut faces_seen = 0;
    for name in [
        "obama.jpg",
        "obama2.jpg",
        "biden.jpg",
        "astronaut.png",
        "group.jpg",
        "coffee.png",
    ] {
        let img = photo(name);
        let tract = engine().detect(&img).unwrap();
        let ort = ort_engine().detect(&img).unwrap();
        assert_eq!(tract.len(), ort.len(), "{name}: face counts differ");
        for (t, o) in tract.iter().zip(&ort) {
            let dx = (t.rect.left - o.rect.left)
                .abs()
                .max((t.rect.top - o.rect.top).abs());
            let dw = (t.rect.width - o.rect.width)
                .abs()
                .max((t.rect.height - o.rect.height).abs());
            assert!(
                dx < 0.5 && dw < 0.5,
                "{name}: boxes differ: {:?} vs {:?}",
                t.rect,
                o.rect
            );
            assert!(
                (t.confidence - o.confidence).abs() < 1e-4,
                "{name}: confidences differ"
            );
            let (et, eo) = (
                engine().embed(&img, t).unwrap(),
                ort_engine().embed(&img, o).unwrap(),
            );
            let c = cosine(&et, &eo);
            assert!(c > 0.9999, "{name}: embeddings differ (cosine {c})");
            faces_seen += 1;
        }
    }
    // Obama x2, Biden, the astronaut and the group photo's faces; none in the coffee cup.
    assert!(faces_seen >= 5, "only {faces_seen} faces");
}

#[test]
fn onnxruntime_backend_runs_from_many_threads_at_once() {
    let img = photo("biden.jpg");
    let expected = ort_engine().detect(&img).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..3 {
                    let got = ort_engine().detect(&img).unwrap();
                    assert_eq!(got.len(), expected.len());
                    assert_eq!(got[0].rect, expected[0].rect);
                }
            });
        }
    });
}

#[test]
fn a_missing_onnxruntime_library_is_a_clear_error() {
    let err = Engine::with_options(EngineOptions {
        backend: Backend::OnnxRuntime {
            library: Some("/nonexistent/libonnxruntime.so".into()),
        },
        ..EngineOptions::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/libonnxruntime.so does not exist")
            && message.contains("scripts/onnxruntime.sh"),
        "{message}"
    );
}
