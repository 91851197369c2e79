// `ssd quantize --quantize-convs`: which type each UNet conv gets (convExportType). A K-quant conv whose
// rows (I·kh·kw values) are whole 256-value super-blocks takes it; the others fall back to q8_0, not
// llama.cpp's q5_0 (measured: the 320/640-channel convs' rounding dominates noise_pred; type-rules.ts).
import { describe, expect, it } from 'vitest';
import { convExportType, ggmlTypeByName, parseTypeRules } from '@ssd/tensor';

const t = (name: string) => ggmlTypeByName(name)!;
const conv = (name: string, shape: number[], target: string, rules = '') => convExportType(`model.diffusion_model.${name}`, shape, t(target), parseTypeRules(rules))?.name ?? null;

describe('convExportType', () => {
  it('K-quants: whole super-block rows keep the type, the rest fall back to q8_0', () => {
    for (const k of ['q4_K', 'q5_K', 'q6_K']) {
      expect(conv('middle_block.0.in_layers.2.weight', [1280, 1280, 3, 3], k), k).toBe(k); // 11,520 = 45·256
      expect(conv('input_blocks.1.0.in_layers.2.weight', [320, 320, 3, 3], k), k).toBe('q8_0'); // 2,880: not 256s
      expect(conv('input_blocks.4.0.skip_connection.weight', [640, 320, 1, 1], k), k).toBe('q8_0'); // 320
      expect(conv('out.2.weight', [4, 320, 3, 3], k), k).toBe('q8_0');
    }
  });

  it("llama.cpp's q5_0 as the fallback instead (--conv-fallback q5_0)", () => {
    const q5 = (name: string, shape: number[]) => convExportType(`model.diffusion_model.${name}`, shape, t('q4_K'), [], t('q5_0'))?.name;
    expect(q5('input_blocks.1.0.in_layers.2.weight', [320, 320, 3, 3])).toBe('q5_0');
    expect(q5('middle_block.0.in_layers.2.weight', [1280, 1280, 3, 3])).toBe('q4_K');
  });

  it('32-value block types take any row of whole blocks; a row that is not (conv_in: 36) stays as it is', () => {
    expect(conv('input_blocks.1.0.in_layers.2.weight', [320, 320, 3, 3], 'q5_0')).toBe('q5_0');
    expect(conv('input_blocks.0.0.weight', [320, 4, 3, 3], 'q8_0')).toBeNull();
    expect(conv('input_blocks.0.0.weight', [320, 4, 3, 3], 'q4_K')).toBeNull();
  });

  it('rules come first (f16 keeps the conv as it is); not a conv, the VAE, biases: null', () => {
    expect(conv('out.2.weight', [4, 320, 3, 3], 'q4_K', 'out\\.2\\.weight$=f16')).toBeNull();
    expect(conv('out.2.weight', [4, 320, 3, 3], 'q8_0', 'out\\.2=q4_0')).toBe('q4_0');
    expect(conv('input_blocks.4.1.proj_in.weight', [640, 640], 'q8_0')).toBeNull();
    expect(conv('middle_block.0.in_layers.2.bias', [1280, 1280, 3, 3], 'q8_0')).toBeNull();
    expect(convExportType('first_stage_model.decoder.conv_in.weight', [512, 4, 3, 3], t('q8_0'))).toBeNull();
  });
});
