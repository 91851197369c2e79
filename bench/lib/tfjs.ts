// tfjs-backend-webgpu on the same adapter, as the peer our kernels are measured against. In Node it
// runs on the `webgpu` package's Dawn (navigator.gpu provided here); loaded only when asked for.
import { napBeforeWait, type GpuContext } from '@ssd/tensor';
import { median } from './timing.js';

type Tf = typeof import('@tensorflow/tfjs-core');

export interface Peer {
  tf: Tf;
  /** Times `fn` like timeGpu: warm-up, then the median of `runs`, each ended by an idle queue. */
  time(fn: () => { dispose(): void }, runs?: number): Promise<number>;
}

export async function loadTfjs(ctx: GpuContext): Promise<Peer | null> {
  try {
    const g = globalThis as { navigator?: { gpu?: GPU } };
    if (!g.navigator?.gpu) {
      const { create } = (await import('webgpu')) as { create(o: string[]): GPU };
      const gpu = create(process.env.SSD_ADAPTER ? [`adapter=${process.env.SSD_ADAPTER}`] : []);
      (globalThis as Record<string, unknown>).__ssdTfjsGpu = gpu; // the Dawn crash trap: keep it reachable
      Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true, writable: true });
    }
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return null;
    await tf.ready();
    const backend = tf.backend() as unknown as { commandEncoder: GPUCommandEncoder | null; endComputePassEncoder(): void; submitQueue(): void; device: GPUDevice };
    const idle = async () => {
      // tfjs records into one encoder: end its open compute pass before submitting, as tfjs does
      // itself (finishing an encoder with an open pass makes the whole command buffer invalid)
      if (backend.commandEncoder) {
        backend.endComputePassEncoder();
        backend.submitQueue();
      }
      await backend.device.queue.onSubmittedWorkDone();
    };
    void ctx;
    return {
      tf,
      async time(fn, runs = 5) {
        let best = 0;
        const once = async () => {
          const t0 = performance.now();
          const out = fn();
          await napBeforeWait(best); // the same wait as ours (timeGpu → ctx.sync)
          await idle();
          const ms = performance.now() - t0;
          out.dispose();
          return ms;
        };
        // a peer whose work was rejected would time nothing: the warm-up must raise no GPU error
        backend.device.pushErrorScope('validation');
        backend.device.pushErrorScope('out-of-memory');
        await once();
        const errors = [await backend.device.popErrorScope(), await backend.device.popErrorScope()].filter((e) => e);
        if (errors.length) throw new Error(`tfjs-webgpu's commands failed: ${errors[0]!.message}`);
        const ts: number[] = [];
        for (let i = 0; i < runs; i++) {
          ts.push(await once());
          best = Math.min(...ts);
        }
        return median(ts);
      },
    };
  } catch (e) {
    console.error(`tfjs-backend-webgpu unavailable: ${(e as Error).message}`);
    return null;
  }
}
