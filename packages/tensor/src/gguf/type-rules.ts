// Which ggml type each tensor gets when a model is converted to `--type T`, exactly as stable-diffusion.cpp
// 97d2990 decides (convert.cpp get_export_tensor_type + ModelLoader::tensor_should_be_converted): the first
// `--tensor-type-rules` regex that matches the name picks the type, else T; the tensor keeps its own type
// when a quantized row (ne[0], the last PyTorch dim) is not whole blocks — every conv, whose ne[0] is the
// kernel width — and for biases, scales, embeddings and the UNet's time/label embeddings.
import { InvalidArgumentError } from '../errors.js';
import { ggmlTypeByName, type GgmlType } from './ggml-types.js';

export interface TypeRule {
  readonly pattern: RegExp;
  readonly type: GgmlType;
}

/** The types `ssd quantize` writes: ggml's float types and the block types we quantize. */
export const WRITABLE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q5_0', 'q5_1', 'q4_0', 'q4_1', 'q4_K', 'q5_K', 'q6_K'] as const;
export type WritableType = (typeof WRITABLE_TYPES)[number];

export function writableType(name: string, what: string): GgmlType {
  const t = (WRITABLE_TYPES as readonly string[]).includes(name) ? ggmlTypeByName(name) : undefined;
  if (!t) throw new InvalidArgumentError(`${what} = ${JSON.stringify(name)}: must be one of ${WRITABLE_TYPES.join(', ')}`);
  return t;
}

/** sd.cpp's `--tensor-type-rules` syntax: "regex=type,regex=type" (e.g. "^vae\\.=f16,model\\.=q8_0"). */
export function parseTypeRules(text: string): TypeRule[] {
  const rules: TypeRule[] = [];
  for (const item of text.split(',')) {
    if (!item) continue;
    const eq = item.indexOf('=');
    if (eq < 0) throw new InvalidArgumentError(`tensor type rule ${JSON.stringify(item)} has no "=": write "regex=type"`);
    let pattern: RegExp;
    try {
      pattern = new RegExp(item.slice(0, eq));
    } catch (e) {
      throw new InvalidArgumentError(`tensor type rule ${JSON.stringify(item)}: invalid regex (${(e as Error).message})`);
    }
    rules.push({ pattern, type: writableType(item.slice(eq + 1), `the type of rule ${JSON.stringify(item)}`) });
  }
  return rules;
}

/** ModelLoader::tensor_should_be_converted: may tensor `name` (innermost dim ne0) become `type`? */
export function sdcppConverts(name: string, ne0: number, type: GgmlType): boolean {
  if (type.quant && ne0 % type.blockValues !== 0) return false;
  if (/\.(bias|scale|weight_scale)$/.test(name)) return false;
  if (['img_in.', 'txt_in.', 'time_in.', 'vector_in.', 'guidance_in.', 'final_layer.'].some((s) => name.includes(s))) return false; // Flux
  if (['x_embedder.', 't_embedder.', 'y_embedder.', 'pos_embed', 'context_embedder.'].some((s) => name.includes(s))) return false; // MMDiT
  if (name.includes('time_embed.') || name.includes('label_emb.')) return false; // UNet
  return !name.includes('embedding');
}

/** The type tensor `name` of PyTorch `shape` and stored type `stored` is written as. */
export function exportType(name: string, shape: readonly number[], stored: GgmlType, target: GgmlType, rules: readonly TypeRule[] = []): GgmlType {
  const dst = rules.find((r) => r.pattern.test(name))?.type ?? target;
  const ne0 = shape.length ? shape[shape.length - 1] : 1;
  return sdcppConverts(name, ne0, dst) ? dst : stored;
}

/**
 * A UNet conv whose rows are not whole 256-value super-blocks, asked for a K-quant: q8_0 — not llama.cpp's
 * q5_0 / q5_1, because in SDXL-family UNets those convs are the 320- and 640-channel levels and the
 * output conv, whose rounding weighs most in noise_pred. Measured on full-size random SSD-1B (issue 21,
 * bench:gguf): q4_K --quantize-convs noise_pred rel-L2 vs fp16 8.7e-2 with q5_0 for its 33 such convs
 * (97 M parameters), 4.6e-2 with q8_0, for 36 MB more.
 */
export const CONV_K_FALLBACK = 'q8_0';

/** The types a conv fallback may take: the writable block types of 32 values, which fit any conv row of 32s. */
export const CONV_FALLBACK_TYPES: readonly WritableType[] = WRITABLE_TYPES.filter((t) => ggmlTypeByName(t)!.blockValues === 32);

/**
 * `--quantize-convs` (beyond sd.cpp, which keeps convs as they are): the type of a UNet conv weight
 * [O, I, kh, kw], quantized by output rows of I·kh·kw values — stored 2-D with its shape in
 * `comfy.gguf.orig_shape.<name>` as ComfyUI-GGUF does; a K-quant whose blocks do not fit a row falls back
 * to `fallback` (default q8_0, CONV_K_FALLBACK; llama.cpp's choice would be q5_0). Null: not such a
 * conv, or no type fits.
 */
export function convExportType(name: string, shape: readonly number[], target: GgmlType, rules: readonly TypeRule[] = [], kFallback: GgmlType = ggmlTypeByName(CONV_K_FALLBACK)!): GgmlType | null {
  if (shape.length !== 4 || !name.endsWith('.weight') || name.startsWith('first_stage_model.') || name.startsWith('vae.')) return null;
  const dst = rules.find((r) => r.pattern.test(name))?.type ?? target;
  if (!dst.quant) return null;
  const row = shape[1] * shape[2] * shape[3];
  if (row % dst.blockValues === 0) return dst;
  const fallback = dst.blockValues === 256 ? kFallback : null;
  return fallback && row % fallback.blockValues === 0 ? fallback : null;
}
