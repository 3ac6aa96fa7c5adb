import type { ReactNode } from 'react';

/**
 * A table that scrolls sideways when the window is narrower than it. The scrolling box takes
 * the keyboard focus and has a name, so it can be scrolled without a mouse (WCAG 2.1.1; axe's
 * scrollable-region-focusable, checked by the browser tests).
 */
export function TableWrap({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
