// The emostream wire protocol, version 1 (docs/protocol.md), from JavaScript alone: hello, float32 audio
// chunks with their capture times, face and body frames, controls. One Session per WebSocket.

const FRAME_HEADER = 40;
const AUDIO_HEADER = 24;
export const EMOTIONS = ["neutral", "happy", "sad", "surprised", "fear", "disgusted", "angry", "contempt"];

export function nowUs() {
  // the page's wall clock in microseconds: capture stamps and latencies use this one clock
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class Session {
  constructor(url, sampleRate, controls, handlers) {
    this.sampleRate = sampleRate;
    this.handlers = handlers; // {header, frame(stream, values, captureUs, index), error, stats, closed}
    this.seq = 0;
    this.nextSample = 0;
    this.requestId = 0;
    this.channels = {};
    this.ws = new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.ready = new Promise((resolve, reject) => {
      this.ws.onopen = () => {
        this.ws.send(JSON.stringify({
          type: "hello", protocol: 1, sample_rate_hz: sampleRate, sample_format: "f32le",
          streams: ["face", "body"], controls, client: "emostream-page/1",
        }));
      };
      this.ws.onmessage = (event) => this.receive(event.data, resolve, reject);
      this.ws.onclose = (event) => {
        reject(new Error(`closed (${event.code}) before the header`));
        this.handlers.closed?.(event);
      };
    });
  }

  receive(data, resolve, reject) {
    if (typeof data === "string") {
      const message = JSON.parse(data);
      if (message.type === "header") {
        for (const [name, stream] of Object.entries(message.streams)) this.channels[name] = stream.channels;
        this.header = message;
        this.handlers.header?.(message);
        resolve(message);
      } else if (message.type === "error") {
        this.handlers.error?.(message);
        if (message.fatal) reject(new Error(`${message.code}: ${message.message}`));
      } else if (message.type === "stats") {
        this.handlers.stats?.(message.values);
      }
      return;
    }
    const v = new DataView(data);
    if (v.getUint8(0) !== 2 || v.getUint8(1) !== 1) return; // not a v1 frame
    const stream = ["face", "body"][v.getUint8(2)];
    const index = v.getUint32(4, true);
    const captureUs = Number(v.getBigInt64(16, true));
    const n = v.getUint32(36, true);
    const values = new Float32Array(data, FRAME_HEADER, n);
    this.handlers.frame?.(stream, values, captureUs, index);
  }

  sendAudio(samples, captureUs) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const buffer = new ArrayBuffer(AUDIO_HEADER + 4 * samples.length);
    const v = new DataView(buffer);
    v.setUint8(0, 1); // audio
    v.setUint8(1, 1); // version
    v.setUint8(2, 2); // f32le
    v.setUint8(3, 0);
    v.setUint32(4, this.seq++, true);
    v.setBigUint64(8, BigInt(this.nextSample), true);
    v.setBigInt64(16, BigInt(captureUs), true);
    new Float32Array(buffer, AUDIO_HEADER).set(samples);
    this.nextSample += samples.length;
    this.ws.send(buffer);
  }

  setControls(controls) {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "controls", request_id: ++this.requestId, controls }));
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "end" }));
  }
}
