// Whether a table in its sideways-scrolling box (TableWrap) is wider than the box, and scrolled
// (pure): such a table says so in words and by shadows at the edges, as scrollbars that show
// only while scrolling (phones, macOS) give no sign of it.

export interface TableScroll {
  /** The table is wider than its box. */
  overflows: boolean;
  /** Columns are hidden on the left (the box was scrolled); on the right, the box's own
   *  shadow (shared styles, `.table-wrap`) says so. */
  before: boolean;
}

/** Within a pixel counts as the edge: zoom and device pixels leave fractions. */
const SLACK = 1;

export function tableScroll(box: { scrollLeft: number; clientWidth: number; scrollWidth: number }): TableScroll {
  const overflows = box.scrollWidth - box.clientWidth > SLACK;
  // right-to-left pages scroll to negative offsets: the distance from the start is the same
  const from = Math.abs(box.scrollLeft);
  return { overflows, before: overflows && from > SLACK };
}
