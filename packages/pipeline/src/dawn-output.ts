// Hides Dawn's start-up notes ("Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced
// from 1000000 to 16 …", printed on lavapipe and other Vulkan drivers) from CLI users unless --verbose or
// SSD_VERBOSE=1. Dawn (npm `webgpu` 0.6.2) writes them from native code straight to file descriptor 2
// while it enumerates adapters, with no option, toggle or callback to silence them, and Node cannot
// redirect its own fd 2; so the CLI runs itself as a child whose stderr is a pipe, and this process
// passes that stream on with those lines removed.
import { spawn } from 'node:child_process';

/** Set in the child: run the command, do not relaunch. Internal to this module. */
const CHILD_ENV = 'SSD_CLI_QUIET_CHILD';
/** Set in the child when the parent's stderr is a terminal, so progress bars keep redrawing in place. */
const TTY_ENV = 'SSD_CLI_STDERR_TTY';

/** A line Dawn prints about a limit it lowered (nothing a user can act on); one write(2), so never split. */
const DAWN_NOTES = /Warning: \w+ artificially reduced from \d+ to \d+[^\n]*\n/g;
const PREFIX = 'Warning: ';

/** Whether this command line asks for Dawn's notes. */
export function wantsVerbose(argv: readonly string[], env: Record<string, string | undefined> = process.env): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--verbose') || (!!env.SSD_VERBOSE && env.SSD_VERBOSE !== '0');
}

/**
 * In the parent: runs the CLI again as a child with the same Node flags, script and arguments, filters
 * its stderr, takes its exit status, and resolves true (the caller does nothing more). Resolves false
 * where the caller should run the command itself: in the child, with --verbose / SSD_VERBOSE, or for
 * commands that never start Dawn.
 */
export async function runWithQuietDawn(argv: readonly string[], gpuCommands: readonly string[]): Promise<boolean> {
  if (process.env[CHILD_ENV]) {
    if (process.env[TTY_ENV]) Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    return false;
  }
  if (!gpuCommands.includes(argv[0]) || wantsVerbose(argv)) return false;
  const env: Record<string, string | undefined> = { ...process.env, [CHILD_ENV]: '1' };
  if (process.stderr.isTTY) env[TTY_ENV] = '1';
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], { stdio: ['inherit', 'inherit', 'pipe'], env });
  const filter = new DawnNoteFilter((s) => process.stderr.write(s));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => filter.write(s));
  // A Ctrl-C on a terminal reaches the whole process group, the child included; anything else is passed on.
  const terminal = !!(process.stdin.isTTY || process.stderr.isTTY);
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const forward = (sig: NodeJS.Signals) => void (sig === 'SIGINT' && terminal ? undefined : child.kill(sig));
  for (const s of signals) process.on(s, forward);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  filter.end();
  for (const s of signals) process.off(s, forward);
  if (signal) process.kill(process.pid, signal); // die the way the child died, for the shell
  else process.exitCode = code ?? 1;
  return true;
}

/**
 * Passes text through without DAWN_NOTES, the same however the stream is cut into chunks. Text after the
 * last newline goes out at once (progress bars redraw with "\r" and no newline), except from where a
 * note may be starting: that waits for its newline.
 */
export class DawnNoteFilter {
  private pending = '';

  constructor(private readonly out: (text: string) => void) {}

  write(chunk: string): void {
    const text = this.pending + chunk;
    const lineEnd = text.lastIndexOf('\n') + 1;
    const rest = text.slice(lineEnd);
    const hold = mayStartNote(rest);
    this.pending = rest.slice(hold);
    const kept = text.slice(0, lineEnd).replace(DAWN_NOTES, '') + rest.slice(0, hold);
    if (kept) this.out(kept);
  }

  end(): void {
    if (this.pending) this.out(this.pending);
    this.pending = '';
  }
}

/** Where in `rest` (text without a newline) a note may begin: at "Warning: ", or at a tail that could grow into it. */
function mayStartNote(rest: string): number {
  const at = rest.indexOf(PREFIX);
  if (at >= 0) return at;
  for (let k = Math.max(0, rest.length - PREFIX.length + 1); k < rest.length; k++) if (PREFIX.startsWith(rest.slice(k))) return k;
  return rest.length;
}
