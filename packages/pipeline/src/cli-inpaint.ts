// `ssd generate --init-image in.png --mask mask.png | --outpaint L,R,T,B`: the inpainting options from
// the command line. A mask PNG is white-repaints / black-keeps; one with transparency uses its alpha
// instead (opaque repaints, transparent keeps: strokes painted on a transparent layer).
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '@ssd/tensor';
import type { MaskImage } from './image-processor.js';
import type { InpaintOptions } from './inpaint-options.js';
import type { GenerateOptions, RgbaImage } from './options.js';
import { padForOutpaint } from './outpaint.js';
import { decodePng, type PngDecodeOptions } from './png-decode.js';

/** A PNG read for a flag, with the flag named in the error. */
export async function readPngFlag(flag: string, path: string, options: PngDecodeOptions = {}): Promise<RgbaImage> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new InvalidArgumentError(`--${flag} ${path}: cannot read it (${(e as Error).message})`);
  }
  return decodePng(bytes, path, options);
}

/** The mask a PNG stands for: its alpha when it has transparency, else its colours (converted to luma by the pipeline). */
export function maskFromPng(png: RgbaImage): MaskImage {
  const n = png.width * png.height;
  let transparent = false;
  for (let p = 0; p < n && !transparent; p++) transparent = png.data[p * 4 + 3] !== 255;
  if (!transparent) return png;
  const data = new Uint8Array(n);
  for (let p = 0; p < n; p++) data[p] = png.data[p * 4 + 3];
  return { width: png.width, height: png.height, data, channels: 1 };
}

/** "L,R,T,B" pixels → padding. */
export function parseOutpaint(v: string): { left: number; right: number; top: number; bottom: number } {
  const parts = v.split(',').map((s) => s.trim());
  const n = parts.map(Number);
  if (parts.length !== 4 || n.some((x, i) => parts[i] === '' || !Number.isInteger(x) || x < 0)) {
    throw new InvalidArgumentError(`--outpaint ${JSON.stringify(v)}: give four margins in pixels, left,right,top,bottom (e.g. 0,256,0,0)`);
  }
  return { left: n[0], right: n[1], top: n[2], bottom: n[3] };
}

/**
 * Inpainting options for the flags (null without --mask / --outpaint). The size defaults to the
 * (padded) image's, as the library's inpaint does; --width/--height resize it as diffusers does.
 */
export async function inpaintFromFlags(common: GenerateOptions, image: RgbaImage, strength: number | undefined, maskPath: string | undefined, outpaint: string | undefined): Promise<InpaintOptions | null> {
  if (!maskPath && !outpaint) return null;
  if (maskPath && outpaint) throw new InvalidArgumentError('--outpaint makes its own mask (the new border): give --mask or --outpaint, not both');
  if (outpaint) {
    const padded = padForOutpaint(image, parseOutpaint(outpaint));
    return { ...common, image: padded.image, maskImage: padded.mask, strength };
  }
  return { ...common, image, maskImage: maskFromPng(await readPngFlag('mask', maskPath!)), strength };
}
