// The Webcam tab's arithmetic, ported line for line from the Python that the server runs. The numbers
// (recipe, box transform, thresholds, drawing style) come from the server as JSON; these functions only
// apply them. tests/test_space_inpage.py runs each one in Chromium against its Python original.

// fsanet.detect.detectors.Detector.detect: score threshold, _adapt (box transform, clipped), best first.
export function adaptDetections(boxes, scores, transform, minScore, width, height) {
  const [scaleW, scaleH, shift] = transform;
  const clip = (v, high) => Math.min(Math.max(v, 0), high);
  const faces = [];
  for (let i = 0; i < scores.length; i++) {
    if (scores[i] < minScore) continue;
    const [x1, y1, x2, y2] = [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]];
    const cx = (x1 + x2) / 2;
    const cy = (y1 + y2) / 2 + shift * (y2 - y1);
    const halfW = ((x2 - x1) * scaleW) / 2;
    const halfH = ((y2 - y1) * scaleH) / 2;
    const box = [clip(cx - halfW, width), clip(cy - halfH, height), clip(cx + halfW, width), clip(cy + halfH, height)];
    if (box[2] > box[0] && box[3] > box[1]) faces.push({ box, score: scores[i] });
  }
  return faces.sort((a, b) => b.score - a.score); // stable, like Python's sorted
}

// fsanet.pipeline.estimate.PoseResult.left_to_right: by the box centre, x then y.
export function leftToRight(faces) {
  const key = (f) => [f.box[0] + f.box[2], f.box[1] + f.box[3]];
  return [...faces].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    return ka[0] - kb[0] || ka[1] - kb[1];
  });
}

// fsanet.data.preprocess.expand_box: int() truncation, clipped, inclusive end.
function expandBox(x, y, w, h, width, height, margin) {
  return [
    Math.max(Math.trunc(x - margin * w), 0),
    Math.max(Math.trunc(y - margin * h), 0),
    Math.min(Math.trunc(x + w + margin * w), width - 1),
    Math.min(Math.trunc(y + h + margin * h), height - 1),
  ];
}

// fsanet.data.recipes.whenet_box: sequential padding, each coordinate clipped, int() at the end.
function whenetBox([x1, y1, x2, y2], width, height) {
  y1 = Math.max(0, y1 - Math.abs(y1 - y2) / 10);
  y2 = Math.min(height, y2 + Math.abs(y1 - y2) / 10);
  x1 = Math.max(0, x1 - Math.abs(x1 - x2) / 5);
  x2 = Math.min(width, x2 + Math.abs(x1 - x2) / 5);
  return [Math.trunc(x1), Math.trunc(y1), Math.trunc(x2), Math.trunc(y2)];
}

// fsanet.data.recipes.crop_region with a resolved recipe: the slice [x1, x2) x [y1, y2) of the frame.
export function cropRegion(box, recipe, width, height) {
  let [x1, y1, x2, y2] = box;
  if (recipe.square) {
    const side = Math.max(x2 - x1, y2 - y1);
    const [cx, cy] = [(x1 + x2) / 2, (y1 + y2) / 2];
    [x1, y1, x2, y2] = [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2];
  }
  if (recipe.box === "whenet") return whenetBox([x1, y1, x2, y2], width, height);
  const [left, top, right, bottom] = expandBox(x1, y1, x2 - x1, y2 - y1, width, height, recipe.margin);
  const end = recipe.crop_end === "inclusive" ? 1 : 0;
  return [left, top, right + end, bottom + end];
}

// OpenCV's resize coefficients (INTER_LINEAR, float32 positions, 11-bit fixed point): per output index,
// the two source indices and their weights. Columns past an edge take the edge pixel whole (OpenCV resets
// their fraction); rows past an edge keep their fraction and read the edge row twice (OpenCV clamps rows).
function linearTaps(source, target, resetEdges) {
  const scale = source / target;
  const index = new Int32Array(2 * target);
  const weight = new Int32Array(2 * target);
  for (let d = 0; d < target; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (resetEdges && s < 0) [f, s] = [0, 0];
    if (resetEdges && s >= source - 1) [f, s] = [0, source - 1];
    index[2 * d] = Math.min(Math.max(s, 0), source - 1);
    index[2 * d + 1] = Math.min(Math.max(s + 1, 0), source - 1);
    weight[2 * d] = roundHalfEven(Math.fround(Math.fround(1 - f) * 2048));
    weight[2 * d + 1] = roundHalfEven(Math.fround(f * 2048));
  }
  return { index, weight };
}

function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR) of the RGB channels of an RGBA frame region:
// horizontal pass in 11-bit fixed point, vertical pass as OpenCV's SIMD kernel (>> 4, multiply-high, +2 >> 2).
export function resizeLinear(rgba, frameWidth, [x1, y1, x2, y2], size) {
  const [w, h] = [x2 - x1, y2 - y1];
  const xs = linearTaps(w, size, true);
  const ys = linearTaps(h, size, false);
  const rows = new Int32Array(2 * size * 3);
  const out = new Uint8Array(size * size * 3);
  const horizontal = (sy, slot) => {
    const base = ((y1 + sy) * frameWidth + x1) * 4;
    for (let dx = 0; dx < size; dx++) {
      const [i0, i1] = [base + xs.index[2 * dx] * 4, base + xs.index[2 * dx + 1] * 4];
      const [a0, a1] = [xs.weight[2 * dx], xs.weight[2 * dx + 1]];
      for (let c = 0; c < 3; c++) rows[slot * size * 3 + dx * 3 + c] = rgba[i0 + c] * a0 + rgba[i1 + c] * a1;
    }
  };
  for (let dy = 0; dy < size; dy++) {
    horizontal(ys.index[2 * dy], 0);
    horizontal(ys.index[2 * dy + 1], 1);
    const [b0, b1] = [ys.weight[2 * dy], ys.weight[2 * dy + 1]];
    for (let k = 0; k < size * 3; k++) {
      const v = (((rows[k] >> 4) * b0) >> 16) + (((rows[size * 3 + k] >> 4) * b1) >> 16);
      out[dy * size * 3 + k] = Math.min(Math.max((v + 2) >> 2, 0), 255);
    }
  }
  return out;
}

// fsanet.data.recipes.crop_face + finish_face, written into `batch` (float32, NCHW) at face `slot`.
export function cropFace(rgba, width, height, box, recipe, batch, slot) {
  const region = cropRegion(box, recipe, width, height);
  const size = recipe.size;
  const face = resizeLinear(rgba, width, region, size);
  let [low, high] = [0, 255];
  if (recipe.minmax) {
    [low, high] = [255, 0];
    for (const v of face) [low, high] = [Math.min(low, v), Math.max(high, v)];
  }
  const stretch = (v) => (!recipe.minmax ? v : high === low ? 0 : (v - low) * (255.0 / (high - low)));
  const plane = size * size;
  const offset = slot * 3 * plane;
  const order = recipe.color === "bgr" ? [2, 1, 0] : [0, 1, 2];
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) batch[offset + c * plane + p] = stretch(face[p * 3 + order[c]]);
  }
  return region;
}

// fsanet.data.geometry.rotation_matrix and project_axes: image-plane tips of the x, y, z axes.
export function projectAxes(yaw, pitch, roll, size) {
  const rad = Math.PI / 180;
  const [y, p, r] = [-yaw * rad, pitch * rad, roll * rad];
  const [cy, sy, cp, sp, cr, sr] = [Math.cos(y), Math.sin(y), Math.cos(p), Math.sin(p), Math.cos(r), Math.sin(r)];
  const row0 = [cy * cr, -cy * sr, sy];
  const row1 = [cp * sr + sp * sy * cr, cp * cr - sp * sy * sr, -sp * cy];
  return [0, 1, 2].map((axis) => [size * row0[axis], size * row1[axis]]);
}

// fsanet.pipeline.drawing.place_labels: above the box, inside its top-left corner, below it, else sliding down.
export function placeLabels(boxes, sizes, width, height) {
  const clamp = (v, low, high) => Math.trunc(Math.min(Math.max(v, low), high));
  const overlaps = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
  const placed = [];
  boxes.forEach(([x1, y1, , y2], i) => {
    const [w, h] = sizes[i];
    const x = clamp(x1, 0, Math.max(width - w, 0));
    const rect = (top) => {
      const t = clamp(top, 0, Math.max(height - h, 0));
      return [x, t, x + w, t + h];
    };
    const preferred = [rect(y1 - h - 1), rect(y1 + 1), rect(y2 + 1)];
    const free = (c) => !placed.some((p) => overlaps(c, p));
    let chosen = preferred.find(free);
    for (let top = 0; !chosen && top <= height - h; top += Math.max(1, Math.trunc(h / 2))) {
      if (free(rect(top))) chosen = rect(top);
    }
    placed.push(chosen || preferred[0]);
  });
  return placed;
}
