// decodePng on hostile files (issue 20 items 6, 7, 11): a decompression bomb is refused from its IHDR
// before anything is inflated, a ComfyUI-sized tEXt chunk decodes, a palette index past the palette
// is an error, and an IDAT stream longer than the image is cut at the image's size.
import { describe, expect, it } from 'vitest';
import { zlibSync } from 'fflate';
import { InvalidArgumentError } from '@ssd/tensor';
import { crc32, decodePng, encodePng, PNG_MAX_PIXELS } from '@ssd/pipeline';

const SIG = [137, 80, 78, 71, 13, 10, 26, 10];

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, (crc32(out.subarray(4, 8 + data.length)) ^ 0xffffffff) >>> 0);
  return out;
}

function ihdr(width: number, height: number, colour: number): Uint8Array {
  const d = new Uint8Array(13);
  const dv = new DataView(d.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  d[8] = 8;
  d[9] = colour;
  return chunk('IHDR', d);
}

function png(...chunks: Uint8Array[]): Uint8Array {
  const parts = [Uint8Array.from(SIG), ...chunks, chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Filter-0 rows of `channels` bytes per pixel, from `value(x, y, c)`. */
function rows(width: number, height: number, channels: number, value: (x: number, y: number, c: number) => number): Uint8Array {
  const raw = new Uint8Array(height * (width * channels + 1));
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) raw[y * (width * channels + 1) + 1 + x * channels + c] = value(x, y, c);
  return raw;
}

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('decodePng on hostile files', () => {
  it('a small file claiming 16384² is refused from its IHDR, before inflating (item 7)', () => {
    // the IDAT is not even valid zlib: an error about the size proves nothing was inflated
    const bomb = png(ihdr(16384, 16384, 6), chunk('IDAT', new Uint8Array(1000).fill(0xab)));
    const e = errorOf(() => decodePng(bomb, 'bomb.png'));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toMatch(/bomb\.png: image is 16384×16384 \(268,435,456 pixels\), more than the 16,777,216 accepted \(maxPixels\)/);
    expect(PNG_MAX_PIXELS).toBe(4096 * 4096);
    const small = errorOf(() => decodePng(bomb, 'bomb.png', { maxPixels: 64 * 64 }));
    expect(small.message).toMatch(/more than the 4,096 accepted/);
  });

  it("the caller's expected size is checked before inflating too", () => {
    const img = png(ihdr(32, 32, 2), chunk('IDAT', new Uint8Array(10).fill(0xcd)));
    const e = errorOf(() => decodePng(img, 'init.png', { expectedWidth: 64, expectedHeight: 64 }));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toBe('init.png: image is 32×32 but the output size is 64×64: resize the image or pass width/height equal to it');
  });

  it('an IDAT stream that inflates far past the image is cut at the image size', () => {
    const raw = new Uint8Array(8 * 1024 * 1024); // 8 MiB of zero rows for a 4×4 grey image
    const img = decodePng(png(ihdr(4, 4, 0), chunk('IDAT', zlibSync(raw))), 'long.png');
    expect(img.width).toBe(4);
    expect([...img.data.subarray(0, 8)]).toEqual([0, 0, 0, 255, 0, 0, 0, 255]);
  });

  it('a 300 KB tEXt chunk (a ComfyUI workflow) decodes, without overflowing the stack (item 6)', () => {
    const workflow = `{"nodes": [${'{"id": 1, "type": "KSampler"},'.repeat(10_000)}{}]}`;
    const base = encodePng({ width: 2, height: 2, data: new Uint8Array(16).fill(200) }, { text: { prompt: 'x' } });
    const keyword = new TextEncoder().encode('workflow\0');
    const body = new Uint8Array(keyword.length + workflow.length);
    body.set(keyword);
    for (let i = 0; i < workflow.length; i++) body[keyword.length + i] = workflow.charCodeAt(i);
    const withText = new Uint8Array(base.length + 12 + body.length);
    withText.set(base.subarray(0, 33)); // signature + IHDR
    withText.set(chunk('tEXt', body), 33);
    withText.set(base.subarray(33), 33 + 12 + body.length);
    expect(workflow.length).toBeGreaterThan(300_000);
    const img = decodePng(withText, 'comfy.png');
    expect(img.text.workflow).toBe(workflow);
    expect(img.text.prompt).toBe('x');
    expect([...img.data.subarray(0, 4)]).toEqual([200, 200, 200, 255]); // encodePng writes RGB unless asked for alpha
  });

  it('a palette index past the palette is an error, not black (item 11)', () => {
    const plte = chunk('PLTE', Uint8Array.from([255, 0, 0, 0, 255, 0])); // 2 entries
    const ok = decodePng(png(ihdr(2, 1, 3), plte, chunk('IDAT', zlibSync(rows(2, 1, 1, (x) => x)))), 'ok.png');
    expect([...ok.data]).toEqual([255, 0, 0, 255, 0, 255, 0, 255]);
    const e = errorOf(() => decodePng(png(ihdr(3, 1, 3), plte, chunk('IDAT', zlibSync(rows(3, 1, 1, (x) => (x === 2 ? 7 : 0))))), 'pal.png'));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toMatch(/pal\.png: not a usable PNG \(palette index 7 at pixel \(2, 0\) is beyond the 2-entry palette\)/);
  });

  it('a missing or misplaced IHDR and a truncated stream are named', () => {
    expect(errorOf(() => decodePng(png(chunk('IDAT', zlibSync(new Uint8Array(4))), ihdr(1, 1, 0)), 'order.png')).message).toMatch(/the first chunk is not a 13-byte IHDR/);
    expect(errorOf(() => decodePng(png(ihdr(8, 8, 2), chunk('IDAT', zlibSync(new Uint8Array(10)))), 'short.png')).message).toMatch(/image data is truncated/);
  });
});

describe('decodePng text chunks', () => {
  it('a compressed iTXt that inflates past 16 MiB is skipped, not inflated whole; a normal one is read', () => {
    const itxt = (keyword: string, compressed: boolean, body: Uint8Array) => {
      const head = new TextEncoder().encode(`${keyword}\0`);
      const out = new Uint8Array(head.length + 4 + body.length);
      out.set(head);
      out[head.length] = compressed ? 1 : 0; // flag, method 0, empty language and translated keyword
      out.set(body, head.length + 4);
      return chunk('iTXt', out);
    };
    const pixels = chunk('IDAT', zlibSync(rows(1, 1, 1, () => 9)));
    const bomb = zlibSync(new Uint8Array(64 << 20).fill(0x61)); // 64 MiB of "a" in about 64 KB
    const img = decodePng(png(ihdr(1, 1, 0), itxt('bomb', true, bomb), itxt('note', true, zlibSync(new TextEncoder().encode('ça va'))), pixels), 'itxt.png');
    expect(img.text.bomb).toBeUndefined();
    expect(img.text.note).toBe('ça va');
    expect([...img.data]).toEqual([9, 9, 9, 255]);
  });
});
