// The browser half of the npm-app check: load the tiny model served at ./models/tiny-ssd1b (configs,
// tokenizers, every weight file through HTTP Range reads, uploaded to navigator.gpu), tokenize a
// prompt, and run one kernel, y = gelu(x · wᵀ); the results go to window.ssdResult for the test.
// (A full generate works the same way but takes minutes on a CPU adapter: the demo's tests run one.)
import { createContext } from '@ssd/tensor';
import { linear } from '@ssd/kernels';
import { StableDiffusionXLPipeline } from '@ssd/pipeline';

const status = document.querySelector('#status');
try {
  const context = await createContext();
  const pipe = await StableDiffusionXLPipeline.fromPretrained(new URL('./models/tiny-ssd1b', location.href).href, { context, dtype: 'f32', onNotice: () => {} });
  const ids = pipe.components.tokenizers.map((t) => t.encode('a lighthouse on a cliff at dusk!').ids);
  const x = context.fromData(Float32Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i)), [3, 8]);
  const w = context.fromData(Float32Array.from({ length: 4 * 8 }, (_, i) => Math.cos(i)), [4, 8]);
  const y = Array.from(await linear(x, w, { activation: 'gelu' }).read());
  window.ssdResult = { ok: true, adapter: context.info.description, scheduler: pipe.scheduler, ids, y };
  status.textContent = `done on ${context.info.description}`;
  await pipe.dispose();
} catch (e) {
  window.ssdResult = { ok: false, error: `${e?.name}: ${e?.message}` };
  status.textContent = String(e);
}
