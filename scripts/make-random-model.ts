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
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ARCHS, EXPECTED_PARAMS, singleFileTensors, writeRandomSingleFile, WEIGHT_COMPONENTS, staticFiles, streamToFile, syntheticWeights, weightFileName,
  type Arch, type WeightComponent, type WeightDType,
} from '../bench/lib/random-model.js';

const USAGE = 'usage: pnpm make-random-model --arch ssd-1b|vega|sdxl --out <dir> [--dtype f32|f16|both] [--force] [--quiet]\n' +
  '       pnpm make-random-model --arch ssd-1b|vega|sdxl --single-file --out <file.safetensors> [--dtype f16|f32] [--force] [--quiet]';

export interface MakeOptions {
  arch: Arch;
  out: string;
  dtypes: WeightDType[];
  force?: boolean;
  log?: (line: string) => void;
}

export interface MakeResult {
  files: { path: string; bytes: number; written: boolean; ms: number }[];
  totalBytes: number;
  writtenBytes: number;
  ms: number;
  peakRssBytes: number;
}

/** Writes (or completes) a random-weight model folder; see the header. */
export async function makeRandomModel(o: MakeOptions): Promise<MakeResult> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const out = resolve(o.out);
  await mkdir(out, { recursive: true });
  const result: MakeResult = { files: [], totalBytes: 0, writtenBytes: 0, ms: 0, peakRssBytes: 0 };
  for (const dtype of o.dtypes) {
    for (const component of Object.keys(WEIGHT_COMPONENTS) as WeightComponent[]) {
      const source = await syntheticWeights(o.arch, component, dtype);
      const expected = component === 'unet' ? EXPECTED_PARAMS[`${o.arch}/unet`] : EXPECTED_PARAMS[component];
      if (source.parameterCount !== expected) {
        throw new Error(`${o.arch} ${component}: the key list holds ${source.parameterCount.toLocaleString('en-US')} parameters, the published model ${expected.toLocaleString('en-US')}`);
      }
      const path = join(out, component, weightFileName(component, dtype));
      const size = await source.size();
      const have = await stat(path).then((s) => s.size, () => -1);
      const f0 = performance.now();
      let written = false;
      if (have === size && !o.force) {
        log(`kept   ${path} (${mib(size)} MiB, already complete)`);
      } else {
        let last = 0;
        await streamToFile(source, path, {
          onProgress: (p) => {
            const now = performance.now();
            if (now - last > 5000) {
              last = now;
              log(`  ${component}/${weightFileName(component, dtype)}: ${mib(p.writtenBytes)} / ${mib(p.totalBytes)} MiB (${rate(p.writtenBytes, now - f0)} MB/s, RSS ${mib(process.memoryUsage().rss)} MiB)`);
            }
          },
        });
        written = true;
        result.writtenBytes += size;
        log(`wrote  ${path} (${mib(size)} MiB, ${source.parameterCount.toLocaleString('en-US')} params, ${((performance.now() - f0) / 1000).toFixed(1)} s, ${rate(size, performance.now() - f0)} MB/s)`);
      }
      result.files.push({ path, bytes: size, written, ms: performance.now() - f0 });
      result.totalBytes += size;
    }
  }
  // configs and tokenizer files; model_index.json last, so its presence means the folder is complete
  const statics = Object.entries(staticFiles(o.arch)).sort(([a], [b]) => (a === 'model_index.json' ? 1 : b === 'model_index.json' ? -1 : 0));
  for (const [rel, from] of statics) {
    const to = join(out, rel);
    await mkdir(join(to, '..'), { recursive: true });
    await writeFile(to, await readFile(from)); // a fresh, writable copy (the fixtures may be read-only)
  }
  result.ms = performance.now() - t0;
  result.peakRssBytes = process.resourceUsage().maxRSS * 1024;
  log(`${o.arch} random model in ${out}: ${mib(result.totalBytes)} MiB of weights (${mib(result.writtenBytes)} MiB written) in ${(result.ms / 1000).toFixed(1)} s, peak RSS ${mib(result.peakRssBytes)} MiB`);
  return result;
}

export interface SingleFileResult {
  path: string;
  bytes: number;
  written: boolean;
  ms: number;
  peakRssBytes: number;
}

/** Writes (or keeps, when complete) one random SGM single-file checkpoint; see the header. */
export async function makeRandomSingleFile(o: { arch: Arch; out: string; dtype: WeightDType; force?: boolean; log?: (line: string) => void }): Promise<SingleFileResult> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const path = resolve(o.out);
  const { count, params, size } = await singleFileTensors(o.arch, o.dtype);
  const expected = EXPECTED_PARAMS[`${o.arch}/unet`] + EXPECTED_PARAMS.vae + EXPECTED_PARAMS.text_encoder + EXPECTED_PARAMS.text_encoder_2;
  if (params !== expected) throw new Error(`${o.arch}: the single file would hold ${params.toLocaleString('en-US')} parameters, the published model ${expected.toLocaleString('en-US')}`);
  const have = await stat(path).then((s) => s.size, () => -1);
  let written = false;
  if (have === size && !o.force) {
    log(`kept   ${path} (${mib(size)} MiB, already complete)`);
  } else {
    let last = 0;
    await writeRandomSingleFile(o.arch, o.dtype, path, {
      onProgress: (p) => {
        const now = performance.now();
        if (now - last > 5000) {
          last = now;
          log(`  ${mib(p.writtenBytes)} / ${mib(p.totalBytes)} MiB (${rate(p.writtenBytes, now - t0)} MB/s, RSS ${mib(process.memoryUsage().rss)} MiB)`);
        }
      },
    });
    written = true;
    log(`wrote  ${path} (${mib(size)} MiB, ${params.toLocaleString('en-US')} params, ${count} tensors, ${((performance.now() - t0) / 1000).toFixed(1)} s, ${rate(size, performance.now() - t0)} MB/s)`);
  }
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  log(`${o.arch} random single file ${path}: peak RSS ${mib(peakRssBytes)} MiB`);
  return { path, bytes: size, written, ms: performance.now() - t0, peakRssBytes };
}

function mib(b: number): string {
  return (b / 2 ** 20).toFixed(0);
}

function rate(bytes: number, ms: number): string {
  return (bytes / 1e6 / (ms / 1000 || Infinity)).toFixed(0);
}

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
