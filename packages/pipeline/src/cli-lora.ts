// `--lora <file|url>[:scale]` for `ssd generate`: each LoRA loaded as its own adapter at its scale, and
// what the PNG records of it — A1111's `<lora:name:scale>` and the AddNet "AutoV3" hash A1111 writes
// under `Lora hashes` (sha256 of the file's tensor data, after the header; first 12 hex digits).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { InvalidArgumentError, ModelLoadError } from '@ssd/tensor';
import type { StableDiffusionXLPipeline } from './stable-diffusion-xl.js';

export interface CliLora {
  source: string;
  /** The name A1111 shows: the file name without .safetensors. */
  name: string;
  scale: number;
}

/** Parses `file[:scale]` (a trailing `:number`; Windows drive letters and URLs keep their colons). */
export function parseLoraArg(arg: string): CliLora {
  const m = /^(.*):(-?\d+(?:\.\d+)?(?:e-?\d+)?)$/i.exec(arg);
  const source = m && m[1] && !/^[a-z]$/i.test(m[1]) ? m[1] : arg;
  const scale = m && source === m[1] ? Number(m[2]) : 1;
  if (!source) throw new InvalidArgumentError(`--lora ${JSON.stringify(arg)}: give a .safetensors file or URL, optionally :scale`);
  if (!Number.isFinite(scale)) throw new InvalidArgumentError(`--lora ${JSON.stringify(arg)}: the scale must be a finite number`);
  if (!/^https?:\/\//i.test(source) && !existsSync(source)) throw new ModelLoadError(`--lora ${JSON.stringify(arg)}: LoRA file not found: ${source}`);
  const name = basename(source.split(/[?#]/)[0]).replace(/\.safetensors$/i, '');
  return { source, name, scale };
}

/** Loads every --lora as its own adapter (named after its file, numbered when names repeat), all active at their scales. */
export async function loadCliLoras(pipe: StableDiffusionXLPipeline, loras: readonly CliLora[]): Promise<string[]> {
  const names: string[] = [];
  for (const [i, l] of loras.entries()) {
    const name = names.includes(l.name) ? `${l.name}_${i}` : l.name;
    await pipe.loadLoraWeights(l.source, { adapterName: name });
    names.push(name);
  }
  if (names.length) await pipe.setAdapters(names, loras.map((l) => l.scale));
  return names;
}

/** A1111's AutoV3 LoRA hash of a local file (undefined for URLs). */
export async function loraHash(source: string): Promise<string | undefined> {
  if (/^https?:\/\//i.test(source)) return undefined;
  const fh = await open(source, 'r');
  let start: number;
  try {
    const head = Buffer.alloc(8);
    await fh.read(head, 0, 8, 0);
    start = 8 + Number(head.readBigUInt64LE(0));
  } finally {
    await fh.close();
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(source, { start })) hash.update(chunk as Buffer);
  return hash.digest('hex').slice(0, 12);
}
