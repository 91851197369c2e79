// Single files that are not (whole) SDXL-family checkpoints, built synthetically from the tiny folder's
// key set mapped to SGM names: each is refused with a typed error naming what was found; the parts
// that are supported (UNet-only files with a folder, diffusers-named UNets, OpenCLIP's own
// text_projection, scheduler metadata) load.
import { describe, expect, it } from 'vitest';
import {
  BlobSource, ConfigError, encodeSafetensors, FolderSource, ModelLoadError, openComponentTensors, pipelineToSgm, readEntryBytes, SafetensorsError,
  SingleFileSource, type SdxlComponent, type TensorEntry,
} from '@ssd/tensor';
import { SyntheticSafetensorsSource, type KeyShape } from '@ssd/tensor/testing';
import { fixturesDir } from '../../../testing/index.js';

const folder = new FolderSource(`${fixturesDir}/models/tiny-ssd1b`);
const COMPONENTS: SdxlComponent[] = ['unet', 'vae', 'text_encoder', 'text_encoder_2'];

/** The folder's fp16 tensors by component, for `use`; the files are closed afterwards. */
async function withFolderEntries<T>(use: (entries: Partial<Record<SdxlComponent, Map<string, TensorEntry>>>) => Promise<T>): Promise<T> {
  const out: Partial<Record<SdxlComponent, Map<string, TensorEntry>>> = {};
  const opened = await Promise.all(COMPONENTS.map((c) => openComponentTensors(folder, c, { variant: 'fp16' })));
  try {
    COMPONENTS.forEach((c, i) => (out[c] = new Map(opened[i].keys().map((k) => [k, opened[i].get(k)!]))));
    return await use(out);
  } finally {
    await Promise.all(opened.map((t) => t.close()));
  }
}

/** The tiny model's SGM key list (names and shapes), as diffusers' converter writes it. */
function sgmKeys(): Promise<KeyShape[]> {
  return withFolderEntries(async (entries) => pipelineToSgm(entries).map(([key, e]) => ({ key, shape: [...e.shape] })));
}

const open = (keys: KeyShape[], options = {}, name = 'synthetic.safetensors') => SingleFileSource.open(new SyntheticSafetensorsSource(name, keys, 'F16'), options);
const rename = (keys: KeyShape[], from: RegExp, to: string) => keys.map((k) => ({ key: k.key.replace(from, to), shape: k.shape }));

describe('single files that are not SDXL-family models', () => {
  it('an SD 1.5-like checkpoint (cond_stage_model.transformer, no label_emb)', async () => {
    const keys = rename((await sgmKeys()).filter((k) => !/label_emb|embedders\.1\./.test(k.key)), /^conditioner\.embedders\.0\./, 'cond_stage_model.');
    await expect(open(keys)).rejects.toThrow(ModelLoadError);
    await expect(open(keys)).rejects.toThrow(/synthetic\.safetensors is a Stable Diffusion 1\.x checkpoint \(text encoder under "cond_stage_model\.transformer\.\*"/);
  });

  it('an SD 2.x-like checkpoint (cond_stage_model.model)', async () => {
    const keys = rename((await sgmKeys()).filter((k) => !/embedders\.0\./.test(k.key)), /^conditioner\.embedders\.1\./, 'cond_stage_model.');
    await expect(open(keys)).rejects.toThrow(/Stable Diffusion 2\.x checkpoint/);
  });

  it('an SD 1.x UNet alone: no text_time embedding, cross-attention width 768', async () => {
    const keys = (await sgmKeys())
      .filter((k) => k.key.startsWith('model.diffusion_model.') && !k.key.includes('label_emb'))
      .map((k) => ({ key: k.key, shape: /attn2\.to_[kv]\.weight$/.test(k.key) ? [k.shape[0], 768] : k.shape }));
    await expect(open(keys, { require: 'unet' })).rejects.toThrow(/no "model\.diffusion_model\.label_emb\.0\.0\.weight".*cross-attention width 768: Stable Diffusion 1\.x/);
  });

  it('an SDXL-refiner-like checkpoint (OpenCLIP as conditioner.embedders.0.model)', async () => {
    const keys = rename((await sgmKeys()).filter((k) => !/embedders\.0\./.test(k.key)), /^conditioner\.embedders\.1\./, 'conditioner.embedders.0.');
    await expect(open(keys)).rejects.toThrow(/is an SDXL refiner checkpoint/);
  });

  it('a LoRA file passed as a model', async () => {
    const keys: KeyShape[] = [
      { key: 'lora_unet_input_blocks_4_1_proj_in.alpha', shape: [] },
      { key: 'lora_unet_input_blocks_4_1_proj_in.lora_down.weight', shape: [4, 32] },
      { key: 'lora_unet_input_blocks_4_1_proj_in.lora_up.weight', shape: [32, 4] },
    ];
    const err = await open(keys, {}, 'my-lora.safetensors').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(/my-lora\.safetensors is a LoRA \(3 of its 3 tensors are LoRA factors, e\.g\. "lora_unet_input_blocks_4_1_proj_in\.alpha"/);
    const peft = [{ key: 'unet.down_blocks.1.attentions.0.proj_in.lora_A.weight', shape: [4, 32] }];
    await expect(open(peft)).rejects.toThrow(/is a LoRA/);
  });

  it('another model family or no model at all', async () => {
    await expect(open([{ key: 'model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight', shape: [3, 1] }])).rejects.toThrow(/another model family/);
    await expect(open([{ key: 'encoder.layers.0.weight', shape: [2, 2] }])).rejects.toThrow(/is not an SDXL-family checkpoint: .*found encoder\.layers\.\* \(1\)/);
  });

  it('a checkpoint missing its text encoders names them', async () => {
    const all = await sgmKeys();
    const noTe = all.filter((k) => !k.key.startsWith('conditioner.'));
    await expect(open(noTe)).rejects.toThrow(/holds unet, vae but no text_encoder \("conditioner\.embedders\.0\.transformer\.\*"\), text_encoder_2 \("conditioner\.embedders\.1\.model\.\*"\)/);
    const noTe2 = all.filter((k) => !k.key.startsWith('conditioner.embedders.1.'));
    await expect(open(noTe2)).rejects.toThrow(/but no text_encoder_2 \("conditioner\.embedders\.1\.model\.\*"\): the checkpoint is incomplete/);
    const unetOnly = all.filter((k) => k.key.startsWith('model.diffusion_model.'));
    await expect(open(unetOnly)).rejects.toThrow(/holds unet but no .*a UNet-only file needs a diffusers folder for the text encoders and the VAE/);
  });

  it('a truncated file', async () => {
    const bytes = encodeSafetensors({ 'model.diffusion_model.conv_in.weight': { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) } });
    const cut = new BlobSource(new Blob([bytes.slice(0, bytes.length - 5)]), 'cut.safetensors');
    const err = await SingleFileSource.open(cut).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toMatch(/cut\.safetensors: truncated/);
  });

  it('a UNet whose conditioning does not fit the text encoders', async () => {
    const keys = (await sgmKeys()).map((k) => ({ key: k.key, shape: /attn2\.to_[kv]\.weight$/.test(k.key) ? [k.shape[0], 48] : k.shape }));
    await expect(open(keys)).rejects.toThrow(ConfigError);
    await expect(open(keys)).rejects.toThrow(/"cross_attention_dim" = 48: .*16 \+ 24 = 40/);
  });
});

describe('single files that load', () => {
  it('a UNet-only SGM file, with a folder for the other components', async () => {
    const unetOnly = (await sgmKeys()).filter((k) => k.key.startsWith('model.diffusion_model.'));
    const sf = await open(unetOnly, { base: folder });
    expect(sf.components).toEqual(['unet']);
    const want = JSON.parse(await folder.readText('unet/config.json'));
    expect(sf.config('unet')).toEqual(want);
    expect(JSON.parse(await sf.readText('vae/config.json'))).toEqual(JSON.parse(await folder.readText('vae/config.json')));
    const vae = await sf.openTensors('vae', { variant: 'fp16' });
    expect(vae.name).toMatch(/tiny-ssd1b\/vae\/diffusion_pytorch_model\.fp16\.safetensors/);
    await vae.close();
    expect(await sf.exists('tokenizer/vocab.json')).toBe(true);
  });

  it('a diffusers-named UNet file (no config), sized by the folder or an override', async () => {
    const t = await openComponentTensors(folder, 'unet', { variant: 'fp16' });
    const keys = t.keys().map((key) => ({ key, shape: [...t.get(key)!.shape] }));
    await t.close();
    const want = JSON.parse(await folder.readText('unet/config.json'));
    const sf = await open(keys, { base: folder });
    expect(sf.kind.layout).toBe('diffusers-unet');
    expect(sf.config('unet')).toEqual(want);
    // alone, the split of its 64 text_time inputs (pooled width + 6 ids) is unknown…
    await expect(open(keys, { require: 'unet' })).rejects.toThrow(/"projection_class_embeddings_input_dim" = 64: is not 1280 \(pooled text embedding\) \+ 6 × addition_time_embed_dim/);
    // …unless the caller says it
    const alone = await open(keys, { require: 'unet', configs: { unet: { addition_time_embed_dim: 8 } } });
    expect(alone.config('unet')).toEqual(want);
  });

  it("reads OpenCLIP's own text_projection [hidden, proj] transposed, as diffusers does", async () => {
    const tensors: Record<string, { dtype: 'F16'; shape: number[]; data: Uint16Array }> = {};
    const { pt, p, h } = await withFolderEntries(async (entries) => {
      const proj = entries.text_encoder_2!.get('text_projection.weight')!; // [16, 24] = Pᵀ
      const pt = new Uint16Array((await readEntryBytes(proj)).slice().buffer);
      const [p, h] = proj.shape;
      const stored = new Uint16Array(p * h); // P = [24, 16]
      for (let i = 0; i < p; i++) for (let j = 0; j < h; j++) stored[j * p + i] = pt[i * h + j];
      for (const [k, e] of pipelineToSgm(entries)) {
        const data = new Uint16Array((await readEntryBytes(e)).slice().buffer);
        if (k.endsWith('text_projection.weight')) tensors[k.replace(/\.weight$/, '')] = { dtype: 'F16', shape: [h, p], data: stored };
        else tensors[k] = { dtype: 'F16', shape: [...e.shape], data };
      }
      return { pt, p, h };
    });
    const sf = await SingleFileSource.open(new BlobSource(new Blob([encodeSafetensors(tensors) as BlobPart]), 'stability.safetensors'));
    const te2 = await sf.openTensors('text_encoder_2');
    const got = te2.get('text_projection.weight')!;
    expect([...got.shape]).toEqual([p, h]);
    expect([...new Uint16Array((await readEntryBytes(got)).slice().buffer)]).toEqual([...pt]);
    expect(sf.config('text_encoder_2').projection_dim).toBe(p);
  });

  it("takes the scheduler's prediction type or config from __metadata__", async () => {
    const keys = await sgmKeys();
    const withMeta = (metadata: Record<string, string>) => {
      const src = new SyntheticSafetensorsSource('meta.safetensors', keys, 'F16');
      const json = JSON.parse(new TextDecoder().decode(src.header.subarray(8)));
      json.__metadata__ = metadata;
      const tensors: Record<string, { dtype: 'F16'; shape: number[]; data: Uint16Array }> = {};
      for (const k of keys) tensors[k.key] = { dtype: 'F16', shape: k.shape, data: new Uint16Array(k.shape.reduce((a, b) => a * b, 1)) };
      return SingleFileSource.open(new BlobSource(new Blob([encodeSafetensors(tensors, metadata) as BlobPart]), 'meta.safetensors'));
    };
    expect((await withMeta({ 'modelspec.prediction_type': 'v' })).config('scheduler').prediction_type).toBe('v_prediction');
    const custom = (await withMeta({ scheduler_config: JSON.stringify({ timestep_spacing: 'trailing' }) })).config('scheduler');
    expect([custom._class_name, custom.timestep_spacing, custom.beta_end]).toEqual(['EulerDiscreteScheduler', 'trailing', 0.012]);
    await expect(withMeta({ scheduler_config: '[1]' })).rejects.toThrow(/"scheduler_config" = "\[1\]": must hold a JSON object/);
  });
});
