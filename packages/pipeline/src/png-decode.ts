// PNG decoding for init images: 8-bit greyscale, grey+alpha, RGB, RGBA and palette images, not
// interlaced, with all five row filters — enough for any PNG a user is likely to pass to img2img.
// tEXt and iTXt chunks come back as `text` (the `parameters` that encodePng writes). Untrusted input:
// the IHDR is read and its size checked (a pixel limit, and the caller's expected size) before
// anything is inflated, no inflation goes past the size it can have, and anything else (16-bit,
// interlaced, corrupt, a palette index past the palette) is a clear InvalidArgumentError.
import { Unzlib } from 'fflate';
import { InvalidArgumentError } from '@ssd/tensor';
import type { RgbaImage } from './options.js';

const SIG = [137, 80, 78, 71, 13, 10, 26, 10];

/** The default pixel limit: 4096², the largest image the pipeline makes (a 64 MiB RGBA buffer). */
export const PNG_MAX_PIXELS = 4096 * 4096;

export interface PngDecodeOptions {
  /** Largest width × height accepted (default PNG_MAX_PIXELS). */
  maxPixels?: number;
  /** The size the caller needs (img2img's output size), when known: any other size is refused unread. */
  expectedWidth?: number;
  expectedHeight?: number;
}

/** PNG bytes → RGBA8 pixels and the tEXt chunks. */
export function decodePng(bytes: Uint8Array, name = 'image', options: PngDecodeOptions = {}): RgbaImage & { text: Record<string, string> } {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`${name}: not a usable PNG (${why})`);
  };
  if (bytes.length < 8 || SIG.some((b, i) => bytes[i] !== b)) bad('missing the PNG signature');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunkAt = (pos: number) => {
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    if (data.length !== len) bad(`chunk ${type} is truncated`);
    return { type, data, next: pos + 12 + len };
  };

  // 1. IHDR, which the PNG spec puts first: size and format are checked before anything else is read
  if (bytes.length < 8 + 8 + 13) bad('no IHDR chunk');
  const ihdr = chunkAt(8);
  if (ihdr.type !== 'IHDR' || ihdr.data.length !== 13) bad('the first chunk is not a 13-byte IHDR');
  const width = dv.getUint32(16);
  const height = dv.getUint32(20);
  const [depth, colour, , , interlace] = ihdr.data.subarray(8);
  if (!width || !height || width > 0x7fffffff || height > 0x7fffffff) bad(`invalid size ${width}×${height}`);
  const { expectedWidth: ew, expectedHeight: eh } = options;
  if ((ew !== undefined && width !== ew) || (eh !== undefined && height !== eh)) {
    throw new InvalidArgumentError(`${name}: image is ${width}×${height} but the output size is ${ew ?? width}×${eh ?? height}: resize the image or pass width/height equal to it`);
  }
  const maxPixels = options.maxPixels ?? PNG_MAX_PIXELS;
  if (width * height > maxPixels) {
    throw new InvalidArgumentError(`${name}: image is ${width}×${height} (${(width * height).toLocaleString('en-US')} pixels), more than the ${maxPixels.toLocaleString('en-US')} accepted (maxPixels)`);
  }
  if (depth !== 8) bad(`bit depth ${depth}; only 8-bit images are supported`);
  if (interlace) bad('interlaced images are not supported');
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colour];
  if (!channels) bad(`colour type ${colour}`);

  // 2. the other chunks
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  const text: Record<string, string> = {};
  for (let pos = ihdr.next; pos + 8 <= bytes.length; ) {
    const { type, data, next } = chunkAt(pos);
    if (type === 'PLTE') {
      if (!data.length || data.length % 3 || data.length > 768) bad(`PLTE of ${data.length} bytes (1 to 256 RGB entries)`);
      palette = data;
    } else if (type === 'tRNS') trns = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'tEXt') {
      const z = data.indexOf(0);
      if (z > 0) text[latin1(data.subarray(0, z))] = latin1(data.subarray(z + 1));
    } else if (type === 'iTXt') {
      readInternationalText(data, text);
    } else if (type === 'IEND') break;
    pos = next;
  }
  if (colour === 3 && !palette) bad('palette image without a PLTE chunk');

  // 3. inflate, never past the size the IHDR implies
  const stride = width * channels;
  const raw = inflateBounded(idat, height * (stride + 1), bad);

  // 4. undo the row filters
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    if (f > 4) bad(`unknown row filter ${f}`);
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
      }
      out[x] = v & 0xff;
    }
  }

  // 5. to RGBA
  const rgba = new Uint8ClampedArray(width * height * 4);
  const entries = palette ? palette.length / 3 : 0;
  for (let p = 0; p < width * height; p++) {
    const s = p * channels;
    let r: number, g: number, bl: number, al = 255;
    if (colour === 0 || colour === 4) {
      r = g = bl = px[s];
      if (colour === 4) al = px[s + 1];
    } else if (colour === 3) {
      const i = px[s];
      // libpng: "Invalid palette index" — not black
      if (i >= entries) bad(`palette index ${i} at pixel (${p % width}, ${Math.floor(p / width)}) is beyond the ${entries}-entry palette`);
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
    rgba[p * 4] = r;
    rgba[p * 4 + 1] = g;
    rgba[p * 4 + 2] = bl;
    rgba[p * 4 + 3] = al;
  }
  return { width, height, data: rgba, text };
}

/**
 * The IDAT stream inflated into exactly `size` bytes. It is fed in 16 KiB slices and dropped as soon
 * as `size` bytes have come out, so a stream that inflates to gigabytes (a decompression bomb) costs
 * one slice's output beyond the image, not its whole length. Short output is an error.
 */
function inflateBounded(idat: readonly Uint8Array[], size: number, bad: (why: string) => never): Uint8Array {
  let out: Uint8Array;
  try {
    out = inflateAtMost(idat, size);
  } catch (e) {
    return bad(`corrupt image data: ${(e as Error).message}`);
  }
  if (out.length < size) bad('image data is truncated');
  return out;
}

/** Up to `max` bytes of a zlib stream given in pieces: inflation stops once they are out. */
function inflateAtMost(pieces: readonly Uint8Array[], max: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let filled = 0;
  const inflater = new Unzlib((chunk) => {
    const take = Math.min(chunk.length, max - filled);
    parts.push(chunk.slice(0, take));
    filled += take;
  });
  const slice = 16 << 10;
  const last = pieces.length - 1;
  for (let c = 0; c <= last && filled < max; c++) {
    const data = pieces[c];
    for (let o = 0; o < data.length && filled < max; o += slice) {
      inflater.push(data.subarray(o, o + slice), c === last && o + slice >= data.length);
    }
  }
  const out = new Uint8Array(filled);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A compressed iTXt inflates to at most this (a whole ComfyUI workflow is well under 1 MiB). */
const MAX_ITXT_BYTES = 16 << 20;

/** iTXt (what encodePng writes for a non-Latin-1 value): keyword\0 flag method language\0 translated\0 UTF-8 text. */
function readInternationalText(data: Uint8Array, text: Record<string, string>): void {
  const z = data.indexOf(0);
  const lang = data.indexOf(0, z + 3);
  const translated = lang < 0 ? -1 : data.indexOf(0, lang + 1);
  if (z <= 0 || translated < 0) return; // a malformed text chunk says nothing about the pixels: skipped
  const body = data.subarray(translated + 1);
  try {
    // compressed text is inflated no further than MAX_ITXT_BYTES: longer is skipped like malformed text
    const raw = data[z + 1] ? inflateAtMost([body], MAX_ITXT_BYTES + 1) : body;
    if (raw.length > MAX_ITXT_BYTES) return;
    text[latin1(data.subarray(0, z))] = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    // undecodable text: skipped, as above
  }
}

/** ISO 8859-1 bytes (tEXt) → string, in slices: one spread of a 200 KB chunk overflows the stack. */
function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}
