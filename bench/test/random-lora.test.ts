// make-random-lora's data: a random LoRA in each layout for the fixture UNet's structure loads onto
// that UNet (every module, a finite output that differs from the base, unload = base bit for bit);
// the key-list view of a structure (targetsFromKeys) equals the model's own layers; and the full-size
// SSD-1B and Vega LoRAs map onto their architectures' key lists with the published parameter counts.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderSource, NodeFileSource, SafetensorsFile, type GpuContext } from '@ssd/tensor';
import { LoraAdapters, openLoraFile, resolveLoraFile, sgmBlockTable, targetsFromKeys } from '@ssd/pipeline';
import { parseUNetConfig, UNet2DConditionModel } from '@ssd/unet';
import { componentKeys, readUNetConfig } from '../lib/random-model.js';
import { LORA_FILE_LAYOUTS, loraParameterCount, PUBLISHED_RANK, RandomLoraSource, randomLoraTensors } from '../lib/random-lora.js';
import { unetInputs } from '../lib/unet-inputs.js';
import { fixturesDir, testContext } from '../../testing/index.js';

const MODEL = join(fixturesDir, 'models/tiny-ssd1b');

async function blobOf(src: RandomLoraSource): Promise<Blob> {
  return new Blob([(await src.read(0, await src.size())) as BlobPart]);
}

describe('random LoRAs on the fixture UNet', () => {
  let ctx: GpuContext;
  let unet: UNet2DConditionModel;
  let keys: { key: string; shape: number[] }[];
  beforeAll(async () => {
    ctx = await testContext();
    unet = await UNet2DConditionModel.fromPretrained(new FolderSource(MODEL), { context: ctx, dtype: 'f32' });
    const st = await SafetensorsFile.open(new NodeFileSource(join(MODEL, 'unet/diffusion_pytorch_model.safetensors')));
    keys = st.keys().map((key) => ({ key, shape: [...st.info(key).shape] }));
    await st.source.close();
  });
  afterAll(() => unet?.dispose());

  it('targetsFromKeys(the weight keys) describes the layers the model builds', () => {
    const model = new Map([...unet.namedLinearLayers(), ...unet.namedConv2dLayers()].map(([p, t]) => [p, { path: t.path, kind: t.kind, inFeatures: t.inFeatures, outFeatures: t.outFeatures, kernelSize: t.kernelSize }]));
    const fromKeys = targetsFromKeys(keys);
    expect([...fromKeys.keys()].sort()).toEqual([...model.keys()].sort());
    for (const [p, t] of model) expect(fromKeys.get(p), p).toEqual(t);
  });

  for (const layout of LORA_FILE_LAYOUTS) {
    it(`${layout}: loads every module, changes the output, unloads to the base bit for bit`, async () => {
      const inputs = unetInputs(ctx, unet, 2, 8, 8, 500);
      const run = async () => {
        const out = unet.forward(inputs);
        const bytes = new Uint8Array(await out.readBytes());
        const values = await out.read();
        out.dispose();
        return { bytes, values };
      };
      const before = await run();
      const tensors = randomLoraTensors(keys, unet.spec, layout, 3);
      const adapters = new LoraAdapters({ unet });
      const info = await adapters.load(await blobOf(new RandomLoraSource(`random-${layout}`, tensors, 'F16')));
      expect(info.modules.unet).toBe(253);
      expect(info.parameters).toBe(loraParameterCount(tensors));
      const lora = await run();
      expect(lora.values.every((v) => Number.isFinite(v))).toBe(true);
      adapters.unload();
      const base = await run();
      expect(lora.bytes).not.toEqual(base.bytes);
      expect(base.bytes).toEqual(before.bytes);
      expect(adapters.extraBytes).toBe(0);
      inputs.dispose();
    });
  }
});

describe('full-size random LoRAs', () => {
  for (const arch of ['ssd-1b', 'vega'] as const) {
    for (const layout of LORA_FILE_LAYOUTS) {
      it(`${arch} ${layout}: maps onto the ${arch} UNet key list at the published rank`, async () => {
        const keys = await componentKeys(arch, 'unet');
        const spec = parseUNetConfig(await readUNetConfig(arch));
        const tensors = randomLoraTensors(keys, spec, layout, PUBLISHED_RANK[arch]);
        expect(loraParameterCount(tensors)).toBe(arch === 'ssd-1b' ? 104_902_656 : 119_562_240);
        // only the header and the alphas are read: the source generates data on read
        const lora = await openLoraFile(new RandomLoraSource(`${arch}-${layout}`, tensors));
        const mapped = await resolveLoraFile(lora, { unet: { targets: targetsFromKeys(keys), sgm: sgmBlockTable(spec) } });
        expect(mapped.length).toBe(arch === 'ssd-1b' ? 423 : 233);
        expect(new Set(mapped.map((m) => m.multiplier))).toEqual(new Set([layout === 'peft' ? 1 : 1 / 8])); // PEFT: alpha/rank folded into lora_B
      });
    }
  }
});
