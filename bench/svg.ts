/** docs/benchmarks.svg: loss and tcpcopy CPU per scenario, ours beside the original. */
import type { Stat } from './figures';
import type { ScenarioReport } from './report';
import { TARGETS } from './scenarios';
import { fmt } from './util';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** Two panels (loss %, tcpcopy CPU per 1,000 replicated requests): ours in blue, the original measured in the same run in grey. */
export function svgChart(reports: ScenarioReport[]): string {
  const figs = reports.map((r) => r.ours);
  const W = 1010, H = 440;
  const panelW = 420, panelH = 270, top = 84, left1 = 64, left2 = 570;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">tcpcopy (TypeScript) and the original C tcpcopy, same run, per scenario</text>`);
  out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">blue: ours, median with min–max whiskers · grey: the original (min–max band, a bar for a single run) · red dashed: target</text>`);

  const panel = (x0: number, title: string, vals: { ours: Stat; orig: [number, number] | null }[], target: number | null,
    unit: string, digits: number): void => {
    const maxV = niceMax(Math.max(...vals.flatMap((v) => [v.ours.max, v.ours.median, ...(v.orig ?? [])]).filter(Number.isFinite), target ?? 0, 0.001));
    const y = (v: number): number => top + panelH - (Math.max(0, v) / maxV) * panelH;
    out.push(`<text x="${x0 + panelW / 2}" y="${top - 10}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
    for (let i = 0; i <= 5; i++) {
      const v = (maxV * i) / 5;
      const yy = y(v);
      out.push(`<line x1="${x0}" y1="${yy.toFixed(1)}" x2="${x0 + panelW}" y2="${yy.toFixed(1)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x0 - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end" fill="#555">${esc(fmt(v, maxV < 1 ? 2 : maxV < 10 ? 1 : 0))}</text>`);
    }
    out.push(`<line x1="${x0}" y1="${top}" x2="${x0}" y2="${top + panelH}" stroke="#333"/>`);
    out.push(`<line x1="${x0}" y1="${top + panelH}" x2="${x0 + panelW}" y2="${top + panelH}" stroke="#333"/>`);
    out.push(`<text x="${x0 - 44}" y="${top + panelH / 2}" transform="rotate(-90 ${x0 - 44} ${top + panelH / 2})" text-anchor="middle" fill="#333">${esc(unit)}</text>`);
    const slot = panelW / Math.max(1, vals.length);
    vals.forEach((v, i) => {
      const cx = x0 + slot * i + slot / 2;
      const bw = Math.min(28, slot / 3.2);
      // original (grey), left
      if (v.orig) {
        const [lo, hi] = v.orig;
        const ox = cx - bw - 2;
        if (hi > lo) {
          out.push(`<rect x="${ox.toFixed(1)}" y="${y(hi).toFixed(1)}" width="${bw.toFixed(1)}" height="${(y(lo) - y(hi)).toFixed(1)}" fill="#bbbbbb" opacity="0.8"/>`);
        } else {
          out.push(`<rect x="${ox.toFixed(1)}" y="${y(hi).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(1, top + panelH - y(hi)).toFixed(1)}" fill="#bbbbbb"/>`);
        }
        out.push(`<text x="${(ox + bw / 2).toFixed(1)}" y="${(y(hi) - 4).toFixed(1)}" text-anchor="middle" fill="#777" font-size="10">${esc(hi > lo ? `${fmt(lo, digits)}–${fmt(hi, digits)}` : fmt(hi, digits))}</text>`);
      } else {
        out.push(`<text x="${(cx - bw / 2 - 2).toFixed(1)}" y="${(top + panelH - 4).toFixed(1)}" text-anchor="middle" fill="#999" font-size="10">not run</text>`);
      }
      // ours (blue), right
      const m = v.ours.median;
      if (Number.isFinite(m)) {
        const bx = cx + 2;
        out.push(`<rect x="${bx.toFixed(1)}" y="${y(m).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(1, top + panelH - y(m)).toFixed(1)}" fill="#2b6cb0"/>`);
        const wx = bx + bw / 2;
        if (v.ours.max > v.ours.min) {
          out.push(`<line x1="${wx.toFixed(1)}" y1="${y(v.ours.min).toFixed(1)}" x2="${wx.toFixed(1)}" y2="${y(v.ours.max).toFixed(1)}" stroke="#1a365d" stroke-width="1.5"/>`);
          for (const e of [v.ours.min, v.ours.max]) out.push(`<line x1="${(wx - 5).toFixed(1)}" y1="${y(e).toFixed(1)}" x2="${(wx + 5).toFixed(1)}" y2="${y(e).toFixed(1)}" stroke="#1a365d" stroke-width="1.5"/>`);
        }
        out.push(`<text x="${wx.toFixed(1)}" y="${(Math.min(y(m), y(v.ours.max)) - 5).toFixed(1)}" text-anchor="middle" fill="#1a365d" font-size="10" font-weight="bold">${esc(fmt(m, digits))}</text>`);
      }
      out.push(`<text x="${cx.toFixed(1)}" y="${top + panelH + 16}" text-anchor="middle" fill="#333">${esc(`#${figs[i].s.id}`)}</text>`);
      out.push(`<text x="${cx.toFixed(1)}" y="${top + panelH + 30}" text-anchor="middle" fill="#555" font-size="10">${esc(figs[i].s.key)}</text>`);
    });
    if (target !== null && target <= maxV) {
      out.push(`<line x1="${x0}" y1="${y(target).toFixed(1)}" x2="${x0 + panelW}" y2="${y(target).toFixed(1)}" stroke="#c53030" stroke-dasharray="5,4"/>`);
      out.push(`<text x="${x0 + panelW + 4}" y="${(y(target) + 3).toFixed(1)}" text-anchor="start" fill="#c53030" font-size="10">≤ ${target}</text>`);
    }
  };

  const range = (x: Stat | undefined): [number, number] | null => (x && Number.isFinite(x.median) ? [x.min, x.max] : null);
  panel(left1, 'Replay loss %', reports.map((r) => ({ ours: r.ours.loss, orig: range(r.original?.loss) })), TARGETS.lossPct, 'loss %',
    Math.max(...figs.map((f) => f.loss.median)) >= 1 ? 1 : 2);
  panel(left2, 'tcpcopy CPU ms per 1,000 replicated requests', reports.map((r) => ({
    ours: r.ours.tcCpuRep, orig: range(r.original?.tcCpuRep),
  })), null, 'CPU ms / 1k replicated', 0);
  const legendY = H - 28;
  out.push(`<rect x="${W / 2 - 230}" y="${legendY - 10}" width="12" height="12" fill="#2b6cb0"/><text x="${W / 2 - 212}" y="${legendY}">ours (median, min–max)</text>`);
  out.push(`<rect x="${W / 2 + 40}" y="${legendY - 10}" width="12" height="12" fill="#bbbbbb"/><text x="${W / 2 + 58}" y="${legendY}">original C (same run)</text>`);
  out.push(`<line x1="${W / 2 + 180}" y1="${legendY - 4}" x2="${W / 2 + 200}" y2="${legendY - 4}" stroke="#c53030" stroke-dasharray="5,4"/><text x="${W / 2 + 206}" y="${legendY}">target</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
