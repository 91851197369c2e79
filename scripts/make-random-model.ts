// pnpm make-random-model --arch ssd-1b|vega|sdxl --out <dir> [--dtype f32|f16|both] [--force]
// pnpm make-random-model --arch ssd-1b|vega|sdxl --single-file --out <file.safetensors> [--dtype f16|f32] [--force]
//
// Writes a complete diffusers folder laid out and named as the published segmind/SSD-1B and
// segmind/Segmind-Vega repositories (architecture.md §7): model_index.json, scheduler/, tokenizer/ and
// tokenizer_2/ (the real CLIP vocab.json and merges.txt), text_encoder/, text_encoder_2/, unet/, vae/
// with the real configs (bench/models/configs) and random well-scaled weights for every tensor of the
// key lists (bench/models/keys; SDXL base's UNet list derived from its config).
//
// --dtype f32 (default) writes the default full-precision files (`model.safetensors`,
// `diffusion_pytorch_model.safetensors`), as diffusers' save_pretrained does; --dtype f16 writes the
// fp16 variant files (`*.fp16.safetensors`, what `variant: 'fp16'` loads); --dtype both writes both,
// as the published repositories hold. Weights are streamed to disk in 16 MiB chunks (the process
// never holds a file), each file is written under `.partial` and renamed when complete, files already
// present with the right size are kept (--force rewrites them), and model_index.json is written last.
//
// --single-file writes the same random model as one SGM checkpoint instead (the layout of Segmind's
// SSD-1B-A1111.safetensors and of A1111 / ComfyUI SDXL files: model.diffusion_model.*,
// first_stage_model.*, conditioner.embedders.{0,1}.*), f16 unless --dtype f32, streamed tensor by
// tensor through @ssd/tensor's writeSingleFile (the converter `ssd convert` uses).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeRandomModel, makeRandomSingleFile } from '../bench/lib/make-random-model.js';
import { ARCHS, type Arch, type WeightDType } from '../bench/lib/random-model.js';

const USAGE = 'usage: pnpm make-random-model --arch ssd-1b|vega|sdxl --out <dir> [--dtype f32|f16|both] [--force] [--quiet]\n' +
  '       pnpm make-random-model --arch ssd-1b|vega|sdxl --single-file --out <file.safetensors> [--dtype f16|f32] [--force] [--quiet]';

export function parseDTypes(v: string | undefined): WeightDType[] {
  if (v === undefined || v === 'f32') return ['F32'];
  if (v === 'f16') return ['F16'];
  if (v === 'both') return ['F16', 'F32'];
  throw new Error(`--dtype ${JSON.stringify(v)}: use f32, f16 or both\n${USAGE}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' }, 'single-file': { type: 'boolean' }, force: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) return void console.log(USAGE);
  const arch = values.arch as Arch;
  if (!ARCHS.includes(arch)) throw new Error(`--arch ${JSON.stringify(values.arch)}: use ${ARCHS.join(', ')}\n${USAGE}`);
  if (!values.out) throw new Error(`--out is required\n${USAGE}`);
  const log = values.quiet ? undefined : (l: string) => console.log(l);
  if (values['single-file']) {
    const dtypes = parseDTypes(values.dtype ?? 'f16');
    if (dtypes.length !== 1) throw new Error(`--single-file holds one dtype: use --dtype f16 or f32\n${USAGE}`);
    await makeRandomSingleFile({ arch, out: values.out, dtype: dtypes[0], force: values.force, log });
    return;
  }
  await makeRandomModel({ arch, out: values.out, dtypes: parseDTypes(values.dtype), force: values.force, log });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`make-random-model: ${(e as Error).message}`);
    process.exitCode = 1;
  });
}
