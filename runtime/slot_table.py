"""Every open session as a row of arrays over slots, stepped together: the inference loop's whole state.

A tick does a fixed number of array operations, however many sessions are open:

1. **Front-end.** The audio table's counters say how many input samples each slot has; the hops and
   log-mel frames they complete are computed for all slots in one batch per input rate
   (runtime/batched_frontend.py) and written to each slot's feature ring.
2. **Steps.** Each timeline (a face lookahead, or the body) steps the slots that have the feature frames
   their next step needs, as one batched step. A slot with a backlog takes more steps in later rounds
   of the same tick, up to `max_rounds`; the rest waits for the next tick, so one session's burst of
   audio never holds the others' frames back for long.
3. **Outputs.** Frames come out as arrays per stream (`StreamFrames`), stamped from the audio table.

Per-slot inputs are arrays too: the emotion blend (start, target, frames left), the seed (noise is a pure
function of seed and step, runtime/noise.py), the style embedding, the face-region gains, the sampler
step count. Generator state lives on the device in tensors of `n_slots` rows; a step reads and writes
only the rows it steps (`mode="compact"`, the default: on a CPU, computing idle rows costs more than
copying the active ones), or steps the first rows up to the highest open slot with the others masked
idle (`mode="masked"`: on a GPU, compute is cheap and copies are not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from emostream.runtime.audio import N_MELS, SUPPORTED_RATES_HZ
from emostream.runtime.audio import SILENT_LOG_MEL as SILENT_FEATURE
from emostream.runtime.audio_table import AudioTable
from emostream.runtime.batched_frontend import MAX_HOPS_PER_TICK, MODEL_RING, BatchedLogMel
from emostream.runtime.blinks import apply_blinks
from emostream.runtime.errors import SessionError
from emostream.runtime.messages import VOICE_EMOTION, SlotChange, SlotSettings, StreamFrames
from emostream.runtime.models.face import N_EMOTIONS
from emostream.runtime.models.voice_emotion import INPUTS_PER_STEP, NEUTRAL
from emostream.runtime.noise import gaussian_noise
from emostream.runtime.pitch import N_PITCH
from emostream.runtime.rigs import ARKIT_BLENDSHAPES
from emostream.runtime.step import FlatState, StepRunner, StreamingGenerator, TensorDict

FEATURE_RING = 128  # feature frames kept per slot (1.07 s): a timeline may lag the front-end this far
ESTIMATE_RING = FEATURE_RING // INPUTS_PER_STEP  # voice-emotion estimates kept per slot: as far back
ESTIMATE_WIDTH = N_EMOTIONS + 2  # the blend, arousal, valence
NEUTRAL_ESTIMATE = np.eye(ESTIMATE_WIDTH, dtype=np.float32)[NEUTRAL]
STEP_MODES = ("compact", "masked")


class EmotionBlends:
    """Each slot's emotion input, blending linearly from where it was to a new target over a number of
    frames of its stream. A row is the chosen emotion's vector and, last, the scale of the voice's
    estimate (runtime/controls.py, `emotion_controls`): both blend together."""

    def __init__(self, n_slots: int, fps: int) -> None:
        self.fps = fps
        self.start = np.zeros((n_slots, N_EMOTIONS + 1), np.float32)
        self.target = np.zeros((n_slots, N_EMOTIONS + 1), np.float32)
        self.left = np.zeros(n_slots, np.int64)  # frames until the target is reached
        self.total = np.ones(n_slots, np.int64)

    def current(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), N_EMOTIONS + 1): vector, then the estimate's scale."""
        w = (1.0 - self.left[rows] / self.total[rows])[:, None].astype(np.float32)
        return (1.0 - w) * self.start[rows] + w * self.target[rows]

    def reset(self, slot: int, vector: np.ndarray, auto: float = 0.0) -> None:
        self.start[slot] = self.target[slot] = np.append(vector, auto)
        self.left[slot] = 0

    def set(self, slot: int, vector: np.ndarray, auto: float, transition_ms: float) -> None:
        rows = np.array([slot])
        self.start[slot] = self.current(rows)[0]
        self.target[slot] = np.append(vector, auto)
        self.total[slot] = self.left[slot] = max(1, round(transition_ms * self.fps / 1000))

    def advance(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), N_EMOTIONS + 1): the vectors and scales for the next frame of these slots."""
        self.left[rows] = np.maximum(self.left[rows] - 1, 0)
        return self.current(rows)


class FeatureReader:
    """What reads the feature rings step by step: `inputs_per_step` frames a step, `steps_taken` per slot,
    after a silent prefix of `prefix` frames."""

    inputs_per_step: int
    steps_taken: np.ndarray
    prefix: int

    def features_needed(self, slots: np.ndarray) -> np.ndarray:
        """Feature frames a slot must have for its next step (the silent prefix counts as had)."""
        return self.inputs_per_step * (self.steps_taken[slots] + 1) - self.prefix

    def oldest_needed(self, slots: np.ndarray) -> np.ndarray:
        """The first feature frame the slot's next step reads."""
        return self.inputs_per_step * self.steps_taken[slots] - self.prefix


class VoiceEmotionTrack(FeatureReader):
    """The voice-emotion estimator (runtime/models/voice_emotion.py) over the slots whose emotion follows
    the voice: its state rows on the device and a ring of each slot's recent estimates (blend, arousal,
    valence), one per step (four face frames' audio). A face or body frame takes the newest estimate
    of the audio up to its own newest feature frame, so the frames do not depend on how the audio was
    chunked. With pitch, the estimator's step computes it for its own windows of the model-rate ring. A
    slot joins when a session first asks for the voice's emotion and stays until it closes."""

    prefix = 0

    def __init__(self, generator: StreamingGenerator, make_runner: Callable[[StreamingGenerator], StepRunner],
                 n_slots: int) -> None:  # fmt: skip
        self.generator = FlatState(generator).eval()
        self.runner = make_runner(self.generator)
        self.inputs_per_step = generator.spec.inputs_per_step
        self.state = self.runner.init_state(n_slots)
        self.device = next(iter(self.state.values())).device
        self.member = np.zeros(n_slots, bool)
        self.steps_taken = np.zeros(n_slots, np.int64)
        self.fresh = np.zeros(n_slots, bool)
        # Whether it hears the voice's pitch beside the log-mel frames (computed for its slots only).
        self.hears_pitch = any(spec.name == "pitch" for spec in generator.spec.inputs)
        self.ring = np.zeros((n_slots, ESTIMATE_RING, ESTIMATE_WIDTH), np.float32)

    def start(self, slot: int, first_step: int) -> None:
        """The slot's estimates begin with the step that reads feature frames from 2 * first_step on."""
        self.member[slot], self.fresh[slot] = True, True
        self.steps_taken[slot] = first_step
        self.ring[slot] = NEUTRAL_ESTIMATE

    def estimates(self, rows: np.ndarray, features_end: np.ndarray) -> np.ndarray:
        """(len(rows), ESTIMATE_WIDTH): for each row, the estimate after the feature frames before
        `features_end` (the newest it has, if the estimator has not got that far; neutral before any)."""
        wanted = np.minimum(features_end // self.inputs_per_step - 1, self.steps_taken[rows] - 1)
        estimates = self.ring[rows, np.maximum(wanted, 0) % ESTIMATE_RING]
        estimates[wanted < 0] = NEUTRAL_ESTIMATE
        return estimates


class Timeline(FeatureReader):
    """One generator over every slot (a face lookahead, or the body): its state rows on the device, and
    per slot whether it is in, how many steps it took, its emotion blend, seed, style and gains.
    `make_generator(steps)` builds the generator for a sampler step count; the timeline packs its state
    into one tensor (FlatState) and `make_runner` wraps that; `output` names the step output that becomes
    the stream's frames."""

    def __init__(
        self,
        stream: str,
        output: str,
        make_generator: Callable[[int], StreamingGenerator],
        make_runner: Callable[[StreamingGenerator], StepRunner],
        n_slots: int,
        fps: int,
        noise_kind: int,
        lookahead_s: float,
        default_steps: int = 2,
    ) -> None:
        self.stream, self.fps, self.noise_kind, self.lookahead_s = stream, fps, noise_kind, lookahead_s
        self._make_generator, self._make_runner = make_generator, make_runner
        self.generators: dict[int, StreamingGenerator] = {}
        self.runners: dict[int, StepRunner] = {}
        reference = self.generator(default_steps)
        spec = reference.spec
        self.inputs_per_step = spec.inputs_per_step
        self.delay = spec.delay_frames
        self.prefix = int(getattr(reference, "prefix", 0))  # silent feature frames that start a stream
        self.output = output
        self.n_noise = spec.noise.shape[0]
        styles = [t.shape[-1] for t in spec.inputs if t.name == "style"]
        self.style_dim = styles[0] if styles else 0
        self.state = self.runner(default_steps).init_state(n_slots)
        self.device = next(iter(self.state.values())).device
        self.member = np.zeros(n_slots, bool)
        self.steps_taken = np.zeros(n_slots, np.int64)
        self.fresh = np.zeros(n_slots, bool)
        self.n_steps = np.full(n_slots, default_steps, np.int64)
        self.seed = np.zeros(n_slots, np.int64)
        self.emotion = EmotionBlends(n_slots, fps)
        self.style = np.zeros((n_slots, self.style_dim), np.float32)
        self.gains: np.ndarray | None = None  # (n_slots, channels) for the face
        self.pending: dict[int, list[tuple[int, SlotChange]]] = {}  # slot -> (first frame, change) to come
        self.has_pending = np.zeros(n_slots, bool)

    def generator(self, steps: int) -> StreamingGenerator:
        if steps not in self.generators:
            self.generators[steps] = FlatState(self._make_generator(steps)).eval()
        return self.generators[steps]

    def runner(self, steps: int) -> StepRunner:
        if steps not in self.runners:
            self.runners[steps] = self._make_runner(self.generator(steps))
        return self.runners[steps]

    def open(self, slot: int, settings: SlotSettings) -> None:
        self.pending.pop(slot, None)
        self.has_pending[slot] = False
        self.member[slot], self.fresh[slot] = True, True
        self.steps_taken[slot] = 0
        self.n_steps[slot], self.seed[slot] = settings.steps, settings.seed
        self.emotion.reset(slot, settings.emotion, settings.auto_emotion)
        if self.style_dim and settings.style is not None:
            self.style[slot] = settings.style
        if self.stream == "face":
            self.set_gains(slot, settings.face_gains)

    def set_gains(self, slot: int, gains: np.ndarray | None) -> None:
        if gains is None and self.gains is None:
            return
        if self.gains is None:
            self.gains = np.ones((self.member.size, len(ARKIT_BLENDSHAPES) + 7), np.float32)
        self.gains[slot] = 1.0 if gains is None else gains

    def change(self, slot: int, change: SlotChange, first_frame: int) -> None:
        """`change` applies from frame `first_frame` of this stream on."""
        if self.steps_taken[slot] - self.delay >= first_frame:
            self._apply(slot, change)
        else:
            self.pending.setdefault(slot, []).append((first_frame, change))
            self.has_pending[slot] = True

    def apply_due(self, rows: np.ndarray) -> None:
        """Applies the pending changes whose first frame the next step of these slots makes."""
        for slot in rows[self.has_pending[rows]].tolist():
            next_frame = self.steps_taken[slot] - self.delay
            waiting = self.pending[slot]
            for first_frame, change in [w for w in waiting if w[0] <= next_frame]:
                self._apply(slot, change)
                waiting.remove((first_frame, change))
            if not waiting:
                del self.pending[slot]
                self.has_pending[slot] = False

    def _apply(self, slot: int, change: SlotChange) -> None:
        if change.emotion is not None:
            self.emotion.set(slot, change.emotion, change.auto_emotion, change.transition_ms)
        if change.steps is not None:
            self.n_steps[slot] = change.steps
        if change.seed is not None:
            self.seed[slot] = change.seed
        if change.style is not None and self.style_dim:
            self.style[slot] = change.style
        if change.face_gains is not None and self.stream == "face":
            self.set_gains(slot, change.face_gains)


class SlotTable:
    """All slots of one inference loop. `audio` is the audio table the I/O side writes; `make_runner`
    wraps each generator (eager: the generator itself); `timelines` maps a key to a factory of timelines
    (see `face_timeline_factory`)."""

    def __init__(
        self,
        audio: AudioTable,
        make_timeline: Callable[[str | int], Timeline],
        device: torch.device | str = "cpu",
        max_rounds: int = 4,
        mode: str = "compact",
        voice: VoiceEmotionTrack | None = None,
    ) -> None:
        if mode not in STEP_MODES:
            raise ValueError(f"step mode must be one of {STEP_MODES}, got {mode!r}")
        n = audio.n_slots
        self.audio, self.n_slots, self.device = audio, n, torch.device(device)
        self.max_rounds, self.mode = max_rounds, mode
        self._make_timeline = make_timeline
        self.timelines: dict[str | int, Timeline] = {}
        self.voice = voice  # the voice-emotion estimator, for sessions whose emotion follows the voice
        self.frontend = BatchedLogMel(self.device)
        self.open_mask = np.zeros(n, bool)
        self.rate = np.full(n, SUPPORTED_RATES_HZ[0], np.int64)
        self.n_features = np.zeros(n, np.int64)  # feature frames computed (= hops resampled)
        self.model = torch.zeros((n, MODEL_RING.row), device=self.device)
        self.features = torch.zeros((n, FEATURE_RING, N_MELS), device=self.device)
        self._silent = torch.full((N_MELS,), SILENT_FEATURE, device=self.device)
        self.seconds = {"frontend": 0.0, "step": 0.0}  # time in the front-end's and the generators' arithmetic
        self.voice_steps = 0  # rows the voice-emotion estimator has stepped

    def timeline(self, key: str | int) -> Timeline:
        """The body timeline ("body") or the face timeline of a lookahead (an int), made on first use."""
        if key not in self.timelines:
            self.timelines[key] = self._make_timeline(key)
        return self.timelines[key]

    # -- commands ----------------------------------------------------------------------------------

    def open(self, slot: int, settings: SlotSettings) -> None:
        """Starts a stream in a slot the I/O side has claimed (its audio may already be arriving)."""
        if settings.rate_hz not in self.frontend.plans:
            raise SessionError(f"sample rate {settings.rate_hz} Hz is not supported")
        keys: list[str | int] = [] if settings.face_lookahead is None else [settings.face_lookahead]
        keys += [] if settings.style is None else ["body"]
        if not keys:
            raise SessionError("a slot with no stream")
        if settings.auto_emotion > 0 and self.voice is None:
            raise SessionError("this server has no voice-emotion estimator")
        self.close(slot)
        for key in keys:
            self.timeline(key).open(slot, settings)
        self.open_mask[slot] = True
        self.rate[slot] = settings.rate_hz
        self.n_features[slot] = 0
        self.model[slot] = 0.0
        if settings.auto_emotion > 0 and self.voice is not None:
            self.voice.start(slot, 0)

    def close(self, slot: int) -> None:
        self.open_mask[slot] = False
        for timeline in self.timelines.values():
            timeline.member[slot] = False
        if self.voice is not None:
            self.voice.member[slot] = False

    def control(self, slot: int, change: SlotChange, from_sample: int = 0) -> None:
        """Applies a controls update to the slot's frames from media sample `from_sample` on: at once for
        a timeline already past it, else when its steps reach that frame. An update that first asks for
        the voice's emotion starts the estimator on the slot's newest audio."""
        if change.emotion is not None and change.auto_emotion > 0:
            if self.voice is None:
                raise SessionError("this server has no voice-emotion estimator")
            if not self.voice.member[slot]:
                # From the next whole step on: the model-rate ring may no longer hold older windows.
                self.voice.start(slot, -(-int(self.n_features[slot]) // self.voice.inputs_per_step))
        for timeline in self._slot_timelines(slot):
            timeline.change(slot, change, math.ceil(from_sample * timeline.fps / self.rate[slot]))

    def _slot_timelines(self, slot: int) -> list[Timeline]:
        return [t for t in self.timelines.values() if t.member[slot]]

    # -- the tick ----------------------------------------------------------------------------------

    @torch.no_grad()
    def run_frontend(self) -> int:
        """Computes the feature frames every open slot's new audio completes; returns how many."""
        slots = np.flatnonzero(self.open_mask)
        if slots.size == 0:
            return 0
        written, _ = self.audio.snapshot()
        # Never overwrite a feature frame a timeline has yet to read, nor take more hops than the
        # model-rate ring holds in one tick.
        oldest = np.full(slots.size, 1 << 40)
        for t in self._tracks():
            inside = t.member[slots]
            oldest[inside] = np.minimum(oldest[inside], t.oldest_needed(slots[inside]))
        limit = np.minimum(oldest + FEATURE_RING, self.n_features[slots] + MAX_HOPS_PER_TICK)
        if self.voice is not None and self.voice.hears_pitch:  # its windows stay in the model-rate ring
            inside = self.voice.member[slots]
            limit[inside] = np.minimum(limit[inside], self.voice.oldest_needed(slots[inside]) + MAX_HOPS_PER_TICK)
        pairs_slots, pairs_hops = [], []
        for rate in np.unique(self.rate[slots]):
            at_rate = slots[self.rate[slots] == rate]
            plan = self.frontend.plans[int(rate)]
            end = np.minimum(plan.hops_ready(written[at_rate]), limit[self.rate[slots] == rate])
            count = np.maximum(end - self.n_features[at_rate], 0)
            if count.sum() == 0:
                continue
            hop_slots = np.repeat(at_rate, count)
            hops = np.repeat(self.n_features[at_rate], count) + _ranges(count)
            started = time.perf_counter()
            self.frontend.resample_hops(torch.from_numpy(self.audio.pcm), self.model, int(rate), hop_slots, hops)
            self.seconds["frontend"] += time.perf_counter() - started
            self.n_features[at_rate] += count
            self.audio.consumed[at_rate] = np.maximum(plan.starts(self.n_features[at_rate]), 0)
            pairs_slots.append(hop_slots)
            pairs_hops.append(hops)
        if not pairs_slots:
            return 0
        hop_slots, hops = np.concatenate(pairs_slots), np.concatenate(pairs_hops)
        started = time.perf_counter()
        frames = self.frontend.frames(self.model, hop_slots, hops)
        self.features[_t(hop_slots, self.device), _t(hops % FEATURE_RING, self.device)] = frames
        self.seconds["frontend"] += time.perf_counter() - started
        return int(hops.size)

    def _tracks(self) -> list[Timeline | VoiceEmotionTrack]:
        """Everything that reads the feature rings."""
        return [*self.timelines.values(), *([] if self.voice is None else [self.voice])]

    @torch.no_grad()
    def step_ready(self) -> list[StreamFrames]:
        """Steps the voice-emotion estimator, then every timeline's ready slots (`step_timeline`); returns
        the frames, one batch per stream."""
        voice = self.step_voice()
        made = [voice, *(self.step_timeline(timeline) for timeline in self.timelines.values())]
        by_stream: dict[str, list[StreamFrames]] = {}
        for frames in made:
            if frames is not None:
                by_stream.setdefault(frames.stream, []).append(frames)
        return [StreamFrames.concat(parts) for parts in by_stream.values()]

    @torch.no_grad()
    def step_timeline(self, timeline: Timeline) -> StreamFrames | None:
        """Steps the timeline's ready slots, round after round (a slot with a backlog takes up to
        `max_rounds` steps); returns the frames made, or None."""
        parts = []
        for _ in range(self.max_rounds):
            slots = np.flatnonzero(timeline.member)
            ready = slots[timeline.features_needed(slots) <= self.n_features[slots]]
            if ready.size == 0:
                break
            timeline.apply_due(ready)  # controls that take effect at the frames these steps make
            for steps in np.unique(timeline.n_steps[ready]):
                rows = ready[timeline.n_steps[ready] == steps]
                parts.append(self._step(timeline, int(steps), rows))
        if not parts:
            return None
        slots, indices, values, newest_feature = (np.concatenate(column) for column in zip(*parts, strict=True))
        if slots.size == 0:
            return None
        return StreamFrames(timeline.stream, slots, indices, values, *self._stamps(slots, newest_feature))

    @torch.no_grad()
    def step_voice(self) -> StreamFrames | None:
        """Steps the voice-emotion estimator over all the audio its slots have (it is small, and the
        timelines read its estimates); returns each stepped slot's newest estimate as one row of the
        "voice_emotion" stream, or None."""
        voice = self.voice
        if voice is None or not voice.member.any():
            return None
        newest: dict[int, int] = {}
        for _ in range(ESTIMATE_RING):
            slots = np.flatnonzero(voice.member)
            rows = slots[voice.features_needed(slots) <= self.n_features[slots]]
            if rows.size == 0:
                break
            first = voice.oldest_needed(rows)
            index = first[:, None] + np.arange(voice.inputs_per_step)[None, :]
            where = (_t(rows[:, None], self.device), _t(index % FEATURE_RING, self.device))
            inputs = {"features": self.features[where].to(voice.device)}
            if voice.hears_pitch:  # from the model-rate ring, which run_frontend keeps from overwriting them
                started = time.perf_counter()
                pitch = self.frontend.pitch(self.model, np.repeat(rows, voice.inputs_per_step), index.ravel())
                inputs["pitch"] = pitch.reshape(rows.size, voice.inputs_per_step, N_PITCH).to(voice.device)
                self.seconds["frontend"] += time.perf_counter() - started
            noise = torch.zeros(rows.size, 1, device=voice.device)
            reset = torch.from_numpy(voice.fresh[rows]).to(voice.device)
            outputs = self._run(voice, voice.runner, rows, inputs, noise, reset)
            voice.fresh[rows] = False
            made = torch.cat([outputs["emotion"][:, 0], outputs["arousal_valence"][:, 0]], dim=-1)
            steps = voice.steps_taken[rows]
            voice.ring[rows, steps % ESTIMATE_RING] = made.float().cpu().numpy()
            voice.steps_taken[rows] += 1
            self.voice_steps += rows.size
            newest.update(zip(rows.tolist(), steps.tolist(), strict=True))
        if not newest:
            return None
        slots, steps = np.array(list(newest), np.int64), np.array(list(newest.values()), np.int64)
        values = voice.ring[slots, steps % ESTIMATE_RING]
        newest_feature = voice.inputs_per_step * (steps + 1) - 1
        return StreamFrames(VOICE_EMOTION, slots, steps, values, *self._stamps(slots, newest_feature))

    def has_backlog(self) -> bool:
        """Whether some slot could step again now (it had more audio than `max_rounds` steps use)."""
        for timeline in self.timelines.values():
            slots = np.flatnonzero(timeline.member)
            if np.any(timeline.features_needed(slots) <= self.n_features[slots]):
                return True
        return False

    def _step(self, timeline: Timeline, steps: int, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """One batched step of `rows`: (slots, frame indices, values, newest feature frame used) of the
        frames it emits (warm-up steps emit none)."""
        runner = timeline.runner(steps)
        device = timeline.device
        first = timeline.oldest_needed(rows)  # (n,) first feature frame of each step
        index = first[:, None] + np.arange(timeline.inputs_per_step)[None, :]  # (n, inputs per step)
        features = self.features[_t(rows[:, None], self.device), _t(index % FEATURE_RING, self.device)]
        features = torch.where(_t(index < 0, self.device)[..., None], self._silent, features)  # (n, I, N_MELS)
        emotion = self._emotion_inputs(timeline, rows, first)
        inputs = {"features": features.to(device), "emotion": torch.from_numpy(emotion[:, None]).to(device)}
        if timeline.style_dim:
            inputs["style"] = torch.from_numpy(timeline.style[rows][:, None]).to(device)
        noise = torch.from_numpy(gaussian_noise(timeline.seed[rows], timeline.steps_taken[rows], timeline.n_noise,
                                                timeline.noise_kind)).to(device)  # fmt: skip
        reset = torch.from_numpy(timeline.fresh[rows]).to(device)
        outputs = self._run(timeline, runner, rows, inputs, noise, reset)
        timeline.fresh[rows] = False
        values = outputs[timeline.output][:, 0].float().cpu().numpy()
        if timeline.stream == "face":  # the eyelids' blinks are drawn, not sampled (runtime/blinks.py)
            values = apply_blinks(values, timeline.seed[rows], timeline.steps_taken[rows] - timeline.delay, emotion)
        if timeline.gains is not None:
            values = values * timeline.gains[rows]
            n = len(ARKIT_BLENDSHAPES)
            values[:, :n] = np.clip(values[:, :n], 0.0, 1.0)
        indices = timeline.steps_taken[rows] - timeline.delay
        timeline.steps_taken[rows] += 1
        keep = indices >= 0
        rows, indices, values = rows[keep], indices[keep], values[keep]
        return rows, indices, values, timeline.inputs_per_step * (indices + timeline.delay + 1) - timeline.prefix - 1

    def _emotion_inputs(self, timeline: Timeline, rows: np.ndarray, first: np.ndarray) -> np.ndarray:
        """(len(rows), N_EMOTIONS) for the next step of these rows (whose first feature frame is `first`):
        the chosen emotion plus, where asked, the voice's estimate of the audio up to the step's own."""
        blend = timeline.emotion.advance(rows)
        vector, auto = blend[:, :N_EMOTIONS], blend[:, N_EMOTIONS]
        if self.voice is None or not np.any(auto > 0):
            return vector
        estimates = self.voice.estimates(rows, first + timeline.inputs_per_step)[:, :N_EMOTIONS]
        return vector + auto[:, None] * estimates

    def _run(self, timeline: Timeline | VoiceEmotionTrack, runner: StepRunner, rows: np.ndarray,
             inputs: TensorDict, noise: Tensor, reset: Tensor) -> TensorDict:  # fmt: skip
        device, n = timeline.device, rows.size
        if self.mode == "compact":
            index = _t(rows, device)
            state = {k: v.index_select(0, index) for k, v in timeline.state.items()}
            fresh = timeline.fresh[rows]
            if fresh.any():  # a new stream starts from the zero state (a compact step has no reset mask)
                for v in state.values():
                    v[_t(fresh, device)] = 0
            active = torch.ones(n, dtype=torch.bool, device=device)
            started = time.perf_counter()
            outputs, new_state = runner.step(inputs, state, noise, reset, active)
            self.seconds["step"] += time.perf_counter() - started
            for k, v in new_state.items():
                timeline.state[k].index_copy_(0, index, v)
            return outputs
        # Masked: rows 0 .. top of the table, the stepped ones active, the rest idle (untouched by contract).
        top = int(rows.max()) + 1
        index = _t(rows, device)

        def spread(x: Tensor, fill: float | bool = 0) -> Tensor:
            full = torch.full((top, *x.shape[1:]), fill, dtype=x.dtype, device=device)
            full[index] = x
            return full

        active = spread(torch.ones(n, dtype=torch.bool, device=device), False)
        state = {k: v[:top] for k, v in timeline.state.items()}
        inputs, noise, reset = {k: spread(v) for k, v in inputs.items()}, spread(noise), spread(reset, False)
        started = time.perf_counter()
        outputs, new_state = runner.step(inputs, state, noise, reset, active)
        self.seconds["step"] += time.perf_counter() - started
        for k, v in new_state.items():
            if top == self.n_slots:
                timeline.state[k] = v  # the whole table: take the new tensors, no copy
            else:
                timeline.state[k][:top] = v
        return {k: v[index] for k, v in outputs.items()}

    def _stamps(self, slots: np.ndarray, newest_feature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Capture and receive stamps of the newest real input sample each frame used."""
        if slots.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        newest = np.empty(slots.size, np.int64)
        rates = self.rate[slots]
        for rate in np.unique(rates):
            chosen = rates == rate
            newest[chosen] = self.frontend.plans[int(rate)].newest_sample(newest_feature[chosen])
        newest = np.minimum(newest, self.audio.real[slots] - 1)  # the silence after the end has no stamp
        return self.audio.stamps(slots, newest, rates)


def _ranges(counts: np.ndarray) -> np.ndarray:
    """concatenate([arange(c) for c in counts]) without a Python loop."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _t(array: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)
