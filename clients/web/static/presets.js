// ARKit frames onto VRM presets, for avatars without ARKit morphs: the fit of clients/avatar/vrm.py
// (arkit_to_vrm) in JavaScript, with no three.js so that a test can run it in Node beside the Python one.

export const ARKIT = [
  "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
  "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
  "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
  "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
  "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
  "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
  "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
  "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
  "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
];

// The VRM presets as ARKit poses: the table clients/avatar/vrm.py writes into the exported VRM.
const PRESETS = {
  aa: { jawOpen: 0.7, mouthLowerDownLeft: 0.3, mouthLowerDownRight: 0.3 },
  ih: { jawOpen: 0.25, mouthStretchLeft: 0.45, mouthStretchRight: 0.45 },
  ou: { jawOpen: 0.15, mouthPucker: 0.85, mouthFunnel: 0.35 },
  ee: { jawOpen: 0.2, mouthSmileLeft: 0.45, mouthSmileRight: 0.45, mouthStretchLeft: 0.3, mouthStretchRight: 0.3 },
  oh: { jawOpen: 0.45, mouthFunnel: 0.75 },
  happy: { mouthSmileLeft: 0.8, mouthSmileRight: 0.8, cheekSquintLeft: 0.55, cheekSquintRight: 0.55,
           eyeSquintLeft: 0.25, eyeSquintRight: 0.25 },
  angry: { browDownLeft: 0.8, browDownRight: 0.8, eyeSquintLeft: 0.4, eyeSquintRight: 0.4, mouthPressLeft: 0.35,
           mouthPressRight: 0.35, noseSneerLeft: 0.25, noseSneerRight: 0.25 },
  sad: { browInnerUp: 0.75, browDownLeft: 0.3, browDownRight: 0.3, mouthFrownLeft: 0.6, mouthFrownRight: 0.6,
         mouthShrugLower: 0.25 },
  surprised: { browInnerUp: 0.8, browOuterUpLeft: 0.8, browOuterUpRight: 0.8, eyeWideLeft: 0.7, eyeWideRight: 0.7,
               jawOpen: 0.25 },
  relaxed: { mouthSmileLeft: 0.35, mouthSmileRight: 0.35, eyeSquintLeft: 0.15, eyeSquintRight: 0.15 },
};
export const FITTED = Object.keys(PRESETS);

// The lips' opening as a linear function of the shapes, weighed extra in the fit (clients/avatar/vrm.py).
const GAP = { jawOpen: 1, mouthLowerDownLeft: 0.25, mouthLowerDownRight: 0.25, mouthUpperUpLeft: 0.25,
              mouthUpperUpRight: 0.25, mouthFunnel: 0.3 };
const GAP_WEIGHT = 4;
const gapOf = (shapes) => ARKIT.reduce((s, shape, i) => s + (GAP[shape] || 0) * shapes[i], 0);

// Non-negative least squares by projected gradient, as arkit_to_vrm does in Python.
export function fitPresets(face, index) {
  const arkit = ARKIT.map((shape) => Math.min(Math.max(face[index[shape]] || 0, 0), 1));
  const jaw = ARKIT.indexOf("jawOpen");
  arkit[jaw] = Math.max(arkit[jaw] - arkit[ARKIT.indexOf("mouthClose")], 0); // no preset seals the lips
  const basis = FITTED.map((name) => {
    const row = ARKIT.map((shape) => PRESETS[name][shape] || 0);
    return [...row, GAP_WEIGHT * gapOf(row)];
  });
  arkit.push(GAP_WEIGHT * gapOf(arkit));
  const gram = basis.map((a) => basis.map((b) => a.reduce((s, x, i) => s + x * b[i], 0)));
  const target = basis.map((a) => a.reduce((s, x, i) => s + x * arkit[i], 0));
  const step = 1 / gram.reduce((m, row) => Math.max(m, row.reduce((s, x) => s + Math.abs(x), 0)), 1e-9);
  const x = new Array(FITTED.length).fill(0);
  for (let it = 0; it < 200; it++) {
    const grad = gram.map((row, i) => row.reduce((s, g, j) => s + g * x[j], 0) - target[i]);
    for (let i = 0; i < x.length; i++) x[i] = Math.min(Math.max(x[i] - step * grad[i], 0), 1);
  }
  return Object.fromEntries(FITTED.map((name, i) => [name, x[i]]));
}
