// Inpainting's refusals and outpainting's padding, without a GPU: every bad input is a typed error
// raised while options resolve (before any model loads or GPU work), and padForOutpaint's geometry.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@ssd/tensor';
import { padForOutpaint, type RgbaImage } from '@ssd/pipeline';
import { resolveInpaint, type InpaintOptions } from '../src/inpaint-options.js';
import { resolveRun, type ModelFacts } from '../src/options.js';

const FOUR: ModelFacts = { defaultSize: 1024, latentChannels: 4, guidanceEmbedding: false, unetInChannels: 4 };
const NINE: ModelFacts = { ...FOUR, unetInChannels: 9 };

function image(w: number, h: number, v = (x: number, y: number) => (x * 3 + y * 5) & 255): RgbaImage {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([v(x, y), 255 - v(x, y), 7, 255], (y * w + x) * 4);
  return { width: w, height: h, data };
}

/** An L mask with a white square in the middle. */
function mask(w: number, h: number): { width: number; height: number; data: Uint8Array; channels: 1 } {
  const data = new Uint8Array(w * h);
  for (let y = h >> 2; y < (3 * h) >> 2; y++) for (let x = w >> 2; x < (3 * w) >> 2; x++) data[y * w + x] = 255;
  return { width: w, height: h, data, channels: 1 };
}

const base = (o: Partial<InpaintOptions> = {}): InpaintOptions => ({ prompt: 'a cat', image: image(64, 48), maskImage: mask(64, 48), seed: 1, ...o });

function refuses(fn: () => unknown, re: RegExp): void {
  expect(fn).toThrow(InvalidArgumentError);
  expect(fn).toThrow(re);
}

describe('inpaint options', () => {
  it("resolves diffusers' defaults: strength 0.9999, guidance 7.5, the image's size, a binary mask", () => {
    const { run, inpaint } = resolveInpaint(base(), FOUR);
    expect(run.strength).toBe(0.9999);
    expect(run.guidanceScale).toBe(7.5);
    expect([run.width, run.height]).toEqual([64, 48]);
    expect(inpaint.mask.reduce((a, v) => a + v, 0)).toBe(32 * 24);
    expect(inpaint.maskedPixels.length).toBe(64 * 48 * 3);
    expect(inpaint.maskedPixels[(24 * 64 + 32) * 3]).toBe(0); // masked: zero (mid-grey after normalize)
  });

  it('a mask that is not an image', () => {
    for (const m of [undefined, null, 'mask.png', { width: 64, height: 48 }, { width: 64, height: 48, data: [1, 2, 3] }, { width: 0, height: 48, data: new Uint8Array(0), channels: 1 }, { width: 64, height: 48, data: new Uint8Array(10), channels: 1 }, { width: 64, height: 48, data: new Float32Array(64 * 48 * 4) }]) {
      refuses(() => resolveInpaint(base({ maskImage: m as never }), FOUR), /maskImage/);
    }
    refuses(() => resolveInpaint(base({ maskImage: { width: 64, height: 48, data: new Float32Array(64 * 48).fill(NaN), channels: 1 } }), FOUR), /NaN/);
  });

  it('an all-black mask: nothing to repaint', () => {
    refuses(() => resolveInpaint(base({ maskImage: { width: 64, height: 48, data: new Uint8Array(64 * 48).fill(127), channels: 1 } }), FOUR), /nothing to repaint/);
  });

  it('image and mask of wildly different aspect; a mask of another size but the same aspect is resized', () => {
    refuses(() => resolveInpaint(base({ maskImage: mask(48, 64) }), FOUR), /aspect ratios differ/);
    const { inpaint } = resolveInpaint(base({ maskImage: mask(128, 96) }), FOUR);
    expect(inpaint.mask.length).toBe(64 * 48);
  });

  it('an inpainting (9-channel) UNet with generate or img2img says it needs an image and a mask', () => {
    refuses(() => resolveRun({ prompt: 'a cat' }, NINE, null), /needs an image and a mask.*pipe\.inpaint/);
    refuses(() => resolveRun({ prompt: 'a cat' }, NINE, { prompt: 'a cat', image: image(64, 48) }), /needs an image and a mask/);
    expect(resolveInpaint(base(), NINE).inpaint.unetInChannels).toBe(9);
  });

  it('a 4-channel UNet with the 9-channel-only maskedImageLatents; other channel counts', () => {
    refuses(() => resolveInpaint(base({ maskedImageLatents: new Float32Array(4 * 6 * 8) }), FOUR), /maskedImageLatents: only an inpainting UNet/);
    refuses(() => resolveInpaint(base({ maskedImageLatents: new Float32Array(5) }), NINE), /maskedImageLatents: expected/);
    refuses(() => resolveInpaint(base(), { ...FOUR, unetInChannels: 8 }), /takes 8 input channels/);
  });

  it('strength, paddingMaskCrop and the image are checked', () => {
    refuses(() => resolveInpaint(base({ strength: 0 }), FOUR), /strength/);
    refuses(() => resolveInpaint(base({ strength: 1.5 }), FOUR), /strength/);
    refuses(() => resolveInpaint(base({ paddingMaskCrop: -1 }), FOUR), /paddingMaskCrop/);
    refuses(() => resolveInpaint(base({ paddingMaskCrop: 8, outputType: 'latent' }), FOUR), /paddingMaskCrop needs outputType 'rgba'/);
    refuses(() => resolveInpaint(base({ image: undefined as never }), FOUR), /image is required/);
    const { inpaint } = resolveInpaint(base({ paddingMaskCrop: 4 }), FOUR);
    expect(inpaint.overlay?.crop).toEqual([11, 8, 53, 40]); // the square ± 4 px, widened to 4:3
  });
});

describe('padForOutpaint', () => {
  it('pads by the margins (rounded up to multiples of 8 on the right and bottom), repeats the edges, masks the border', () => {
    const img = image(20, 10);
    const { image: out, mask: m, padding } = padForOutpaint(img, { left: 5, top: 3 });
    expect(padding).toEqual({ left: 5, right: 7, top: 3, bottom: 3 });
    expect([out.width, out.height]).toEqual([32, 16]);
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 32; x++) {
        const inside = x >= 5 && x < 25 && y >= 3 && y < 13;
        expect(m.data[y * 32 + x]).toBe(inside ? 0 : 255);
        const sx = Math.min(Math.max(x - 5, 0), 19), sy = Math.min(Math.max(y - 3, 0), 9);
        expect(out.data[(y * 32 + x) * 4]).toBe(img.data[(sy * 20 + sx) * 4]);
      }
    }
    refuses(() => padForOutpaint(img, {}), /nothing to outpaint/);
    refuses(() => padForOutpaint(img, { left: -8 }), /left/);
  });
});
