/** The demo's output: for people on stdout (stderr with --json), one updating progress line on a TTY. */

/** Shell-quotes an argument for display. */
export function q(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function pct(x: number): string {
  return `${x.toFixed(2)} %`;
}

export class Out {
  readonly human: NodeJS.WriteStream;
  private readonly color: boolean;
  private progressShown = false;
  readonly tty: boolean;

  constructor(json: boolean) {
    // With --json, stdout carries exactly one JSON line; everything for people goes to stderr.
    this.human = json ? process.stderr : process.stdout;
    this.tty = !!process.stderr.isTTY;
    this.color = !!this.human.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  }

  private paint(code: string, s: string): string {
    return this.color ? `\x1b[${code}m${s}\x1b[0m` : s;
  }
  bold(s: string): string { return this.paint('1', s); }
  dim(s: string): string { return this.paint('2', s); }
  green(s: string): string { return this.paint('32', s); }
  red(s: string): string { return this.paint('31', s); }
  cyan(s: string): string { return this.paint('36', s); }

  say(line = ''): void {
    this.endProgress();
    this.human.write(`${line}\n`);
  }

  /** One updating line on a TTY; a plain line otherwise (the caller paces those). */
  progress(line: string): void {
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      this.progressShown = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  endProgress(): void {
    if (this.progressShown) {
      process.stderr.write('\n');
      this.progressShown = false;
    }
  }
}
