// Summarises `ssd generate` runs made with bench/lib/run-with-rss.sh (<prefix>.log, .rss and the
// --report JSON <prefix>.json) into one record per run: wall time, per-stage times and peak GPU
// memory from the report, peak process RSS, and RSS while each component loaded. On a CPU adapter
// GPU buffers live in the process, so "host" = RSS minus the weight bytes uploaded so far (the load
// progress lines give them): what loading itself holds, which must stay far below a file's size.
// Components loaded during generate (--low-memory) come after others were freed, and RSS need not
// drop when memory is freed, so for them only the peak RSS is given (peakHostBytes null).
//
//   node --import tsx bench/lib/summarize-e2e.ts <prefix>… > bench/results/e2e-<adapter>.json
import { readFileSync } from 'node:fs';

interface Sample {
  s: number;
  rssBytes: number;
  line: string;
}

function summarise(prefix: string): Record<string, unknown> {
  const report = JSON.parse(readFileSync(`${prefix}.json`, 'utf8'));
  const rssText = readFileSync(`${prefix}.rss`, 'utf8');
  const samples: Sample[] = [];
  const meta: Record<string, number> = {};
  for (const l of rssText.split('\n')) {
    const m = /^# (\S+) (\S+)(?: exit (\S+))?/.exec(l);
    if (m) {
      meta[m[1]] = Number(m[2]);
      if (m[3] !== undefined) meta.exit = Number(m[3]);
      continue;
    }
    const s = /^([\d.]+) (\d+) \| (.*)$/.exec(l);
    if (s) samples.push({ s: Number(s[1]), rssBytes: Number(s[2]) * 1024, line: s[3] });
  }
  // components in load order, with the MiB loaded so far from the progress lines
  const order: string[] = [];
  const totals = new Map<string, number>();
  const perComponent = new Map<string, { peakRssBytes: number; peakHostBytes: number; seconds: [number, number] }>();
  const finished = new Set<string>();
  let baselineRssBytes = 0; // the last sample before anything loads (Node, Dawn, the driver)
  // components whose progress starts after the CLI's "loaded <model> in …" line load during generate
  const log = readFileSync(`${prefix}.log`, 'utf8');
  const loadedAt = log.search(/^loaded /m);
  const duringGenerate = new Set([...log.matchAll(/loading (\S+) \[/g)].filter((m) => loadedAt >= 0 && m.index! > loadedAt).map((m) => m[1]));
  for (const x of samples) {
    const m = /loading (\S+) \[[#.]+\] ([\d.]+)\/([\d.]+) MiB/.exec(x.line);
    if (!m) {
      if (!order.length) baselineRssBytes = x.rssBytes;
      continue;
    }
    const [, comp, done, total] = m;
    // progress lines come every 2 s, RSS every 1 s: count a component until its first complete line
    // (its progress line can stay the last one long after, e.g. through a denoising step)
    if (finished.has(comp)) continue;
    if (Number(done) >= Number(total)) finished.add(comp);
    if (!totals.has(comp)) order.push(comp);
    totals.set(comp, Number(total) * 2 ** 20);
    const before = order.slice(0, order.indexOf(comp)).reduce((a, c) => a + (totals.get(c) ?? 0), 0);
    const host = x.rssBytes - before - Number(done) * 2 ** 20; // an upper bound: the progress line may lag the upload by up to 2 s
    const e = perComponent.get(comp) ?? { peakRssBytes: 0, peakHostBytes: -Infinity, seconds: [x.s, x.s] };
    e.peakRssBytes = Math.max(e.peakRssBytes, x.rssBytes);
    e.peakHostBytes = Math.max(e.peakHostBytes, host);
    e.seconds[1] = x.s;
    perComponent.set(comp, e);
  }
  return {
    run: prefix.split('/').pop(),
    model: report.model,
    adapter: report.adapter,
    size: `${report.width}×${report.height}`,
    steps: report.steps,
    dtype: report.dtype,
    wallSeconds: meta.wall_s,
    exit: meta.exit,
    loadSeconds: report.loadMs / 1000,
    textEncode: { seconds: report.textEncode.ms / 1000, peakGpuBytes: report.textEncode.peakBytes },
    unet: { secondsPerStep: report.stepMs.map((m: number) => m / 1000), peakGpuBytes: report.denoise.peakBytes },
    vaeDecode: { seconds: report.decode.ms / 1000, peakGpuBytes: report.decode.peakBytes },
    generateSeconds: report.totalMs / 1000,
    peakGpuBytes: report.peakBytes,
    peakRssBytes: report.processPeakRssBytes,
    sampledPeakRssBytes: meta.peak_rss_kib * 1024,
    baselineRssBytes,
    loading: Object.fromEntries(
      order.map((c) => [c, { bytes: totals.get(c), ...perComponent.get(c), ...(duringGenerate.has(c) ? { peakHostBytes: null, during: 'generate' } : {}) }]),
    ),
    notices: report.notices,
  };
}

const runs = process.argv.slice(2).map(summarise);
console.log(JSON.stringify({ bench: 'ssd generate end to end (bench/lib/run-with-rss.sh)', date: new Date().toISOString(), runs }, null, 2));
