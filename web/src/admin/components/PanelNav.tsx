import type { MouseEvent } from 'react';

export interface Panel {
  /** The panel's `id` (its section), the link's fragment. */
  id: string;
  label: string;
}

/**
 * A list of links to the console's panels, first in the page: on a phone the console is one
 * long column, and the panels staff need on the floor (Broadcast, Door check-in) come last. They
 * are fragment links (a new tab, a bookmark, "Back" work as with any link); followed here, the
 * page goes to the panel and the keyboard focus to its heading, so that the next Tab and a
 * screen reader go on from there (a plain jump to a fragment would drop the focus instead).
 */
export function PanelNav({ panels }: { panels: Panel[] }) {
  const follow = (event: MouseEvent<HTMLAnchorElement>, id: string) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const panel = document.getElementById(id);
    const heading = panel?.querySelector<HTMLElement>('h2');
    if (!panel || !heading) return;
    event.preventDefault();
    history.pushState(null, '', `#${id}`);
    panel.scrollIntoView(); // below the sticky top bar: the panel's scroll-margin-top
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  };
  return (
    <nav className="admin-panels" id="panels" aria-label="Panels">
      <ul>
        {panels.map((p) => (
          <li key={p.id}>
            <a href={`#${p.id}`} onClick={(e) => follow(e, p.id)} data-testid={`panel-link-${p.id}`}>
              {p.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}
