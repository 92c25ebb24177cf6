// Reference readings of face-api.js's own FaceExpressionNet, for tests/unit/test_backbones.py.
// Regenerate (needs Node 20 and network access to the npm registry, never run by the tests):
//   mkdir ref && cd ref && npm init -y && npm install @tensorflow/tfjs@4.22.0 \
//     @tensorflow/tfjs-backend-wasm@4.22.0 @tensorflow/tfjs-backend-webgl@4.22.0 @vladmandic/face-api@1.7.15
//   cp node_modules/@vladmandic/face-api/dist/face-api.esm-nobundle.js fa.mjs
//   sed -i 's#"@tensorflow/\([a-z-]*\)/dist/index.js"#"@tensorflow/\1"#g' fa.mjs   # package entry points
//   node ../tests/data/faceapi_reference.mjs <models/pretrained/face_expression> > faceapi_reference.out.json
import * as faceapi from './fa.mjs';
import fs from 'fs';

const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();
const dir = process.argv[2] + '/';
const manifest = JSON.parse(fs.readFileSync(dir + 'face_expression_model-weights_manifest.json'));
const buf = fs.readFileSync(dir + 'face_expression_model.bin');
const weights = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), manifest[0].weights);
const net = faceapi.nets.faceExpressionNet;
net.loadFromWeightMap(weights);
const patterns = {
  ramp: (x, y) => (x * 7 + y * 13) % 256,
  rings: (x, y) => Math.round(127.5 + 127.5 * Math.cos(Math.hypot(x - 56, y - 48) / 5)),
  bars: (x, y) => ((Math.floor(x / 8) + Math.floor(y / 14)) % 3) * 120,
};
const readings = {};
for (const [name, f] of Object.entries(patterns)) {
  const px = new Float32Array(112 * 112 * 3);
  for (let y = 0; y < 112; y++) for (let x = 0; x < 112; x++) for (let c = 0; c < 3; c++) px[(y * 112 + x) * 3 + c] = f(x, y);
  readings[name] = await net.predictExpressions(tf.tensor3d(px, [112, 112, 3]));
}
console.log(JSON.stringify({ tfjs: tf.version_core, faceapi: faceapi.version, backend: tf.getBackend(), readings }, null, 1));
