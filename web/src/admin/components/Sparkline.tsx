/** A small line chart as inline SVG (no chart library): values left to right, oldest first. */
export function Sparkline({ values, label, width = 320, height = 72 }: { values: number[]; label: string; width?: number; height?: number }) {
  const max = Math.max(1, ...values);
  const pad = 4;
  const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(pad + i * step).toFixed(1)},${(height - pad - (v / max) * (height - 2 * pad)).toFixed(1)}`);
  const area = points.length > 1 ? `M${pad},${height - pad} L${points.join(' L')} L${(pad + (values.length - 1) * step).toFixed(1)},${height - pad} Z` : '';
  return (
    <div className="sparkline-wrap">
      {/* Stretched to the box's width (preserveAspectRatio none), so labels live outside it. */}
      <svg className="sparkline" viewBox={`0 0 ${width} ${height}`} width="100%" height={height} role="img" aria-label={`${label}: latest ${values.at(-1) ?? 0}, peak ${max}`} preserveAspectRatio="none">
        <line x1={pad} x2={width - pad} y1={height - pad} y2={height - pad} className="sparkline__axis" />
        {area && <path d={area} className="sparkline__area" />}
        {points.length > 1 && <polyline points={points.join(' ')} className="sparkline__line" />}
      </svg>
      <span className="sparkline__max" aria-hidden="true">
        max {max}
      </span>
    </div>
  );
}
