import { readFileSync } from 'node:fs';
import { pilResize } from '../packages/pipeline/src/pil-resample.js';
import { toGrayscale, crop as pcrop, type Image8 } from '../packages/pipeline/src/pil-image.js';
import { getCropRegion, resizeAndCrop, image8ToRgba } from '../packages/pipeline/src/image-processor.js';
import { applyOverlay } from '../packages/pipeline/src/image-overlay.js';
import * as ip from '../packages/pipeline/src/image-processor.js';

function pat(w: number, h: number, b: 1 | 3 | 4, seed: number): Image8 {
  const d = new Uint8Array(w * h * b);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < b; c++)
    d[(y * w + x) * b + c] = (x * 7 + y * 13 + c * 29 + ((x * y + seed) % 11) * 17 + ((Math.floor(x / 3) + Math.floor(y / 2) + seed) % 4 === 0 ? 97 : 0)) & 255;
  return { width: w, height: h, bands: b, data: d };
}
const hex = (im: Image8) => Buffer.from(im.data).toString('hex');
const rgbHex = (r: { width: number; height: number; data: Uint8ClampedArray }) => { const o = new Uint8Array(r.width * r.height * 3); for (let p = 0; p < r.width * r.height; p++) for (let c = 0; c < 3; c++) o[p * 3 + c] = r.data[p * 4 + c]; return Buffer.from(o).toString('hex'); };
const want = JSON.parse(readFileSync('/tmp/pilcheck/pil.json', 'utf8'));
const got: Record<string, unknown> = {};
got.L = hex(pilResize(pat(37, 23, 1, 1), 16, 24));
got.RGB = hex(pilResize(pat(20, 15, 3, 2), 31, 9));
got.RGBA = hex(pilResize(pat(12, 10, 4, 3), 7, 13));
const r = pat(30, 20, 3, 4);
got.boxTop = hex(pilResize(r, 30, 5, [0, 0, 30, 0]));
got.boxBottom = hex(pilResize(r, 30, 5, [0, 20, 30, 20]));
got.gray = hex(toGrayscale(pat(9, 7, 3, 5)));
const m = new Uint8Array(40 * 56);
for (let y = 10; y < 18; y++) for (let x = 30; x < 41; x++) m[y * 56 + x] = 200;
for (let y = 12; y < 14; y++) for (let x = 20; x < 24; x++) m[y * 56 + x] = 90;
m[25 * 56 + 5] = 255;
const mask: Image8 = { width: 56, height: 40, bands: 1, data: m };
const maskImg = { width: 56, height: 40, data: m, channels: 1 as const };
got.crop = getCropRegion(mask, 64, 48, 3);
got.crop2 = getCropRegion(mask, 32, 64, 0);
const src = pat(56, 40, 3, 6);
// resizeAndFill is internal: reach via preprocessImage with a crop box
got.fillImage = rgbHex(ip.preprocessImage(image8ToRgba(src), 64, 48, got.crop as never) as never);
got.fillImageTall = rgbHex(ip.preprocessImage(image8ToRgba(src), 32, 64, got.crop2 as never) as never);
got.cropImage = hex(resizeAndCrop(src, 23, 31));
got.overlay = rgbHex(applyOverlay(maskImg, image8ToRgba(src), image8ToRgba(src), null));
got.overlayCrop = rgbHex(applyOverlay(maskImg, image8ToRgba(src), image8ToRgba(pat(56, 40, 3, 8)), got.crop as never));
const soft = pat(56, 40, 1, 9);
got.overlaySoft = rgbHex(applyOverlay({ width: 56, height: 40, data: soft.data, channels: 1 }, image8ToRgba(src), image8ToRgba(pat(56, 40, 3, 8)), null));
got.maskResized = hex(toGrayscale(pilResize(soft, 32, 24)));
void pcrop;
for (const k of Object.keys(want)) {
  const a = JSON.stringify(got[k]), b = JSON.stringify(want[k]);
  if (a === b) { console.log(`${k}: identical`); continue; }
  if (typeof want[k] === 'string') {
    const x = Buffer.from(got[k] as string, 'hex'), y = Buffer.from(want[k], 'hex');
    let diff = 0, max = 0; for (let i = 0; i < y.length; i++) { const d = Math.abs(x[i] - y[i]); if (d) diff++; max = Math.max(max, d); }
    console.log(`${k}: ${diff} of ${y.length} differ (max ${max}), lengths ${x.length}/${y.length}`);
  } else console.log(`${k}: got ${a} want ${b}`);
}
{
  const k = 'fillImage'; const W = 64;
  const x = Buffer.from(got[k] as string, 'hex'), y = Buffer.from(want[k], 'hex');
  const rows = new Map<number, number[]>();
  for (let i = 0; i < y.length; i++) if (x[i] !== y[i]) { const p = Math.floor(i / 3); const row = Math.floor(p / W); if (!rows.has(row)) rows.set(row, []); rows.get(row)!.push(p % W); }
  for (const [row, xs] of rows) console.log(row, xs.slice(0, 10).join(','), xs.length);
  console.log('crop', got.crop);
}
{
  const x = Buffer.from(got.fillImage as string, 'hex'), y = Buffer.from(want.fillImage, 'hex');
  console.log('ours row0', Array.from(x.subarray(0, 9)), 'row1', Array.from(x.subarray(192, 201)));
  console.log('pil  row0', Array.from(y.subarray(0, 9)), 'row1', Array.from(y.subarray(192, 201)));
}
