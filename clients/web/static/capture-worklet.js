// Microphone capture on the audio thread: the 128-sample render quanta are gathered into chunks of
// `chunkSamples` (20 ms by default) and posted, with the AudioContext time of their first sample, to the page.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = options.processorOptions.chunkSamples;
    this.chunk = new Float32Array(this.size);
    this.filled = 0;
    this.startTime = 0;
  }

  process(inputs) {
    const input = inputs[0];
    const channel = input && input.length ? input[0] : null;
    const block = channel || new Float32Array(128); // no input yet: silence keeps media time running
    let offset = 0;
    while (offset < block.length) {
      if (this.filled === 0) this.startTime = currentTime + offset / sampleRate;
      const take = Math.min(this.size - this.filled, block.length - offset);
      this.chunk.set(block.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.size) {
        this.port.postMessage({ samples: this.chunk.slice(), startTime: this.startTime });
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("emostream-capture", CaptureProcessor);
