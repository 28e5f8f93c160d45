// The Webcam tab in the page: camera -> detector -> crops -> pose model -> drawing, all with onnxruntime-web
// (WebAssembly), no frame sent to the server. The server sends the files and the numbers (space/inpage.py);
// the arithmetic is inpage.js. When the page cannot run the choice (no WebAssembly, onnxruntime-web missing,
// a detector that runs on the server only), the tab says why and shows the server stream instead.
import * as core from "./inpage.js";

const STAGES = ["grab", "detect", "crop", "model", "draw"];
const FPS_WINDOW_MS = 2000;
// wasm-feature-detect's SIMD probe: onnxruntime-web 1.30 ships SIMD builds only.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

const state = {
  mode: "checking", // "inpage" | "server" | "checking"
  choice: null,
  token: 0,
  config: null,
  sessions: null,
  error: null,
  running: false,
  starting: false,
  loop: 0, // the camera's run: a start, a frame callback or a result of an earlier run does nothing
  handle: null, // the run's pending requestVideoFrameCallback
  busy: false,
  frames: 0, // camera frames processed since the camera started (never more than `camera`)
  camera: 0, // camera frames the video presented since then
  firstFrame: null, // presentedFrames of the first of them
  dropped: 0,
  times: [],
  stages: Object.fromEntries(STAGES.map((s) => [s, 0])), // moving averages, shown
  totals: Object.fromEntries(STAGES.map((s) => [s, 0])), // sums since the start, for benchmarks
  last: null, // {image: ImageData, faces}
};
let ort = null;
const sessionCache = new Map();

const url = (path) => new URL(path, document.baseURI).href;
const $ = (id) => document.getElementById(id);

function wasmProblem() {
  if (typeof WebAssembly !== "object") return "this browser has no WebAssembly";
  if (!WebAssembly.validate(SIMD_PROBE)) return "this browser's WebAssembly has no SIMD";
  return null;
}

function show(mode, message) {
  state.mode = mode;
  const server = $("webcam-server");
  if (server) server.style.display = mode === "inpage" ? "none" : "";
  $("inpage-live").style.display = mode === "inpage" ? "" : "none";
  $("inpage-mode").textContent = message;
  $("inpage-panel").dataset.mode = mode;
}

function fallback(reason) {
  stopCamera();
  state.error = null;
  clearView(); // nothing of the page's run stays under "Start the camera"
  show("server", `Streaming frames to the server below (${reason}). Click the camera to start it.`);
}

function clearView() {
  Object.assign(state, { frames: 0, camera: 0, firstFrame: null, dropped: 0, times: [], last: null });
  STAGES.forEach((stage) => (state.stages[stage] = state.totals[stage] = 0));
  const canvas = $("inpage-canvas");
  if (canvas) [canvas.width, canvas.height] = [0, 0];
  if ($("inpage-angles")) $("inpage-angles").textContent = state.error ? `⚠️ ${state.error}` : "";
  if ($("inpage-stats")) $("inpage-stats").textContent = "";
}

async function loadOrt(config) {
  if (!ort) {
    ort = await import(url(config.ort.entry));
    ort.env.wasm.wasmPaths = url(config.ort.base);
    // Threads need a cross-origin isolated page; otherwise one thread (the Space is not isolated).
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  }
  return ort;
}

function session(path) {
  if (!sessionCache.has(path)) {
    const created = ort.InferenceSession.create(url(path), {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    created.catch(() => sessionCache.delete(path));
    sessionCache.set(path, created);
  }
  return sessionCache.get(path);
}

async function select(model, detector) {
  const token = ++state.token;
  state.choice = [model, detector];
  const problem = wasmProblem();
  if (problem) return fallback(problem);
  let response;
  let config;
  try {
    const query = new URLSearchParams({ model, detector });
    response = await fetch(url(`fsanet/webcam/config?${query}`));
    config = await response.json();
  } catch (error) {
    return token === state.token && fallback(`the server did not answer: ${error.message}`);
  }
  if (token !== state.token) return;
  if (config.server_only) return fallback(config.error);
  if (!response.ok) {
    state.error = config.error; // e.g. weights not available: reported, the camera goes on
    $("inpage-angles").textContent = `⚠️ ${config.error}`;
    return show("inpage", modeLine(model, detector));
  }
  try {
    await loadOrt(config);
    const [detectorSession, modelSession] = await Promise.all([
      session(config.detector.url),
      session(config.model.url),
    ]);
    if (token !== state.token) return;
    state.config = config;
    state.sessions = { detector: detectorSession, model: modelSession };
    state.error = null;
  } catch (error) {
    return token === state.token && fallback(`onnxruntime-web could not start: ${error.message || error}`);
  }
  show("inpage", modeLine(model, detector));
}

function modeLine(model, detector) {
  return (
    `Running in this page: ${detector} and ${model} on WebAssembly; no frame leaves this computer. ` +
    "Pick the mtcnn, ssd or haar detector to stream frames to the server instead."
  );
}

function toggleCamera() {
  return state.running || state.starting ? stopCamera() : startCamera();
}

async function startCamera() {
  const run = ++state.loop;
  state.starting = true;
  $("inpage-start").textContent = "Stop the camera";
  const video = $("inpage-video");
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      audio: false,
    });
    if (run !== state.loop) return stream.getTracks().forEach((track) => track.stop()); // stopped meanwhile
    video.srcObject = stream;
    await video.play();
  } catch (error) {
    if (run !== state.loop) return;
    stopCamera();
    return ($("inpage-angles").textContent = `⚠️ ${error.message || error}`);
  }
  if (run !== state.loop) return;
  clearView();
  [state.starting, state.running] = [false, true];
  state.handle = video.requestVideoFrameCallback((now, metadata) => onFrame(run, metadata));
}

function stopCamera() {
  state.loop += 1; // one loop, whatever the clicks: the earlier run's callbacks and results are void
  const video = $("inpage-video");
  if (video && state.handle !== null) video.cancelVideoFrameCallback(state.handle);
  state.handle = null;
  if (video && video.srcObject) {
    video.srcObject.getTracks().forEach((track) => track.stop());
    video.srcObject = null;
  }
  [state.running, state.starting] = [false, false];
  if ($("inpage-start")) $("inpage-start").textContent = "Start the camera";
}

function onFrame(run, metadata) {
  if (run !== state.loop) return;
  const video = $("inpage-video");
  state.handle = video.requestVideoFrameCallback((now, next) => onFrame(run, next));
  if (state.firstFrame === null) state.firstFrame = metadata.presentedFrames;
  state.camera = metadata.presentedFrames - state.firstFrame + 1; // what the camera gave, skipped ones too
  if (state.busy) state.dropped += 1;
  else {
    state.busy = true;
    process(video, run)
      .catch((error) => run === state.loop && ($("inpage-angles").textContent = `⚠️ ${error.message || error}`))
      .finally(() => (state.busy = false));
  }
}

function grab(video, config) {
  // Frames beyond the detection size are scaled down by the canvas (the camera is asked for 640x480).
  const factor = Math.min(1, config.detect_max_side / Math.max(video.videoWidth, video.videoHeight));
  const [width, height] = [Math.round(video.videoWidth * factor), Math.round(video.videoHeight * factor)];
  const canvas = $("inpage-frame");
  if (canvas.width !== width || canvas.height !== height) [canvas.width, canvas.height] = [width, height];
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(video, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

async function process(video, run) {
  const { config, sessions } = state;
  const t = [performance.now()];
  const image = grab(video, config || { detect_max_side: 1280 });
  t.push(performance.now());
  let faces = [];
  if (sessions && !state.error) {
    const { width, height, data } = image;
    const input = new ort.Tensor("uint8", data, [1, height, width, 4]);
    const found = await sessions.detector.run({ image: input });
    const detector = config.detector;
    faces = core.adaptDetections(found.boxes.data, found.scores.data, detector.box_transform, detector.min_score,
      width, height).slice(0, config.max_faces);
    faces = core.leftToRight(faces);
    t.push(performance.now());
    const recipe = config.model.recipe;
    const batch = new Float32Array(faces.length * 3 * recipe.size * recipe.size);
    faces.forEach((face, i) => core.cropFace(data, width, height, face.box, recipe, batch, i));
    t.push(performance.now());
    if (faces.length) {
      const shape = [faces.length, 3, recipe.size, recipe.size];
      const angles = (await sessions.model.run({ input: new ort.Tensor("float32", batch, shape) })).angles.data;
      faces.forEach((face, i) => ([face.yaw, face.pitch, face.roll] = angles.slice(3 * i, 3 * i + 3)));
    }
    t.push(performance.now());
  } else t.push(t[1], t[1], t[1]);
  if (run !== state.loop) return; // the camera was stopped meanwhile: this frame is not shown or counted
  draw(image, faces, config);
  t.push(performance.now());
  record(t, image, faces);
}

function draw(image, faces, config) {
  const canvas = $("inpage-canvas");
  if (canvas.width !== image.width || canvas.height !== image.height) {
    [canvas.width, canvas.height] = [image.width, image.height];
  }
  const context = canvas.getContext("2d");
  context.putImageData(image, 0, 0);
  if (!config || !faces.length) return;
  const style = config.drawing;
  const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  context.lineWidth = Math.max(1, Math.round(Math.max(image.width, image.height) / style.line_per_pixels));
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.box;
    context.strokeStyle = rgb(style.box_color);
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const [cx, cy] = [(x1 + x2) / 2, (y1 + y2) / 2];
    const size = style.axis_fraction * Math.min(x2 - x1, y2 - y1);
    core.projectAxes(face.yaw, face.pitch, face.roll, size).forEach(([dx, dy], axis) => {
      context.strokeStyle = rgb(style.axis_colors[axis]);
      context.beginPath();
      context.moveTo(cx, cy);
      context.lineTo(cx + dx, cy + dy);
      context.stroke();
    });
  }
  const [low, high] = style.label_scales;
  const scales = faces.map((f) => Math.min(Math.max((f.box[3] - f.box[1]) / style.label_face_height, low), high));
  const fonts = scales.map((s) => `${Math.round(22 * s)}px sans-serif`);
  const sizes = faces.map((_, i) => {
    context.font = fonts[i];
    return [Math.ceil(context.measureText(String(i + 1)).width) + 4, Math.round(22 * scales[i] * 1.3) + 4];
  });
  core.placeLabels(faces.map((f) => f.box), sizes, image.width, image.height).forEach(([x, y, x2, y2], i) => {
    context.fillStyle = "black";
    context.fillRect(x, y, x2 - x, y2 - y);
    context.fillStyle = "white";
    context.font = fonts[i];
    context.textBaseline = "top";
    context.fillText(String(i + 1), x + 2, y + 2);
  });
}

function record(t, image, faces) {
  const now = t[t.length - 1];
  state.frames += 1;
  state.times.push(now);
  while (state.times[0] < now - FPS_WINDOW_MS) state.times.shift();
  STAGES.forEach((stage, i) => {
    state.stages[stage] = 0.9 * state.stages[stage] + 0.1 * (t[i + 1] - t[i]);
    state.totals[stage] += t[i + 1] - t[i];
  });
  state.last = { image, faces };
  if (!state.error) $("inpage-angles").textContent = describe(faces, state.frames);
  $("inpage-stats").textContent =
    `${stats().fps.toFixed(1)} processed frames/s · ` +
    STAGES.map((s) => `${s} ${state.stages[s].toFixed(1)} ms`).join(" · ");
}

// space.inference.describe: the same lines as the server stream.
function describe(faces, frame) {
  const lines = [`frame ${frame}: ${faces.length} face(s)`];
  const signed = (v) => (v >= 0 ? "+" : "") + v.toFixed(1);
  faces.forEach((f, i) =>
    lines.push(`face ${i + 1}: yaw ${signed(f.yaw)}°  pitch ${signed(f.pitch)}°  roll ${signed(f.roll)}°`),
  );
  return lines.join("\n");
}

function stats() {
  const span = state.times.length > 1 ? state.times[state.times.length - 1] - state.times[0] : 0;
  const fps = span > 0 ? ((state.times.length - 1) * 1000) / span : 0;
  const { frames, camera, dropped, mode } = state;
  return { fps, frames, camera, dropped, mode, stages: { ...state.stages }, totals: { ...state.totals } };
}

function snapshot() {
  // The last processed frame as PNG (exact pixels) and its faces: what tests send to /predict.
  if (!state.last) return null;
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [state.last.image.width, state.last.image.height];
  canvas.getContext("2d").putImageData(state.last.image, 0, 0);
  const faces = state.last.faces.map(({ box, score, yaw, pitch, roll }) => ({ box, score, yaw, pitch, roll }));
  return { png: canvas.toDataURL("image/png"), faces };
}

async function init() {
  while (!$("inpage-panel")) await new Promise((resolve) => setTimeout(resolve, 100));
  $("inpage-start").addEventListener("click", toggleCamera);
  window.addEventListener("fsanet-webcam-choice", (event) => select(...event.detail));
  if (window.fsanetWebcamChoice) select(...window.fsanetWebcamChoice);
}

window.fsanetWebcam = { core, stats, snapshot, state };
init();
