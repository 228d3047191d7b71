// Line charts as standalone SVG (no dependency): one line per series, log or
// linear axes, the values printed at each point.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

function ticks(min, max, log) {
  if (log) {
    const out = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
    return out.filter((v) => v >= min / 1.0001 && v <= max * 1.0001);
  }
  const span = max - min || 1;
  const step = 10 ** Math.floor(Math.log10(span / 4));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 6) ?? step * 10;
  const out = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max + 1e-9; v += nice) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * series: [{ name, points: [[x, y], ...] }]; opts: { title, xLabel, yLabel,
 * xLog, yLog, xFmt, yFmt, xTicks }.
 */
export function lineChart(series, opts) {
  const W = 640;
  const H = 400;
  const m = { l: 70, r: 40, t: 40, b: 70 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => Number.isFinite(y));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (opts.yLog) { y0 = 10 ** Math.floor(Math.log10(y0)); y1 = 10 ** Math.ceil(Math.log10(y1)); } else { y0 = 0; y1 *= 1.15; }
  if (!opts.xLog && x0 === x1) x1 = x0 + 1;
  const fx = (x) => m.l + (opts.xLog ? Math.log(x / x0) / Math.log(x1 / x0 || 2) : (x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const fy = (y) => H - m.b - (opts.yLog ? Math.log(y / y0) / Math.log(y1 / y0 || 10) : (y - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const xFmt = opts.xFmt ?? String;
  const yFmt = opts.yFmt ?? ((v) => String(Number(v.toPrecision(3))));
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(opts.title)}</text>`);
  for (const v of ticks(y0, y1, opts.yLog)) {
    const y = fy(v);
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${esc(yFmt(v))}</text>`);
  }
  for (const v of opts.xTicks ?? [...new Set(xs)]) {
    const x = fx(v);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${H - m.b + 16}" text-anchor="middle">${esc(xFmt(v))}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - m.b + 36}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${fx(p[0]).toFixed(1)},${fy(p[1]).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of pts) {
      out.push(`<circle cx="${fx(x).toFixed(1)}" cy="${fy(y).toFixed(1)}" r="3" fill="${c}"/>`);
      out.push(`<text x="${fx(x).toFixed(1)}" y="${(fy(y) + (i % 2 ? 16 : -8)).toFixed(1)}" text-anchor="middle" fill="${c}" font-size="10">${esc(yFmt(y))}</text>`);
    }
    const lx = m.l + 10 + i * 160;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${H - 14}" y2="${H - 14}" stroke="${c}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 30}" y="${H - 10}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
