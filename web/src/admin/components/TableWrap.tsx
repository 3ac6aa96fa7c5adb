import { type ReactNode, useEffect, useRef, useState } from 'react';

import { type TableScroll, tableScroll } from '../tableScroll';

const FITS: TableScroll = { overflows: false, before: false };

/**
 * A table that scrolls sideways when the window is narrower than it. The scrolling box takes
 * the keyboard focus and has a name, so it can be scrolled without a mouse (WCAG 2.1.1; axe's
 * scrollable-region-focusable, checked by the browser tests). While the table is wider than the
 * box a line above it says so, and shadows mark the edges with columns beyond them; with
 * `stickyFirst` the first column (what a row is about) stays in view while the rest scrolls
 * (admin.css).
 */
export function TableWrap({ label, children, stickyFirst = false }: { label: string; children: ReactNode; stickyFirst?: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState<TableScroll>(FITS);

  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    const measure = () =>
      setScroll((shown) => {
        const now = tableScroll(element);
        return now.overflows === shown.overflows && now.before === shown.before ? shown : now;
      });
    measure();
    // the box (the window, the layout) and the table (rows coming and going) both change it
    const resized = new ResizeObserver(measure);
    resized.observe(element);
    if (element.firstElementChild) resized.observe(element.firstElementChild);
    element.addEventListener('scroll', measure, { passive: true });
    return () => {
      resized.disconnect();
      element.removeEventListener('scroll', measure);
    };
  }, []);

  return (
    <div
      className={`table-scroll${stickyFirst ? ' table-scroll--sticky' : ''}`}
      data-overflows={scroll.overflows || undefined}
      data-before={scroll.before || undefined}
    >
      {scroll.overflows && (
        <p className="table-scroll__hint small muted">
          <span aria-hidden="true">↔ </span>Scroll sideways for more columns
        </p>
      )}
      <div ref={box} className="table-wrap" role="region" aria-label={label} tabIndex={0}>
        {children}
      </div>
    </div>
  );
}
