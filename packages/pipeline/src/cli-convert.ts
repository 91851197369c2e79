// `ssd convert`: a single-file SGM checkpoint → a diffusers folder (which then also loads with the
// folder path), or a folder (or single file) → one SGM checkpoint key for key as diffusers'
// convert_diffusers_to_original_sdxl.py writes it. Streamed tensor by tensor.
import { existsSync } from 'node:fs';
import {
  InvalidArgumentError, NodeFileSink, NodeFolderSink, openModelSource, SingleFileSource, writeDiffusersFolder, writeSingleFile, type ModelSource,
} from '@ssd/tensor';
import { withSdxlTokenizers } from '@ssd/clip';
import { parseArgs, str } from './cli-args.js';
import { modelKind } from './cli-model.js';
import { prepareOutputPath } from './cli-output-paths.js';
import { Progress } from './progress.js';

export const CONVERT_HELP = `ssd convert --from <single file|folder|url> (--to <folder> [--variant fp16] | --to-single-file <file.safetensors>)
            [--dtype f16|f32] [--base <folder>] [--source-variant fp16]
  A single file becomes a diffusers folder (tokenizers from @ssd/clip); a folder becomes one SGM checkpoint.
  --variant fp16 names the written folder's weight files *.fp16.safetensors; --source-variant fp16 reads
  a folder's fp16 files (falling back to the plain ones).
`;

export async function convert(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['from', 'to', 'to-single-file', 'variant', 'dtype', 'base', 'source-variant'], flags: ['quiet'] });
  if (args.positionals.length) throw new InvalidArgumentError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
  const from = str(args, 'from');
  if (!from) throw new InvalidArgumentError('--from is required (a single-file checkpoint or a diffusers folder)');
  const toFolder = str(args, 'to');
  const toFile = str(args, 'to-single-file');
  if (!!toFolder === !!toFile) throw new InvalidArgumentError('give exactly one of --to <folder> and --to-single-file <file>');
  const dtypeArg = str(args, 'dtype');
  if (dtypeArg !== undefined && dtypeArg !== 'f16' && dtypeArg !== 'f32') throw new InvalidArgumentError(`--dtype ${JSON.stringify(dtypeArg)}: use f16 or f32`);
  const dtype = dtypeArg === undefined ? undefined : dtypeArg === 'f16' ? 'F16' : 'F32';
  if (toFile && args.options.has('variant')) throw new InvalidArgumentError('--variant names the files of a written folder (--to); to read a folder\'s fp16 weight files, use --source-variant fp16');
  if (toFile) await prepareOutputPath('to-single-file', toFile);
  if (toFolder && existsSync(`${toFolder}/model_index.json`)) throw new InvalidArgumentError(`--to ${JSON.stringify(toFolder)}: already holds a pipeline (model_index.json); choose an empty folder`);
  const base = str(args, 'base');
  const source: ModelSource =
    modelKind(from) === 'single-file'
      ? withSdxlTokenizers(await SingleFileSource.open(from, { base: base ? openModelSource(base) : undefined, onNotice: (m) => console.error(`note: ${m}`) }))
      : openModelSource(from);
  const bar = new Progress('converting', args.options.has('quiet'));
  const onProgress = (p: { file: string; writtenBytes: number; totalBytes: number }) => bar.bytes(p.file, p.writtenBytes, p.totalBytes);
  const common = { dtype: dtype as 'F16' | 'F32' | undefined, sourceVariant: str(args, 'source-variant'), onNotice: (m: string) => console.error(`note: ${m}`), onProgress };
  if (toFolder) {
    await writeDiffusersFolder(source, new NodeFolderSink(toFolder), { ...common, variant: str(args, 'variant') });
    bar.done(`wrote ${toFolder}`);
  } else {
    const bytes = await writeSingleFile(source, new NodeFileSink(toFile!), common);
    bar.done(`wrote ${toFile} (${bytes.toLocaleString('en-US')} bytes)`);
  }
}
