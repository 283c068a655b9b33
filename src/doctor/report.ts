/**
 * The doctor's report: one line per check (`ok`, `warn` or `FAIL`, its name, what it saw, and
 * for a failure the cause and the fix), or one JSON object with `--json`. Exit status 0 when no
 * check failed (a warning is not a failure), 1 otherwise.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** Stable identifier (`permissions`, `capture`, `raw-send`, `intercept`, `probe`, ...). */
  id: string;
  status: CheckStatus;
  /** What the check saw. */
  detail: string;
  /** The fix (a command where there is one); empty when nothing is to be done. */
  fix: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: Check[];
}

export class Report {
  readonly checks: Check[] = [];

  add(id: string, status: CheckStatus, detail: string, fix = ''): Check {
    const c: Check = { id, status, detail, fix };
    this.checks.push(c);
    return c;
  }

  get ok(): boolean {
    return this.checks.every((c) => c.status !== 'fail');
  }

  toJSON(): DoctorReport {
    return { ok: this.ok, checks: this.checks };
  }

  get exitCode(): number {
    return this.ok ? 0 : 1;
  }
}

const LABEL: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

/** Human-readable lines: `ok   id  detail`, then `     fix: ...` under a warning or failure. */
export function formatReport(r: Report): string {
  const width = Math.min(30, Math.max(8, ...r.checks.map((c) => c.id.length)));
  const lines: string[] = [];
  for (const c of r.checks) {
    lines.push(`${LABEL[c.status]}  ${c.id.padEnd(width)}  ${c.detail}`);
    if (c.fix && c.status !== 'ok') {
      for (const [i, f] of c.fix.split('\n').entries()) lines.push(`${' '.repeat(width + 8)}${i === 0 ? 'fix: ' : '     '}${f}`);
    }
  }
  const failed = r.checks.filter((c) => c.status === 'fail').length;
  const warned = r.checks.filter((c) => c.status === 'warn').length;
  lines.push(failed ? `${failed} check(s) failed, ${warned} warning(s)` : `every check passed${warned ? ` (${warned} warning(s))` : ''}`);
  return lines.join('\n') + '\n';
}
