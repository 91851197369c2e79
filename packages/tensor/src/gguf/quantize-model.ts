// A model to one GGUF file, as `sd -M convert --type T` makes it: a single file (.safetensors / .gguf)
// keeps its key names, a diffusers folder is written under SGM names (diffusers' own converter's); keys
// in byte order, no key/values; each tensor's type by sd.cpp's rules (type-rules.ts). Streamed.
import type { ByteSource } from '../byte-source.js';
import { openComponentTensors } from '../component-tensors.js';
import { InvalidArgumentError, ModelLoadError } from '../errors.js';
import type { ModelSource } from '../model-source.js';
import type { ByteSink, WriteProgress } from '../safetensors-stream.js';
import type { TensorEntry, TensorSource } from '../tensor-source.js';
import type { SdxlComponent } from '../sgm/checkpoint-kind.js';
import { openByteSource, openTensorFile, SDXL_COMPONENTS } from '../sgm/single-file-source.js';
import { pipelineToSgm } from '../sgm/to-sgm.js';
import { GGML_TYPES, ggmlTypeByName, type GgmlType } from './ggml-types.js';
import { writeGguf, type GgufTensorToWrite } from './gguf-writer.js';
import { CONV_FALLBACK_TYPES, CONV_K_FALLBACK, convExportType, exportType, parseTypeRules, writableType } from './type-rules.js';

export interface QuantizeModelOptions {
  /** The target type: 'q8_0', 'q5_0', 'q4_0', 'q4_K', 'f16', … (sd.cpp's `--type`). */
  type: string;
  /** sd.cpp's `--tensor-type-rules`: "regex=type,…", the first match overriding `type`. */
  typeRules?: string;
  /**
   * Also quantize the UNet's convolutions, by output rows (stored 2-D, their shape in
   * `comfy.gguf.orig_shape.*`): about a quarter (SSD-1B) to two fifths (Vega) of the UNet's weights that
   * sd.cpp's rules keep in f16. stable-diffusion.cpp cannot read such a file; @ssd and ComfyUI-GGUF can.
   */
  quantizeConvs?: boolean;
  /**
   * With `quantizeConvs`: the convolutions' type (default `type`) — e.g. q4_K layers with q5_K convs, whose
   * rounding error weighs more in a UNet's output than the linear layers'. `typeRules` still come first.
   */
  convType?: string;
  /**
   * With `quantizeConvs` and a K-quant: the type of convs whose rows are not whole 256-value super-blocks
   * (default q8_0: their rounding weighs most; 'q5_0' is llama.cpp's smaller choice). A 32-value block type.
   */
  convFallback?: string;
  /** ggml's reference quantizers (default) or sd.cpp's importance-weighted search (its exact bytes). */
  quantizer?: 'reference' | 'sdcpp';
  /** A folder's weight variant to read (e.g. 'fp16'; falls back to the full weights). */
  sourceVariant?: string;
  metadata?: Readonly<Record<string, string>>;
  signal?: AbortSignal;
  onProgress?: (p: WriteProgress) => void;
  onNotice?: (message: string) => void;
}

export interface QuantizeModelResult {
  /** The file's size in bytes. */
  bytes: number;
  /** Tensors written per type name. */
  types: Record<string, number>;
}

/** Writes `model` (a diffusers folder, or a single file: path, URL, Blob or ByteSource) as GGUF to `sink`. */
export async function quantizeModelToGguf(model: ModelSource | string | Blob | ByteSource, sink: ByteSink, opts: QuantizeModelOptions): Promise<QuantizeModelResult> {
  const target = writableType(opts.type, 'type');
  if (opts.convType !== undefined && !opts.quantizeConvs) throw new InvalidArgumentError(`convType = ${JSON.stringify(opts.convType)} needs quantizeConvs (convolutions keep their type otherwise, as sd.cpp keeps them)`);
  const convTarget = opts.convType === undefined ? target : writableType(opts.convType, 'convType');
  if (opts.convFallback !== undefined && !opts.quantizeConvs) throw new InvalidArgumentError(`convFallback = ${JSON.stringify(opts.convFallback)} needs quantizeConvs`);
  const fallbackName = opts.convFallback ?? CONV_K_FALLBACK;
  if (!(CONV_FALLBACK_TYPES as readonly string[]).includes(fallbackName)) throw new InvalidArgumentError(`convFallback = ${JSON.stringify(fallbackName)}: must be a 32-value block type (${CONV_FALLBACK_TYPES.join(', ')})`);
  const convFallback = ggmlTypeByName(fallbackName)!;
  const rules = parseTypeRules(opts.typeRules ?? '');
  const opened: TensorSource[] = [];
  try {
    const named = isModelSource(model) ? await folderTensors(model, opts, opened) : await fileTensors(model, opened);
    const types: Record<string, number> = {};
    const plan: GgufTensorToWrite[] = named.map(([name, entry]) => {
      const conv = opts.quantizeConvs ? convExportType(name, entry.shape, convTarget, rules, convFallback) : null;
      const type = conv ?? exportType(name, entry.shape, storedType(name, entry), target, rules);
      types[type.name] = (types[type.name] ?? 0) + 1;
      return { name, entry, type, storedShape: conv ? [entry.shape[0], entry.shape.slice(1).reduce((a, b) => a * b, 1)] : undefined };
    });
    const bytes = await writeGguf(sink, plan, { metadata: opts.metadata, quantizer: opts.quantizer, signal: opts.signal, onProgress: opts.onProgress });
    return { bytes, types };
  } catch (e) {
    await sink.abort().catch(() => {});
    throw e;
  } finally {
    await Promise.all(opened.map((t) => t.close()));
  }
}

function isModelSource(m: unknown): m is ModelSource {
  return typeof m === 'object' && m !== null && typeof (m as ModelSource).readText === 'function' && typeof (m as ModelSource).exists === 'function';
}

const byName = ([a]: [string, TensorEntry], [b]: [string, TensorEntry]) => (a < b ? -1 : a > b ? 1 : 0);

async function fileTensors(file: string | Blob | ByteSource, opened: TensorSource[]): Promise<[string, TensorEntry][]> {
  const bytes = openByteSource(file);
  let src: TensorSource;
  try {
    src = await openTensorFile(bytes);
  } catch (e) {
    await bytes.close();
    throw e;
  }
  opened.push(src);
  return src.keys().map((k): [string, TensorEntry] => [k, src.get(k)!]).sort(byName);
}

async function folderTensors(source: ModelSource, opts: QuantizeModelOptions, opened: TensorSource[]): Promise<[string, TensorEntry][]> {
  if (!(await source.exists('model_index.json'))) throw new ModelLoadError(`${source.description} has no model_index.json: give a diffusers pipeline folder or a single checkpoint file`);
  const parts: Partial<Record<SdxlComponent, ReadonlyMap<string, TensorEntry>>> = {};
  for (const c of SDXL_COMPONENTS) {
    const t = await openComponentTensors(source, c, { variant: opts.sourceVariant, onNotice: opts.onNotice });
    opened.push(t);
    parts[c] = new Map(t.keys().filter((k) => k !== 'text_model.embeddings.position_ids').map((k) => [k, t.get(k)!]));
  }
  return pipelineToSgm(parts).sort(byName);
}

/** The ggml type a tensor is stored in (what it keeps when sd.cpp's rules leave it alone). */
function storedType(name: string, e: TensorEntry): GgmlType {
  if (e.quantized) return ggmlTypeByName(e.quantized.type)!;
  for (const t of GGML_TYPES.values()) if (t.dtype === e.dtype) return t;
  throw new InvalidArgumentError(`${e.file}: ${name}: ${e.dtype} tensors have no GGUF type`);
}
