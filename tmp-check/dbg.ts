import { pilResize } from '../packages/pipeline/src/pil-resample.js';
import { crop, type Image8 } from '../packages/pipeline/src/pil-image.js';
function pat(w: number, h: number, b: 1 | 3 | 4, seed: number): Image8 {
  const d = new Uint8Array(w * h * b);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < b; c++)
    d[(y * w + x) * b + c] = (x * 7 + y * 13 + c * 29 + ((x * y + seed) % 11) * 17 + ((Math.floor(x / 3) + Math.floor(y / 2) + seed) % 4 === 0 ? 97 : 0)) & 255;
  return { width: w, height: h, bands: b, data: d };
}
const c = crop(pat(56, 40, 3, 6), [2, 3, 44, 34]);
const resized = pilResize(c, 64, 47);
const top = pilResize(resized, 64, 1, [0, 0, 64, 0]);
console.log(Array.from(top.data.slice(0, 12)));
console.log([0, 1, 2].map((y) => Array.from(resized.data.slice(y * 64 * 3, y * 64 * 3 + 3))));
