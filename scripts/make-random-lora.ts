// pnpm make-random-lora --arch ssd-1b|vega --out <file> [--rank N] [--layout kohya-diffusers|sgm|peft] [--dtype f16|f32]
// A full-size random LoRA for benchmarks on every module LCM-LoRA / VegaRT patch (423 in SSD-1B, 233 in
// Vega); rank default = the published adapter's (ssd-1b 64: 104.9 M parameters, vega 128: 119.6 M); F16.
// Streamed to disk, then every key is checked to load against the arch's UNet key list (bench/lib/random-lora.ts).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LORA_FILE_LAYOUTS, makeRandomLora, type LoraFileLayout } from '../bench/lib/random-lora.js';

const USAGE = 'usage: pnpm make-random-lora --arch ssd-1b|vega --out <file.safetensors> [--rank N] [--layout kohya-diffusers|sgm|peft] [--dtype f16|f32]';
const LORA_ARCHS = ['ssd-1b', 'vega'] as const;
type LoraArch = (typeof LORA_ARCHS)[number];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { arch: { type: 'string' }, out: { type: 'string' }, rank: { type: 'string' }, layout: { type: 'string' }, dtype: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) return void console.log(USAGE);
  const arch = values.arch as LoraArch;
  if (!LORA_ARCHS.includes(arch)) throw new Error(`--arch ${JSON.stringify(values.arch)}: use ${LORA_ARCHS.join(', ')}\n${USAGE}`);
  if (!values.out) throw new Error(`--out is required\n${USAGE}`);
  const layout = (values.layout ?? 'kohya-diffusers') as LoraFileLayout;
  if (!LORA_FILE_LAYOUTS.includes(layout)) throw new Error(`--layout ${JSON.stringify(values.layout)}: use ${LORA_FILE_LAYOUTS.join(', ')}\n${USAGE}`);
  const dtype = values.dtype === undefined || values.dtype === 'f16' ? 'F16' : values.dtype === 'f32' ? 'F32' : null;
  if (!dtype) throw new Error(`--dtype ${JSON.stringify(values.dtype)}: use f16 or f32\n${USAGE}`);
  await makeRandomLora({ arch, out: values.out, rank: values.rank === undefined ? undefined : Number(values.rank), layout, dtype, log: (l) => console.log(l) });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`make-random-lora: ${(e as Error).message}`);
    process.exitCode = 1;
  });
}
