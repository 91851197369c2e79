// Small DOM helpers shared by the demo's tabs: element lookup, the message area, number formatting,
// and the event log that tests and curious users can read (window.ssdDemo.events).

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

export type MessageKind = 'error' | 'warning' | 'info';

/** Shows a message box (replacing the one with the same key); returns a function that removes it. */
export function showMessage(kind: MessageKind, title: string, text: string, key = title): () => void {
  const box = $('messages');
  box.querySelector(`[data-key="${CSS.escape(key)}"]`)?.remove();
  const div = document.createElement('div');
  div.className = `message ${kind}`;
  div.dataset.key = key;
  div.dataset.kind = kind;
  const close = document.createElement('button');
  close.textContent = '×';
  close.title = 'dismiss';
  close.onclick = () => div.remove();
  const strong = document.createElement('strong');
  strong.textContent = title;
  div.append(close, strong, document.createTextNode(`\n${text}`));
  box.append(div);
  return () => div.remove();
}

export function clearMessages(keys?: string[]): void {
  for (const el of $('messages').querySelectorAll<HTMLElement>('.message')) if (!keys || keys.includes(el.dataset.key!)) el.remove();
}

export function fmtMs(ms: number): string {
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export interface DemoEvent {
  t: number;
  type: string;
  [k: string]: unknown;
}

/** Every worker message the page handled, without image data (for tests and debugging). */
export const events: DemoEvent[] = [];
(globalThis as { ssdDemo?: { events: DemoEvent[] } }).ssdDemo = { events };

export function logEvent(type: string, detail: Record<string, unknown> = {}): void {
  events.push({ t: Math.round(performance.now()), type, ...detail });
}
