import { describe, expect, it } from 'vitest';

import { tableScroll } from './tableScroll';

describe('a table in its scrolling box', () => {
  it('that fits has nothing either side', () => {
    expect(tableScroll({ scrollLeft: 0, clientWidth: 600, scrollWidth: 600 })).toEqual({ overflows: false, before: false });
    // a fraction of a pixel over (zoom) is not a scrolling table
    expect(tableScroll({ scrollLeft: 0, clientWidth: 600, scrollWidth: 600.6 })).toEqual({ overflows: false, before: false });
  });

  it('wider than its box: scrolled once it has left the start', () => {
    const box = { clientWidth: 300, scrollWidth: 800 };
    expect(tableScroll({ ...box, scrollLeft: 0 })).toEqual({ overflows: true, before: false });
    expect(tableScroll({ ...box, scrollLeft: 250 })).toEqual({ overflows: true, before: true });
    expect(tableScroll({ ...box, scrollLeft: 500 })).toEqual({ overflows: true, before: true });
    expect(tableScroll({ ...box, scrollLeft: 0.5 })).toEqual({ overflows: true, before: false });
  });

  it('reads right-to-left offsets (negative) as distances from the start', () => {
    expect(tableScroll({ scrollLeft: -500, clientWidth: 300, scrollWidth: 800 })).toEqual({ overflows: true, before: true });
  });
});
