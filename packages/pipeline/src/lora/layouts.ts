// The LoRA key layouts people ship, one table of key rules per layout, and the detection that picks
// one from the keys (diffusers loaders/lora.py lora_state_dict, lora_conversion_utils.py and
// utils/state_dict_utils.py, v0.26.3). Each rule turns a key into (component, module, role); module
// names are resolved against the model later (lora-mapping.ts). Adapter kinds we do not implement
// (LoHa, LoKr, DoRA, …) are recognised by their keys and refused by name.
import { ModelLoadError } from '@ssd/tensor';

export type LoraLayout = 'kohya-sgm' | 'kohya-diffusers' | 'peft' | 'diffusers-old';
export type LoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';
export const LORA_COMPONENTS: readonly LoraComponent[] = ['unet', 'text_encoder', 'text_encoder_2'];

/**
 * How a module is named: `path` = the dotted diffusers/transformers module path; `flat` = the same
 * with '.' → '_' (kohya); `sgm` = kohya's '_'-joined SGM/LDM UNet path (input_blocks_4_1_…).
 */
export type ModuleNaming = 'path' | 'flat' | 'sgm';
export type LoraRole = 'down' | 'up' | 'alpha';

export interface ParsedKey {
  readonly component: LoraComponent;
  readonly module: string;
  readonly naming: ModuleNaming;
  readonly role: LoraRole;
}

interface KeyRule {
  readonly pattern: RegExp;
  parse(m: RegExpExecArray): ParsedKey;
}

export interface LayoutTable {
  /** What the layout looks like, for error messages. */
  readonly description: string;
  readonly rules: readonly KeyRule[];
}

const KOHYA_COMPONENT: Record<string, LoraComponent> = { unet: 'unet', te: 'text_encoder', te1: 'text_encoder', te2: 'text_encoder_2' };
const KOHYA = /^lora_(unet|te1|te2|te)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const KOHYA_ROLE: Record<string, LoraRole> = { 'lora_down.weight': 'down', 'lora_up.weight': 'up', alpha: 'alpha' };
const kohya = (unetNaming: ModuleNaming): KeyRule => ({
  pattern: KOHYA,
  parse: (m) => {
    const component = KOHYA_COMPONENT[m[1]];
    return { component, module: m[2], naming: component === 'unet' ? unetNaming : 'flat', role: KOHYA_ROLE[m[3]] };
  },
});

// diffusers-format keys carry the component as a prefix; without one the whole file is the UNet's
// (diffusers load_lora_into_unet: "keys can either be indexed directly into the unet or prefixed")
const PREFIX = '^(?:(unet|text_encoder_2|text_encoder)\\.)?';
const component = (p: string | undefined): LoraComponent => (p as LoraComponent | undefined) ?? 'unet';
const rule = (re: string, parse: (m: RegExpExecArray) => ParsedKey): KeyRule => ({ pattern: new RegExp(PREFIX + re), parse });
const alphaRule = rule('(.+)\\.alpha$', (m) => ({ component: component(m[1]), module: m[2], naming: 'path', role: 'alpha' }));

// the attention-processor names of the first diffusers LoRAs: UNet to_q_lora → to_q, to_out_lora →
// to_out.0; text encoders to_q_lora → q_proj, to_out_lora → out_proj (state_dict_utils.py)
const OLD_ATTN: Record<string, [unet: string, textEncoder: string]> = { to_q: ['to_q', 'q_proj'], to_k: ['to_k', 'k_proj'], to_v: ['to_v', 'v_proj'], to_out: ['to_out.0', 'out_proj'] };

export const LAYOUTS: Readonly<Record<LoraLayout, LayoutTable>> = {
  'kohya-sgm': {
    description: 'kohya-ss with SGM/LDM UNet names: lora_unet_input_blocks_4_1_….lora_down.weight / .lora_up.weight / .alpha, lora_te1_… / lora_te2_…',
    rules: [kohya('sgm')],
  },
  'kohya-diffusers': {
    description: 'kohya-ss with diffusers module names: lora_unet_down_blocks_1_attentions_0_….lora_down.weight / .lora_up.weight / .alpha, lora_te1_… / lora_te2_…',
    rules: [kohya('flat')],
  },
  peft: {
    description: 'PEFT / diffusers ≥ 0.27: unet.<module>.lora_A.weight / .lora_B.weight (text_encoder., text_encoder_2.), optional .alpha',
    rules: [rule('(.+)\\.lora_(A|B)\\.weight$', (m) => ({ component: component(m[1]), module: m[2], naming: 'path', role: m[3] === 'A' ? 'down' : 'up' })), alphaRule],
  },
  'diffusers-old': {
    description: 'diffusers ≤ 0.26: unet.<module>.lora.down.weight / .lora.up.weight, attention processors (….processor.to_q_lora.down.weight), text encoders ….lora_linear_layer.down.weight',
    rules: [
      rule('(.+)\\.lora\\.(down|up)\\.weight$', (m) => ({ component: component(m[1]), module: m[2], naming: 'path', role: m[3] as LoraRole })),
      rule('(.+?)(?:\\.processor)?\\.(to_q|to_k|to_v|to_out)_lora\\.(down|up)\\.weight$', (m) => {
        const c = component(m[1]);
        return { component: c, module: `${m[2]}.${OLD_ATTN[m[3]][c === 'unet' ? 0 : 1]}`, naming: 'path', role: m[4] as LoraRole };
      }),
      rule('(.+)\\.lora_linear_layer\\.(down|up)\\.weight$', (m) => ({ component: component(m[1]), module: m[2], naming: 'path', role: m[3] as LoraRole })),
      alphaRule,
    ],
  },
};

/** Adapter kinds recognised by their keys and refused (LyCORIS and PEFT variants beyond plain LoRA/LoCon). */
const UNSUPPORTED: readonly { kind: string; pattern: RegExp }[] = [
  { kind: 'LoHa (LyCORIS hada_* keys)', pattern: /\.hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)$/ },
  { kind: 'LoKr (LyCORIS lokr_* keys)', pattern: /\.lokr_(w1|w2|w1_a|w1_b|w2_a|w2_b|t1|t2)$/ },
  { kind: 'DoRA (dora_scale / lora_magnitude_vector keys)', pattern: /(\.dora_scale$|lora_magnitude_vector)/ },
  { kind: 'LoCon with a Tucker/CP core (lora_mid keys)', pattern: /\.lora_mid\.weight$/ },
  { kind: 'GLoRA (a1/a2/b1/b2 keys)', pattern: /^lora_.*\.(a1|a2|b1|b2)\.weight$/ },
  { kind: '(IA)³ (on_input keys)', pattern: /\.on_input$/ },
  { kind: 'a full weight difference (LyCORIS diff keys)', pattern: /^lora_.*\.(diff|diff_b)$/ },
  { kind: 'norm adapters (LyCORIS w_norm/b_norm keys)', pattern: /^lora_.*\.(w_norm|b_norm)$/ },
];

/** The layout of a LoRA file from its keys; a ModelLoadError for refused kinds and unknown files. */
export function detectLayout(file: string, keys: readonly string[]): LoraLayout {
  for (const u of UNSUPPORTED) {
    const hit = keys.find((k) => u.pattern.test(k));
    if (hit) throw new ModelLoadError(`${file}: not supported: ${u.kind}, e.g. "${hit}" — only LoRA and LoCon adapters (lora_down/lora_up or lora_A/lora_B pairs) load`);
  }
  if (keys.length && keys.every((k) => k.startsWith('lora_'))) {
    // diffusers _maybe_map_sgm_blocks_to_diffusers: any SGM block name means SGM numbering
    const sgm = keys.some((k) => /^lora_unet_(input_blocks|middle_block|output_blocks)_/.test(k));
    return sgm ? 'kohya-sgm' : 'kohya-diffusers';
  }
  if (keys.some((k) => /\.lora_[AB]\.weight$/.test(k))) return 'peft';
  if (keys.some((k) => /(\.lora\.(down|up)|_lora\.(down|up)|\.lora_linear_layer\.(down|up))\.weight$/.test(k))) return 'diffusers-old';
  const first = keys.slice(0, 5).map((k) => `"${k}"`).join(', ');
  throw new ModelLoadError(
    `${file}: not a LoRA file we recognise (${keys.length} tensors${first ? `, e.g. ${first}` : ''}); the layouts we load are:\n` +
      Object.entries(LAYOUTS).map(([name, t]) => `  ${name}: ${t.description}`).join('\n'),
  );
}

/** The key under the layout's rules, or null when no rule matches. */
export function parseKey(layout: LoraLayout, key: string): ParsedKey | null {
  for (const r of LAYOUTS[layout].rules) {
    const m = r.pattern.exec(key);
    if (m) return r.parse(m);
  }
  return null;
}
