// What `ssd quantize --type T` (stable-diffusion.cpp's rules) makes of a full-size model, from its key lists
// alone: per component the tensors that become T and the bytes of the file's tensors, against fp16. The
// rules quantize only rows of whole blocks — linears and norms, never the 3×3 or 1×1 convs (their ggml rows
// are kernel widths) — which bounds what a quantized model can save.
import { componentToSgm, convExportType, exportType, ggmlTypeByName, GGML_TYPES, type SdxlComponent, type TensorEntry } from '@ssd/tensor';
import { componentKeys, type Arch } from './random-model.js';

export interface ComponentPlan {
  component: SdxlComponent;
  tensors: number;
  quantized: number;
  /** Parameters in the tensors that become T. */
  quantizedParams: number;
  params: number;
  fp16Bytes: number;
  bytes: number;
}

const COMPONENTS: SdxlComponent[] = ['unet', 'text_encoder', 'text_encoder_2', 'vae'];

/** The plan of every component of `arch` at `type`, the sources' tensors stored f16 (as make-random-model writes them). */
export async function ggufPlan(arch: Arch, type: string, quantizeConvs = false): Promise<ComponentPlan[]> {
  const target = ggmlTypeByName(type);
  if (!target) throw new Error(`unknown type ${type}`);
  const f16 = GGML_TYPES.get(1)!;
  const out: ComponentPlan[] = [];
  for (const component of COMPONENTS) {
    const keys = await componentKeys(arch, component);
    const entries = new Map(keys.map(({ key, shape }) => [key, { dtype: 'F16', shape, byteLength: 0 } as unknown as TensorEntry]));
    const plan: ComponentPlan = { component, tensors: 0, quantized: 0, quantizedParams: 0, params: 0, fp16Bytes: 0, bytes: 0 };
    for (const [name, e] of componentToSgm(component, entries)) {
      const n = e.shape.reduce((a, b) => a * b, 1);
      const t = (quantizeConvs ? convExportType(name, e.shape, target) : null) ?? exportType(name, e.shape, f16, target);
      plan.tensors++;
      plan.params += n;
      plan.fp16Bytes += 2 * n;
      plan.bytes += (n / t.blockValues) * t.blockBytes;
      if (t !== f16) {
        plan.quantized++;
        plan.quantizedParams += n;
      }
    }
    out.push(plan);
  }
  return out;
}
