// `ssd quantize`: a diffusers folder or a single-file checkpoint → one GGUF file, as stable-diffusion.cpp's
// `sd -M convert --type T` makes it (same key names, type ids and per-tensor rules, so sd.cpp reads it),
// quantized with ggml's reference quantizers or, with --quantizer sdcpp, byte for byte as sd.cpp does.
import { CONV_FALLBACK_TYPES, InvalidArgumentError, NodeFileSink, openModelSource, parseTypeRules, quantizeModelToGguf, WRITABLE_TYPES } from '@ssd/tensor';
import { parseArgs, str } from './cli-args.js';
import { modelKind } from './cli-model.js';
import { prepareOutputPath } from './cli-output-paths.js';
import { Progress } from './progress.js';

export const QUANTIZE_HELP = `ssd quantize --model <folder|file.safetensors|file.gguf> --type ${WRITABLE_TYPES.join('|')} --out <file.gguf>
             [--tensor-type-rules "regex=type,…"] [--variant fp16] [--quantize-convs [--conv-type T] [--conv-fallback q8_0|q5_0]] [--quantizer ref|sdcpp] [--quiet]
  What sd.cpp's -M convert writes: a folder under SGM names, a single file under its own; biases, embeddings,
  convolutions (and any row that is not whole blocks) keep their type, as sd.cpp keeps them.
  --quantizer sdcpp: the importance-weighted search sd.cpp's convert runs (its bytes exactly; a little more
  accurate); default ref: ggml's reference quantizers (the same for q8_0).
  --quantize-convs also quantizes the UNet's convolutions (a smaller file and GPU footprint; ComfyUI-GGUF's
  comfy.gguf.orig_shape layout, which stable-diffusion.cpp cannot read); --conv-type gives them a type of
  their own (e.g. --type q4_K --conv-type q5_K: their rounding weighs more in the UNet's output);
  with a K-quant, convs whose rows are not whole 256-value blocks (the 320/640-channel levels) take
  --conv-fallback, default q8_0 (SSD-1B q4_K: noise_pred error 4.6e-2 vs 8.7e-2 with llama.cpp's q5_0, +36 MB).
`;

export async function quantize(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'type', 'out', 'tensor-type-rules', 'variant', 'quantizer', 'conv-type', 'conv-fallback'], flags: ['quiet', 'quantize-convs'] });
  if (args.positionals.length) throw new InvalidArgumentError(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
  const model = str(args, 'model');
  if (!model) throw new InvalidArgumentError('--model is required (a diffusers folder or a single-file checkpoint)');
  const type = str(args, 'type');
  if (!type) throw new InvalidArgumentError(`--type is required (${WRITABLE_TYPES.join(', ')})`);
  if (!(WRITABLE_TYPES as readonly string[]).includes(type)) throw new InvalidArgumentError(`--type ${JSON.stringify(type)}: must be one of ${WRITABLE_TYPES.join(', ')}`);
  const convType = str(args, 'conv-type');
  if (convType !== undefined && !args.options.has('quantize-convs')) throw new InvalidArgumentError('--conv-type needs --quantize-convs (convolutions keep their type otherwise, as sd.cpp keeps them)');
  if (convType !== undefined && !(WRITABLE_TYPES as readonly string[]).includes(convType)) throw new InvalidArgumentError(`--conv-type ${JSON.stringify(convType)}: must be one of ${WRITABLE_TYPES.join(', ')}`);
  const convFallback = str(args, 'conv-fallback');
  if (convFallback !== undefined && !args.options.has('quantize-convs')) throw new InvalidArgumentError('--conv-fallback needs --quantize-convs');
  if (convFallback !== undefined && !(CONV_FALLBACK_TYPES as readonly string[]).includes(convFallback)) throw new InvalidArgumentError(`--conv-fallback ${JSON.stringify(convFallback)}: must be a 32-value block type (${CONV_FALLBACK_TYPES.join(', ')})`);
  const out = str(args, 'out');
  if (!out) throw new InvalidArgumentError('--out is required (the .gguf file to write)');
  if (!/\.gguf$/i.test(out)) throw new InvalidArgumentError(`--out ${JSON.stringify(out)}: the file name must end in .gguf`);
  const quantizer = str(args, 'quantizer') ?? 'ref';
  if (quantizer !== 'ref' && quantizer !== 'sdcpp') throw new InvalidArgumentError(`--quantizer ${JSON.stringify(quantizer)}: use ref (ggml's reference quantizers) or sdcpp (what sd.cpp's convert runs)`);
  const rules = str(args, 'tensor-type-rules');
  parseTypeRules(rules ?? ''); // a bad rule fails before anything is read
  const kind = modelKind(model);
  await prepareOutputPath('out', out);
  const bar = new Progress('quantizing', args.options.has('quiet'));
  const start = performance.now();
  const source = kind === 'single-file' ? model : openModelSource(model);
  const r = await quantizeModelToGguf(source, new NodeFileSink(out), {
    type, typeRules: rules, sourceVariant: str(args, 'variant'), quantizeConvs: args.options.has('quantize-convs'), convType, convFallback, quantizer: quantizer === 'sdcpp' ? 'sdcpp' : 'reference',
    onNotice: (m) => console.error(`note: ${m}`),
    onProgress: (p) => bar.bytes(out, p.writtenBytes, p.totalBytes),
  });
  const types = Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(', ');
  bar.done(`quantized in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  console.log(`wrote ${out} (${r.bytes.toLocaleString('en-US')} bytes; tensors: ${types})`);
}
