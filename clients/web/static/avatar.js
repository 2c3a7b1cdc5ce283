// A VRM or glTF avatar driven by emostream frames, as clients/avatar/user_avatar.py drives one in Python
// (docs/avatars.md): ARKit weights onto same-named morph targets (Perfect Sync) or onto the VRM presets
// that best rebuild them; SMPL-X joint rotations onto the normalized humanoid bones (three-vrm's normalized
// rig rests in a T-pose with identity rotations, as SMPL-X does); head and eye angles on top.
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { VRMLoaderPlugin, VRMUtils } from "@pixiv/three-vrm";
import { ARKIT, fitPresets } from "/presets.js";

export { ARKIT };

// SMPL-X joints (runtime/rigs.py order) and the VRM bones they drive.
export const SMPLX = [
  "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
  "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eye_smplhf",
  "right_eye_smplhf", "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
  "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3", "left_thumb1",
  "left_thumb2", "left_thumb3", "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
  "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
  "right_thumb1", "right_thumb2", "right_thumb3",
];
const TO_VRM = {
  pelvis: "hips", spine1: "spine", spine2: "chest", spine3: "upperChest", neck: "neck", head: "head",
  left_hip: "leftUpperLeg", left_knee: "leftLowerLeg", left_ankle: "leftFoot", left_foot: "leftToes",
  right_hip: "rightUpperLeg", right_knee: "rightLowerLeg", right_ankle: "rightFoot", right_foot: "rightToes",
  left_collar: "leftShoulder", left_shoulder: "leftUpperArm", left_elbow: "leftLowerArm", left_wrist: "leftHand",
  right_collar: "rightShoulder", right_shoulder: "rightUpperArm", right_elbow: "rightLowerArm",
  right_wrist: "rightHand",
};
for (const side of ["left", "right"]) {
  const fingers = { thumb: ["Thumb", ["Metacarpal", "Proximal", "Distal"]], index: ["Index"], middle: ["Middle"],
                    ring: ["Ring"], pinky: ["Little"] };
  for (const [finger, [name, parts = ["Proximal", "Intermediate", "Distal"]]] of Object.entries(fingers)) {
    parts.forEach((part, k) => { TO_VRM[`${side}_${finger}${k + 1}`] = `${side}${name}${part}`; });
  }
}

// A glTF that is not a VRM, rigged like `emostream export-avatar -o x.glb` (SMPL-X joint names, a T-pose
// rest with identity rotations, ARKit morph names): its joints stand in for the normalized humanoid bones.
function plainRig(scene) {
  const byName = new Map();
  scene.traverse((node) => { if (node.name) byName.set(node.name, node); });
  const bones = new Map(Object.entries(TO_VRM).map(([joint, bone]) => [bone, byName.get(joint) || null]));
  return {
    scene, meta: { metaVersion: "plain" }, expressionManager: null,
    humanoid: { getNormalizedBoneNode: (bone) => bones.get(bone) || null },
    update: () => {},
  };
}

export async function loadAvatar(url, scene) {
  const loader = new GLTFLoader();
  loader.register((parser) => new VRMLoaderPlugin(parser));
  const gltf = await loader.loadAsync(url);
  const vrm = gltf.userData.vrm || plainRig(gltf.scene);
  if (vrm.meta?.metaVersion === "0") VRMUtils.rotateVRM0(vrm); // VRM 0.x faces -Z
  if (gltf.userData.vrm) VRMUtils.removeUnnecessaryVertices(gltf.scene);
  scene.add(vrm.scene);
  return new DrivenAvatar(vrm);
}

export class DrivenAvatar {
  constructor(vrm) {
    this.vrm = vrm;
    this.mirrored = vrm.meta?.metaVersion === "0"; // its rig's space faces -Z: SMPL-X rotations turn about Y
    this.morphs = []; // Perfect Sync: [influences array, morph index, ARKit index]
    vrm.scene.traverse((object) => {
      if (!object.morphTargetDictionary) return;
      for (const [name, k] of Object.entries(object.morphTargetDictionary)) {
        const i = ARKIT.findIndex((shape) => shape.toLowerCase() === name.toLowerCase());
        if (i >= 0) this.morphs.push([object.morphTargetInfluences, k, i]);
      }
    });
    this.perfectSync = new Set(this.morphs.map((m) => m[2])).size >= 26;
    this.faceIndex = null;
    this.bodyOrder = null;
    this.bodyRotations = new Map(); // normalized bone node -> its latest body-stream rotation
    this.mouth = 0; // the jaw's latest opening, for the page's readout and its test
    this.quaternion = new THREE.Quaternion();
    this.euler = new THREE.Euler();
  }

  setChannels(channels) {
    this.faceIndex = Object.fromEntries((channels.face || []).map((name, i) => [name, i]));
    const body = channels.body || [];
    this.bodyOrder = SMPLX.map((joint) => body.indexOf(`${joint}.qx`));
  }

  applyFace(values) {
    const index = this.faceIndex;
    if (!index) return;
    this.mouth = values[index.jawOpen] || 0;
    const manager = this.vrm.expressionManager;
    if (this.perfectSync) {
      this.pendingMorphs = ARKIT.map((shape) => values[index[shape]]); // set after vrm.update(), which
      // rewrites the morphs its expressions bind
    } else if (manager) {
      const presets = fitPresets(values, index);
      for (const [name, w] of Object.entries(presets)) manager.setValue(name, w);
      manager.setValue("blinkLeft", values[index.eyeBlinkLeft]);
      manager.setValue("blinkRight", values[index.eyeBlinkRight]);
    }
    this.head = [values[index.headYaw], values[index.headPitch], values[index.headRoll]];
    this.eyes = [values[index.leftEyeYaw], values[index.leftEyePitch], values[index.rightEyeYaw],
                 values[index.rightEyePitch]];
  }

  applyBody(values) {
    if (!this.bodyOrder) return;
    const humanoid = this.vrm.humanoid;
    SMPLX.forEach((joint, j) => {
      const bone = TO_VRM[joint];
      const at = this.bodyOrder[j];
      const node = bone && at >= 0 ? humanoid.getNormalizedBoneNode(bone) : null;
      if (!node) return;
      const [x, y, z, w] = [values[at], values[at + 1], values[at + 2], values[at + 3]];
      const rotation = this.bodyRotations.get(node) || new THREE.Quaternion();
      this.bodyRotations.set(node, rotation.set(this.mirrored ? -x : x, y, this.mirrored ? -z : z, w));
    });
  }

  turn(pitch, yaw, roll) {
    const m = this.mirrored ? -1 : 1; // a turn about X or Z changes sign in a rig that faces -Z
    return new THREE.Quaternion().setFromEuler(this.euler.set(m * pitch, yaw, m * roll, "YXZ"));
  }

  update(delta) {
    const humanoid = this.vrm.humanoid;
    for (const [node, rotation] of this.bodyRotations) node.quaternion.copy(rotation);
    if (this.head) {
      const head = humanoid.getNormalizedBoneNode("head");
      const [yaw, pitch, roll] = this.head;
      if (head) head.quaternion.copy(this.bodyRotations.get(head) || this.quaternion.identity())
        .multiply(this.turn(pitch, yaw, roll));
      for (const [bone, k] of [["leftEye", 0], ["rightEye", 2]]) {
        const eye = humanoid.getNormalizedBoneNode(bone);
        if (eye) eye.quaternion.copy(this.turn(this.eyes[k + 1], this.eyes[k], 0));
      }
    }
    this.vrm.update(delta);
    if (this.pendingMorphs) {
      for (const [influences, k, i] of this.morphs) influences[k] = Math.min(Math.max(this.pendingMorphs[i], 0), 1);
    }
  }
}
