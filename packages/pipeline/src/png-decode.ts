// PNG decoding for init images: 8-bit greyscale, grey+alpha, RGB, RGBA and palette images, not
// interlaced, with all five row filters — enough for any PNG a user is likely to pass to img2img.
// Anything else is a clear InvalidArgumentError (16-bit, interlaced, corrupt). tEXt and iTXt chunks come
// back as `text` (the `parameters` that encodePng writes).
import { unzlibSync } from 'fflate';
import { InvalidArgumentError } from '@ssd/tensor';
import type { RgbaImage } from './options.js';

const SIG = [137, 80, 78, 71, 13, 10, 26, 10];

export function decodePng(bytes: Uint8Array, name = 'image'): RgbaImage & { text: Record<string, string> } {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`${name}: not a usable PNG (${why})`);
  };
  if (bytes.length < 8 || SIG.some((b, i) => bytes[i] !== b)) bad('missing the PNG signature');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let width = 0, height = 0, depth = 0, colour = 0, interlace = 0;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  const text: Record<string, string> = {};
  while (pos + 8 <= bytes.length) {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    if (data.length !== len) bad(`chunk ${type} is truncated`);
    if (type === 'IHDR') {
      width = dv.getUint32(pos + 8);
      height = dv.getUint32(pos + 12);
      depth = data[8];
      colour = data[9];
      interlace = data[12];
    } else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') trns = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'tEXt') {
      const z = data.indexOf(0);
      text[String.fromCharCode(...data.subarray(0, z))] = String.fromCharCode(...data.subarray(z + 1));
    } else if (type === 'iTXt') {
      readInternationalText(data, text);
    } else if (type === 'IEND') break;
    pos += 12 + len;
  }
  if (!width || !height) bad('no IHDR chunk');
  if (depth !== 8) bad(`bit depth ${depth}; only 8-bit images are supported`);
  if (interlace) bad('interlaced images are not supported');
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colour];
  if (!channels) bad(`colour type ${colour}`);
  if (colour === 3 && !palette) bad('palette image without a PLTE chunk');
  let raw: Uint8Array;
  try {
    const all = new Uint8Array(idat.reduce((a, c) => a + c.length, 0));
    let o = 0;
    for (const c of idat) {
      all.set(c, o);
      o += c.length;
    }
    raw = unzlibSync(all);
  } catch (e) {
    return bad(`corrupt image data: ${(e as Error).message}`);
  }
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) bad('image data is truncated');
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = px.subarray(y * stride, (y + 1) * stride);
    const prev = y ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels] : 0;
      const b = prev[x];
      const c = x >= channels ? prev[x - channels] : 0;
      let v = line[x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f !== 0) bad(`unknown row filter ${f}`);
      out[x] = v & 0xff;
    }
  }
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = p * channels;
    let r: number, g: number, bl: number, al = 255;
    if (colour === 0 || colour === 4) {
      r = g = bl = px[s];
      if (colour === 4) al = px[s + 1];
    } else if (colour === 3) {
      const i = px[s];
      r = palette![i * 3];
      g = palette![i * 3 + 1];
      bl = palette![i * 3 + 2];
      if (trns && i < trns.length) al = trns[i];
    } else {
      r = px[s];
      g = px[s + 1];
      bl = px[s + 2];
      if (colour === 6) al = px[s + 3];
    }
    rgba.set([r, g, bl, al], p * 4);
  }
  return { width, height, data: rgba, text };
}

/** iTXt (what encodePng writes for a non-Latin-1 value): keyword\0 flag method language\0 translated\0 UTF-8 text. */
function readInternationalText(data: Uint8Array, text: Record<string, string>): void {
  const z = data.indexOf(0);
  const lang = data.indexOf(0, z + 3);
  const translated = lang < 0 ? -1 : data.indexOf(0, lang + 1);
  if (z < 0 || translated < 0) return; // a malformed text chunk says nothing about the pixels: skipped
  const body = data.subarray(translated + 1);
  try {
    text[String.fromCharCode(...data.subarray(0, z))] = new TextDecoder('utf-8', { fatal: true }).decode(data[z + 1] ? unzlibSync(body) : body);
  } catch {
    // undecodable text: skipped, as above
  }
}
