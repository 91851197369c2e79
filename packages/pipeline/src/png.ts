// PNG encoding (RGB or RGBA, 8 bits) with zlib from fflate, and the `parameters` tEXt chunk that
// A1111/ComfyUI-style tools write (prompt, negative prompt, steps, sampler, guidance, seed, size,
// model), so a generated image carries how it was made. Works in Node and browsers.
import { zlibSync } from 'fflate';

export interface PngImage {
  width: number;
  height: number;
  /** RGBA8, row-major, width·height·4 bytes. */
  data: Uint8Array | Uint8ClampedArray;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0xffffffff): number {
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, (crc32(out.subarray(4, 8 + data.length)) ^ 0xffffffff) >>> 0);
  return out;
}

/** tEXt holds Latin-1; a value with other characters goes in an iTXt chunk (UTF-8), as PNG requires. */
function textChunk(key: string, value: string): Uint8Array {
  const latin1 = /^[\x00-\xff]*$/.test(value);
  if (latin1) {
    const b = new Uint8Array(key.length + 1 + value.length);
    for (let i = 0; i < key.length; i++) b[i] = key.charCodeAt(i);
    for (let i = 0; i < value.length; i++) b[key.length + 1 + i] = value.charCodeAt(i);
    return chunk('tEXt', b);
  }
  const v = new TextEncoder().encode(value);
  const b = new Uint8Array(key.length + 5 + v.length); // keyword\0 compression-flag(0) method(0) lang\0 translated\0 text
  for (let i = 0; i < key.length; i++) b[i] = key.charCodeAt(i);
  b.set(v, key.length + 5);
  return chunk('iTXt', b);
}

/** Encodes an RGBA8 image as PNG. `alpha: false` drops the alpha channel (colour type 2). */
export function encodePng(img: PngImage, opts: { text?: Record<string, string>; alpha?: boolean; level?: number } = {}): Uint8Array {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new RangeError(`encodePng: invalid size ${width}×${height}`);
  if (data.length !== width * height * 4) throw new RangeError(`encodePng: ${data.length} bytes for ${width}×${height} RGBA (${width * height * 4})`);
  const alpha = opts.alpha ?? false;
  const ch = alpha ? 4 : 3;
  const raw = new Uint8Array(height * (1 + width * ch));
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * ch);
    raw[row] = 0; // filter: none (fast, and our images compress well enough)
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 4;
      const d = row + 1 + x * ch;
      raw[d] = data[s];
      raw[d + 1] = data[s + 1];
      raw[d + 2] = data[s + 2];
      if (alpha) raw[d + 3] = data[s + 3];
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = alpha ? 6 : 2; // colour type RGBA / RGB
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr)];
  for (const [k, v] of Object.entries(opts.text ?? {})) parts.push(textChunk(k, v));
  parts.push(chunk('IDAT', zlibSync(raw, { level: (opts.level ?? 6) as 6 })));
  parts.push(chunk('IEND', new Uint8Array(0)));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export interface GenerationParameters {
  prompt: string;
  negativePrompt?: string;
  steps: number;
  scheduler: string;
  guidanceScale: number;
  seed?: number | bigint;
  width: number;
  height: number;
  model?: string;
  strength?: number;
  /** LoRAs, written A1111-style: `<lora:name:scale>` on the prompt line and a `Lora hashes` field. */
  loras?: readonly { name: string; scale: number; hash?: string }[];
}

/** The A1111-style `parameters` text: prompt, a Negative prompt line, then "Key: value" pairs. */
export function formatParameters(p: GenerationParameters): string {
  const loras = p.loras ?? [];
  const lines = [[p.prompt, ...loras.map((l) => `<lora:${l.name}:${l.scale}>`)].join(' ')];
  if (p.negativePrompt) lines.push(`Negative prompt: ${p.negativePrompt}`);
  const kv: [string, string | number | undefined][] = [
    ['Steps', p.steps],
    ['Sampler', p.scheduler],
    ['CFG scale', p.guidanceScale],
    ['Seed', p.seed === undefined ? undefined : String(p.seed)],
    ['Size', `${p.width}x${p.height}`],
    ['Model', p.model],
    ['Denoising strength', p.strength],
    ['Lora hashes', loras.some((l) => l.hash) ? `"${loras.filter((l) => l.hash).map((l) => `${l.name}: ${l.hash}`).join(', ')}"` : undefined],
  ];
  lines.push(kv.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${k}: ${v}`).join(', '));
  return lines.join('\n');
}
