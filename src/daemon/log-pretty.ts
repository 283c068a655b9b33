/**
 * The readable log form for terminals (`--log-format pretty`, the default when the log goes to
 * a terminal): one line per record, `time LEVEL message key=value ...`, nested objects as
 * compact JSON. Files keep pino's JSON lines. Log records are rare (start, warnings, the
 * statistics line): parsing them again here is not on the packet path.
 */

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\x1b[90m'], 20: ['DEBUG', '\x1b[36m'], 30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'], 50: ['ERROR', '\x1b[31m'], 60: ['FATAL', '\x1b[41m'],
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
/** Fields every record has that the line shows in its own way (or not at all). */
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

export interface LineSink { write(s: string): unknown }

/** Formats one pino JSON line; a line that is not JSON is returned as it is. */
export function prettyLine(json: string, color: boolean): string {
  let rec: Record<string, unknown>;
  try { rec = JSON.parse(json) as Record<string, unknown>; } catch { return json.endsWith('\n') ? json : `${json}\n`; }
  const lvl = LEVELS[rec.level as number] ?? [String(rec.level).padEnd(5), ''];
  const t = typeof rec.time === 'string' ? rec.time.slice(11, 23) : typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 23) : '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (SKIP.has(k) || v === undefined) continue;
    parts.push(`${k}=${fieldText(v)}`);
  }
  const level = color && lvl[1] ? `${lvl[1]}${lvl[0]}${RESET}` : lvl[0];
  const time = color ? `${DIM}${t}${RESET}` : t;
  const name = typeof rec.name === 'string' ? `${rec.name}: ` : '';
  return `${time} ${level} ${name}${String(rec.msg ?? '')}${parts.length ? ` ${parts.join(' ')}` : ''}\n`;
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return String(v);
}

/** A pino destination that writes the readable form to `out`. */
export function prettyStream(out: LineSink, color: boolean): LineSink {
  return {
    write(chunk: string): boolean {
      // pino writes one record per call; split anyway in case several come together.
      let text = '';
      for (const line of chunk.split('\n')) if (line) text += prettyLine(line, color);
      out.write(text);
      return true;
    },
  };
}
