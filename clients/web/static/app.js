// The emostream page: microphone -> WebSocket session -> the avatar, drawn with three.js and three-vrm.
// URL parameters: autostart=1 (start the microphone without a click), transparent=1 (no background and no
// panel: an OBS browser source), avatar=URL (a .vrm; default the built-in one), server=ws://host:port
// (default: the server that served the page), emotion=NAME (or auto: the voice's own), intensity=0..1,
// style=NAME.
import * as THREE from "three";
import { EMOTIONS, Session, nowUs } from "/protocol.js";
import { loadAvatar } from "/avatar.js";

const params = new URLSearchParams(location.search);
const transparent = params.get("transparent") === "1";
const STYLES = ["ada", "ben", "cleo", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kai", "lena", "milo", "nora",
                "omar", "pia"]; // the shipped gesture model's presets (docs/gestures.md)
const CHUNK_S = 0.02;

// What the page has seen, for the readout and for tests that drive the page (tests/clients/test_web_page.py).
const stats = {
  state: "idle", error: null, avatar: null, perfectSync: null, sampleRate: null, chunksSent: 0,
  faceFrames: 0, bodyFrames: 0, mouthMax: 0, mouthMin: 1, mouthTrace: [], shownLatencyMs: [],
  receivedLatencyMs: [], algorithmicLatencyMs: null, serverStats: null,
};
window.emostream = { stats, summary };

const canvas = document.getElementById("view");
// The canvas is see-through: the page's gradient shows behind the avatar, or, with transparent=1, OBS's scene.
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, alpha: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
renderer.outputColorSpace = THREE.SRGBColorSpace;
renderer.setClearColor(0x000000, 0);
if (transparent) document.body.classList.add("transparent");
const scene = new THREE.Scene();
const camera = new THREE.PerspectiveCamera(28, 1, 0.05, 50);
scene.add(new THREE.HemisphereLight(0xdde4ff, 0x3a3330, 1.6));
const key = new THREE.DirectionalLight(0xffffff, 2.2);
key.position.set(0.6, 1.6, 1.4);
scene.add(key);

let avatar = null;
let session = null;
let controls = {
  emotion: [...EMOTIONS, "auto"].includes(params.get("emotion")) ? params.get("emotion") : "neutral",
  intensity: Number(params.get("intensity") ?? 1),
  style: STYLES.includes(params.get("style")) ? params.get("style") : "ada",
};
let newestFace = null; // {captureUs} of the newest face frame applied and not yet drawn

function resize() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  renderer.setSize(w, h, false);
  camera.aspect = w / Math.max(h, 1);
  camera.updateProjectionMatrix();
}

function frameCamera() {
  const head = avatar?.vrm.humanoid.getNormalizedBoneNode("head");
  const target = new THREE.Vector3(0, 1.45, 0);
  if (head) head.getWorldPosition(target);
  // head and shoulders, as a presenter is usually framed (the head bone is at the top of the neck)
  const scale = Math.max(target.y, 0.5) / 1.58;
  camera.position.set(target.x, target.y + 0.04 * scale, target.z + 1.25 * scale);
  camera.lookAt(target.x, target.y - 0.06 * scale, target.z);
}

async function useAvatar(url, label) {
  try {
    const next = await loadAvatar(url, scene);
    if (avatar) scene.remove(avatar.vrm.scene);
    avatar = next;
    if (session?.channels) avatar.setChannels(session.channels);
    stats.avatar = label;
    stats.perfectSync = avatar.perfectSync;
    frameCamera();
  } catch (error) {
    stats.error = `avatar: ${error.message}`;
  }
}

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary() {
  return {
    ...stats, mouthTrace: undefined, shownLatencyMs: undefined, receivedLatencyMs: undefined,
    shown: { p50: percentile(stats.shownLatencyMs, 0.5), p99: percentile(stats.shownLatencyMs, 0.99),
             n: stats.shownLatencyMs.length },
    received: { p50: percentile(stats.receivedLatencyMs, 0.5), p99: percentile(stats.receivedLatencyMs, 0.99) },
  };
}

function showStatus() {
  const s = summary();
  const ms = (v) => (v === null ? "-" : `${v.toFixed(1)} ms`);
  document.getElementById("status").textContent =
    `${stats.state}${stats.error ? `: ${stats.error}` : ""}\n` +
    `frames: face ${stats.faceFrames}, body ${stats.bodyFrames}\n` +
    `capture -> shown: p50 ${ms(s.shown.p50)}, p99 ${ms(s.shown.p99)}\n` +
    `(+ ${stats.algorithmicLatencyMs?.toFixed(0) ?? "-"} ms lookahead, not included)` + voiceLine();
}

// The server's estimate of the voice's emotion, when the session asked for it (docs/protocol.md, stats).
function voiceLine() {
  const values = stats.serverStats ?? {};
  const blend = EMOTIONS.map((emotion) => [emotion, values[`voice.${emotion}`]]).filter(([, w]) => w !== undefined);
  if (!blend.length) return "";
  const [top, weight] = blend.reduce((a, b) => (b[1] > a[1] ? b : a));
  return `\nvoice: ${top} ${weight.toFixed(2)}, arousal ${values["voice.arousal"].toFixed(2)}`;
}

async function start() {
  if (session) return;
  stats.state = "starting";
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    const context = new AudioContext();
    await context.resume();
    stats.sampleRate = context.sampleRate;
    await context.audioWorklet.addModule("/capture-worklet.js");
    const capture = new AudioWorkletNode(context, "emostream-capture", {
      processorOptions: { chunkSamples: Math.round(context.sampleRate * CHUNK_S) },
    });
    const silent = new GainNode(context, { gain: 0 }); // keeps the worklet pulled without playing the voice
    context.createMediaStreamSource(media).connect(capture).connect(silent).connect(context.destination);
    const url = params.get("server") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
    session = new Session(url, context.sampleRate, controls, {
      header: (header) => {
        stats.algorithmicLatencyMs = header.algorithmic_latency_ms;
        avatar?.setChannels(session.channels);
      },
      frame: (stream, values, captureUs) => {
        const now = nowUs();
        if (stream === "face") {
          stats.faceFrames++;
          avatar?.applyFace(values);
          const mouth = avatar ? avatar.mouth : values[session.channels.face.indexOf("jawOpen")];
          stats.mouthMax = Math.max(stats.mouthMax, mouth);
          stats.mouthMin = Math.min(stats.mouthMin, mouth);
          if (stats.mouthTrace.length < 6000) stats.mouthTrace.push(mouth);
          if (captureUs > 0) {
            stats.receivedLatencyMs.push((now - captureUs) / 1000);
            newestFace = { captureUs };
          }
        } else {
          stats.bodyFrames++;
          avatar?.applyBody(values);
        }
      },
      error: (error) => { stats.error = `${error.code}: ${error.message}`; },
      stats: (values) => { stats.serverStats = values; },
      closed: () => { stats.state = "closed"; session = null; },
    });
    capture.port.onmessage = (event) => {
      const { samples, startTime } = event.data;
      // the chunk's first sample was captured (now - how long ago the audio clock passed it)
      const captureUs = nowUs() - Math.round((context.currentTime - startTime) * 1e6);
      session?.sendAudio(samples, captureUs);
      stats.chunksSent++;
    };
    await session.ready;
    stats.state = "streaming";
    document.getElementById("start").textContent = "Streaming";
  } catch (error) {
    stats.state = "failed";
    stats.error = error.message;
  }
}

function setControl(change) {
  controls = { ...controls, ...change };
  session?.setControls(change);
  for (const button of document.querySelectorAll("#emotions button")) {
    button.classList.toggle("on", button.dataset.emotion === controls.emotion);
  }
}

function buildPanel() {
  const box = document.getElementById("emotions");
  EMOTIONS.forEach((emotion, i) => {
    const button = document.createElement("button");
    button.textContent = `${i + 1} ${emotion}`;
    button.dataset.emotion = emotion;
    button.onclick = () => setControl({ emotion });
    box.append(button);
  });
  const auto = document.createElement("button");  // the emotion the voice carries, estimated by the server
  auto.textContent = "0 auto";
  auto.dataset.emotion = "auto";
  auto.onclick = () => setControl({ emotion: "auto" });
  box.append(auto);
  const intensity = document.getElementById("intensity");
  intensity.value = controls.intensity;
  intensity.oninput = () => setControl({ intensity: Number(intensity.value) });
  const style = document.getElementById("style");
  for (const name of STYLES) style.append(new Option(name, name, false, name === controls.style));
  style.onchange = () => setControl({ style: style.value });
  document.getElementById("start").onclick = start;
  window.addEventListener("keydown", (event) => {
    const k = Number(event.key);
    if (k >= 1 && k <= EMOTIONS.length) setControl({ emotion: EMOTIONS[k - 1] });
    if (event.key === "0") setControl({ emotion: "auto" });
  });
  document.getElementById("avatar-file").onchange = (event) => {
    const file = event.target.files[0];
    if (file) useAvatar(URL.createObjectURL(file), file.name);
  };
  const drop = document.getElementById("drop");
  window.addEventListener("dragover", (event) => { event.preventDefault(); drop.style.display = "flex"; });
  window.addEventListener("dragleave", () => { drop.style.display = "none"; });
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.style.display = "none";
    const file = event.dataTransfer.files[0];
    if (file) useAvatar(URL.createObjectURL(file), file.name);
  });
  setControl({});
}

const clock = new THREE.Clock();
function draw() {
  requestAnimationFrame(draw);
  resize();
  avatar?.update(clock.getDelta());
  renderer.render(scene, camera);
  if (newestFace) { // on screen from this frame: capture -> shown
    stats.shownLatencyMs.push((nowUs() - newestFace.captureUs) / 1000);
    if (stats.shownLatencyMs.length > 20000) stats.shownLatencyMs.splice(0, 10000);
    newestFace = null;
  }
}

buildPanel();
setInterval(showStatus, 250);
useAvatar(params.get("avatar") || "/avatar.vrm", params.get("avatar") || "built-in").then(() => {
  if (params.get("autostart") === "1") start();
});
draw();
