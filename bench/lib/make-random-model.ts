// Writes a random-weight diffusers folder for an SDXL-family architecture (the job behind
// `pnpm make-random-model`, scripts/make-random-model.ts, and bench/pipeline.ts's model setup): every
// weight file streamed from the synthetic key lists (random-model.ts) in 16 MiB chunks under
// `.partial` and renamed when complete, files already complete kept unless forced, then the configs and
// tokenizer files, model_index.json last (its presence means the folder is complete); or the same
// model as one SGM single-file checkpoint (makeRandomSingleFile).
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  EXPECTED_PARAMS, singleFileTensors, WEIGHT_COMPONENTS, staticFiles, streamToFile, syntheticWeights, weightFileName, writeRandomSingleFile,
  type Arch, type WeightComponent, type WeightDType,
} from './random-model.js';

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
