// Prints the WebGPU adapter Dawn finds (JSON) and exits 0, or exits 3 when there is none.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
globalThis.__ssdProbeGpu = create(process.env.SSD_ADAPTER ? [`adapter=${process.env.SSD_ADAPTER}`] : []);
const adapter = await globalThis.__ssdProbeGpu.requestAdapter();
if (!adapter) process.exit(3);
console.log(JSON.stringify({ description: adapter.info.description, features: [...adapter.features] }));
